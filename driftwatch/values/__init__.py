"""Validated value types for configuration models (pydantic): durations such as ``4h``,
and secrets that may be given as ``<field>_file``. Shared by the settings and by each
receiver type's own configuration model (``notify``), which sits below the settings."""

from driftwatch.values.durations import Duration, at_least, format_duration, parse_duration
from driftwatch.values.secrets import LoadContext, SecretFileModel, resolve_path, secret_values

__all__ = [
    "Duration",
    "LoadContext",
    "SecretFileModel",
    "at_least",
    "format_duration",
    "parse_duration",
    "resolve_path",
    "secret_values",
]
