"""The configuration file: schema, loading and validation with file:line:field errors."""

from driftwatch.settings.links import check_link_template, render_link
from driftwatch.settings.load import (
    SettingsError,
    expand_environment,
    load_settings,
    parse_settings,
    require_desired,
)
from driftwatch.settings.models import (
    ClusterSettings,
    DesiredSettings,
    GitDesiredSettings,
    IgnoreSettings,
    LogSettings,
    PolicyIgnore,
    RuleSettings,
    Settings,
)
from driftwatch.settings.server import HaSettings, ServerSettings, parse_listen
from driftwatch.values.durations import Duration, at_least, format_duration, parse_duration
from driftwatch.values.secrets import LoadContext, secret_values

__all__ = [
    "ClusterSettings",
    "DesiredSettings",
    "Duration",
    "GitDesiredSettings",
    "HaSettings",
    "IgnoreSettings",
    "LoadContext",
    "LogSettings",
    "PolicyIgnore",
    "RuleSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "at_least",
    "check_link_template",
    "expand_environment",
    "format_duration",
    "load_settings",
    "parse_duration",
    "parse_listen",
    "parse_settings",
    "render_link",
    "require_desired",
    "secret_values",
]
