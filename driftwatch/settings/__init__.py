"""The configuration file: schema, loading and validation with file:line:field errors."""

from driftwatch.settings.load import SettingsError, load_settings, parse_settings
from driftwatch.settings.models import IgnoreSettings, PolicyIgnore, RuleSettings, Settings

__all__ = [
    "IgnoreSettings",
    "PolicyIgnore",
    "RuleSettings",
    "Settings",
    "SettingsError",
    "load_settings",
    "parse_settings",
]
