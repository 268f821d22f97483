"""The notification sections of the configuration: ``notifiers``, ``routes``, ``silences``,
``repeat_interval`` and ``state``.

``notifiers`` entries are ``{name, type, ...}``; the rest of an entry is validated by the
receiver type's own model (``notify.registry``), so an unknown field or a bad value is
reported at its path, e.g. ``notifiers.1.channel``.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from driftwatch.notify.outbox import Limits
from driftwatch.notify.registry import RegistryError, receiver_types
from driftwatch.notify.routing import Matcher, Route, Silence
from driftwatch.values.durations import Duration, at_least, at_most
from driftwatch.values.secrets import custom_error, resolve_path

__all__ = ["MatchSettings", "NotifierSettings", "RouteSettings", "SilenceSettings", "StateSettings"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
SeverityName = Literal["info", "low", "medium", "high", "critical"]


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError("use letters, digits, '-', '_' or '.' (at most 63), starting alnum")
    return name


class NotifierSettings(BaseModel):
    """One receiver: ``{name, type, ...the type's own fields}``."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    name: Annotated[str, AfterValidator(_check_name)]
    """How routes, logs and the outbox refer to it; unique."""
    type: str
    """``slack``, ``pagerduty``, ``webhook``, ``alertmanager``, ``console``, or a plugin's."""
    max_in_flight: int = Field(default=4, ge=1, le=64)
    """Deliveries at the same time (to different incidents; one incident's go in order)."""
    rate_limit: float | None = Field(default=None, gt=0)
    """At most this many messages per second (Slack's per-channel limit is built in)."""
    group_wait: Annotated[Duration, at_least(0), at_most(3600)] | None = None
    """Announce incidents that open within this window after a first one in one message
    (0: each at once). Unset: the top-level ``group_wait``. Only for types that batch
    (not ``pagerduty``: each incident is its own PagerDuty event, grouped by PagerDuty)."""
    config: Any = None
    """The type's validated settings (everything in the entry but ``name`` and ``type``)."""

    def limits(self) -> Limits:
        return Limits(self.max_in_flight, self.rate_limit)

    @model_validator(mode="wrap")
    @classmethod
    def _validate_by_type(
        cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        if not isinstance(data, dict) or isinstance(data.get("config"), BaseModel):
            return handler(data)  # not an entry, or one already validated
        own = ("name", "type", "max_in_flight", "rate_limit", "group_wait")
        rest = {k: v for k, v in data.items() if k not in own}
        kind = data.get("type")
        try:
            types = receiver_types()
        except RegistryError as e:
            raise ValidationError.from_exception_data(
                cls.__name__, [custom_error(("type",), str(e), "notifier_plugin")]
            ) from e
        if not isinstance(kind, str) or kind not in types:
            known = ", ".join(sorted(types))
            problem = custom_error(
                ("type",), f"unknown receiver type {kind!r}: use one of {known}", "notifier_type"
            )
            raise ValidationError.from_exception_data(cls.__name__, [problem])
        try:
            config = types[kind].config.model_validate(rest, context=info.context)
        except ValidationError as e:
            problems = [
                custom_error(tuple(err["loc"]), err["msg"], err["type"]) for err in e.errors()
            ]
            raise ValidationError.from_exception_data(cls.__name__, problems) from None
        mine = {k: v for k, v in data.items() if k in own}
        validated = handler({**mine, "type": kind, "config": config})
        if validated.group_wait and not types[kind].batches:
            problem = custom_error(
                ("group_wait",),
                f"{kind} receivers announce each incident on its own; remove group_wait",
                "notifier_group_wait",
            )
            raise ValidationError.from_exception_data(cls.__name__, [problem])
        return validated

    def wait(self, default: float) -> float:
        """This receiver's ``group_wait``: its own, else ``default`` if its type batches."""
        if self.group_wait is not None:
            return self.group_wait
        return default if receiver_types()[self.type].batches else 0.0


class MatchSettings(BaseModel):
    """Conditions on an incident; all given ones must hold (none: everything matches)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_severity: SeverityName | None = None
    """At least this severity."""
    severities: list[SeverityName] = Field(default_factory=list)
    """One of these severities."""
    namespaces: list[str] = Field(default_factory=list)
    """Namespace globs (``prod-*``)."""
    clusters: list[str] = Field(default_factory=list)
    """Cluster name globs."""
    rules: list[str] = Field(default_factory=list)
    """At least one finding of one of these rule ids."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Policy labels: each key present, its value matching the glob."""

    def to_matcher(self) -> Matcher:
        return Matcher(
            min_severity=self.min_severity,
            severities=frozenset(self.severities),
            namespaces=tuple(self.namespaces),
            clusters=tuple(self.clusters),
            rules=frozenset(self.rules),
            labels=dict(self.labels),
        )


class RouteSettings(MatchSettings):
    """A route: where matching incidents go."""

    receivers: list[str] = Field(min_length=1)
    """Names of configured notifiers."""
    continue_: bool = Field(default=False, alias="continue")
    """Also try the routes after this one when it matched."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_route(self) -> Route:
        return Route(self.to_matcher(), tuple(self.receivers), self.continue_)


class SilenceSettings(MatchSettings):
    """A time-bound mute: matching incidents are recorded but not sent."""

    starts_at: datetime
    """RFC 3339, with a time zone."""
    ends_at: datetime
    comment: str = ""
    """Why, and who asked."""

    @model_validator(mode="after")
    def _ordered(self) -> SilenceSettings:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("starts_at and ends_at need a time zone (e.g. 2026-11-27T10:00:00Z)")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def to_silence(self) -> Silence:
        return Silence(
            self.to_matcher(), self.starts_at.timestamp(), self.ends_at.timestamp(), self.comment
        )


def _resolve(value: Path, info: ValidationInfo) -> Path:
    return resolve_path(value, info)


class StateSettings(BaseModel):
    """Where incidents and undelivered notifications are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Annotated[Path, AfterValidator(_resolve)] | None = None
    """The SQLite file; default ``$XDG_STATE_HOME/driftwatch/state.db``
    (``~/.local/state/driftwatch/state.db``)."""
