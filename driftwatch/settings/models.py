"""The configuration file's schema (pydantic v2).

Validated once at start-up; the values are then turned into the plain dataclasses
the core takes (``IgnoreRules``, ``RuleOptions``), so nothing below this layer
depends on pydantic and no setting lives in a module global.

One file serves ``driftwatch check --config`` and ``driftwatch run --config``, so every
section is optional. Paths in the file are relative to the file's directory (see
``LoadContext``); ``SecretStr`` fields may be given as ``<field>_file`` (see ``secrets``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from driftwatch.drift import IgnoreRules, PolicyMatcher
from driftwatch.drift.blast import Sensitivity
from driftwatch.policy import LabelSelector, parse_selector_string
from driftwatch.policy.parse import PolicyError, parse_label_selector
from driftwatch.rules import CATALOGUE, Escalation, RuleOptions, Severity
from driftwatch.rules import RuleSettings as CoreRuleSettings
from driftwatch.rules.risk import SENSITIVE_PORTS
from driftwatch.semantic import PortSet
from driftwatch.semantic.intervals import normalise
from driftwatch.semantic.ipspace import cidr_intervals
from driftwatch.settings.admission import AdmissionSettings
from driftwatch.settings.links import check_link_template
from driftwatch.settings.notify import (
    NotifierSettings,
    RouteSettings,
    SilenceSettings,
    StateSettings,
)
from driftwatch.settings.remediation import RemediationSettings
from driftwatch.settings.server import HaSettings, ServerSettings
from driftwatch.values.durations import Duration, at_least, at_most
from driftwatch.values.secrets import (
    SecretFileModel,
    custom_error,
    resolve_path,
    secret_values,
)

__all__ = [
    "ClusterSettings",
    "DesiredSettings",
    "GitDesiredSettings",
    "IgnoreSettings",
    "LogSettings",
    "PolicyIgnore",
    "RuleSettings",
    "Settings",
]

_RULE_IDS = frozenset(r.id for r in CATALOGUE)


class _Model(SecretFileModel):
    # Inputs stay out of ValidationError texts: they may be secrets.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class PolicyIgnore(_Model):
    """Policies to leave alone: every given condition must hold."""

    name: str = "*"
    """Glob on the policy name (``allow-*``)."""
    namespace: str = "*"
    """Glob on the policy namespace."""
    selector: str | dict[str, object] | None = None
    """Label selector on the policy's own labels: ``team=mesh,!managed`` or
    ``{matchLabels: {...}, matchExpressions: [...]}``."""

    @field_validator("selector")
    @classmethod
    def _valid_selector(
        cls, value: str | dict[str, object] | None
    ) -> str | dict[str, object] | None:
        cls._to_selector(value)
        return value

    @staticmethod
    def _to_selector(value: str | dict[str, object] | None) -> LabelSelector | None:
        if value is None:
            return None
        if isinstance(value, str):
            return parse_selector_string(value)
        try:
            return parse_label_selector(value)
        except PolicyError as e:
            raise ValueError(e.message) from e

    def to_matcher(self) -> PolicyMatcher:
        return PolicyMatcher(self.name, self.namespace, self._to_selector(self.selector))


class IgnoreSettings(_Model):
    """What to leave out of the comparison."""

    namespaces: list[str] = Field(default_factory=list)
    """Namespace globs (``kube-*``) whose policies are never compared."""
    policies: list[PolicyIgnore] = Field(default_factory=list)
    """Individual policies to leave alone."""

    def to_rules(self) -> IgnoreRules:
        return IgnoreRules(tuple(self.namespaces), tuple(p.to_matcher() for p in self.policies))


SeverityName = Literal["info", "low", "medium", "high", "critical"]


class EscalationSettings(_Model):
    """Raise every finding in some namespaces."""

    namespaces: list[str]
    """Namespace globs (``prod-*``)."""
    levels: int = Field(default=1, ge=-4, le=4)
    """Levels to raise (negative lowers), capped at critical and floored at info."""


_PORT_SPEC = re.compile(r"^(?:(TCP|UDP|SCTP)/)?(\d{1,5})(?:-(\d{1,5}))?$")


def parse_port_spec(text: str | int) -> tuple[str, int, int]:
    """``5432``, ``"TCP/5432"``, ``"UDP/53"``, ``"TCP/8000-8999"`` -> (protocol, lo, hi)."""
    m = _PORT_SPEC.match(str(text).strip().upper())
    if m is None:
        raise ValueError(f"{text!r} is not a port: write 5432, TCP/5432 or UDP/8000-8999")
    lo = int(m[2])
    hi = int(m[3]) if m[3] else lo
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"{text!r} is not a port range within 1-65535")
    return (m[1] or "TCP", lo, hi)


def _check_cidr(cidr: str) -> str:
    try:
        ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ValueError(f"{cidr!r} is not a CIDR") from None
    return cidr


def _check_port(port: str | int) -> str | int:
    parse_port_spec(port)
    return port


class SensitiveWorkloadSettings(_Model):
    """Workloads whose new exposure raises a drift one level (rule
    ``sensitive-workload-exposed``; needs the topology: the daemon's pod watch, or
    workloads among ``check``'s manifests)."""

    namespaces: list[str] = Field(default_factory=list)
    """Namespace globs (``prod-*``, ``payments``)."""
    labels: list[str] = Field(default_factory=list)
    """Pod labels: ``key=value``, or ``key`` for any value (``data-class=pci``, ``pci``)."""

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for text in value:
            key = text.split("=", 1)[0]
            if not key or key != key.strip():
                raise ValueError(f"{text!r} is not a label: write key=value or key")
        return value

    def to_sensitivity(self) -> Sensitivity:
        labels = []
        for text in self.labels:
            key, _, value = text.partition("=")
            labels.append((key, value if "=" in text else None))
        return Sensitivity(tuple(self.namespaces), tuple(labels))


class RuleSettings(_Model):
    """The ``rules:`` section: which rules run, how loud they are, and what they trust."""

    disabled: list[str] = Field(default_factory=list)
    """Rule ids that never fire."""
    severity: dict[str, SeverityName] = Field(default_factory=dict)
    """Severity overrides by rule id (``spec-modified: high``)."""
    escalate: list[EscalationSettings] = Field(default_factory=list)
    """Per-namespace escalation: ``[{namespaces: ["prod-*"], levels: 1}]``."""
    trusted_cidrs: list[Annotated[str, AfterValidator(_check_cidr)]] = Field(default_factory=list)
    """Ranges that never count as public or as the world (a corporate range)."""
    sensitive_ports: list[Annotated[str | int, AfterValidator(_check_port)]] = Field(
        default_factory=list
    )
    """Ports, besides the built-in list, that escalate ``ports-widened``."""
    sensitive_workloads: SensitiveWorkloadSettings = Field(
        default_factory=SensitiveWorkloadSettings
    )
    """Namespaces and labels whose workloads' new exposure raises a drift one level."""

    @field_validator("disabled")
    @classmethod
    def _known_ids(cls, value: list[str]) -> list[str]:
        _check_ids(value)
        return value

    @field_validator("severity")
    @classmethod
    def _known_keys(cls, value: dict[str, str]) -> dict[str, str]:
        _check_ids(value)
        return value

    def to_options(self) -> RuleOptions:
        ranges: dict[str, list[tuple[int, int]]] = {}
        for spec in self.sensitive_ports:
            proto, lo, hi = parse_port_spec(spec)
            ranges.setdefault(proto, []).append((lo, hi))
        trusted = [r for cidr in self.trusted_cidrs for r in cidr_intervals(cidr)]
        return RuleOptions(
            disabled=frozenset(self.disabled),
            severity={k: Severity.parse(v) for k, v in self.severity.items()},
            escalations=tuple(Escalation(tuple(e.namespaces), e.levels) for e in self.escalate),
            settings=CoreRuleSettings(
                trusted=normalise(trusted),
                sensitive_ports=SENSITIVE_PORTS
                | PortSet.build({p: normalise(r) for p, r in ranges.items()}, ()),
            ),
        )


def _check_ids(ids: Iterable[str]) -> None:
    unknown = sorted(set(ids) - _RULE_IDS)
    if unknown:
        raise ValueError(f"unknown rule id(s) {', '.join(unknown)}; `driftwatch rules` lists them")


_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _check_namespace(name: str) -> str:
    if len(name) > 63 or not _NAMESPACE.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a namespace name: lower-case letters, digits and '-', "
            "at most 63 characters"
        )
    return name


class ClusterSettings(_Model):
    """The ``cluster:`` section: which cluster ``driftwatch run`` watches and how to reach it."""

    name: str = Field(default="default", min_length=1)
    """The cluster's name in alerts and drift keys."""
    kubeconfig: Path | None = None
    """Kubeconfig file (``~`` expanded); null: ``$KUBECONFIG`` or ``~/.kube/config``, else
    the in-cluster service account."""
    context: str | None = None
    """Kubeconfig context to use; null: the file's current context."""
    namespaces: list[Annotated[str, AfterValidator(_check_namespace)]] = Field(default_factory=list)
    """Namespaces to watch; empty: every namespace."""
    token: SecretStr | None = None
    """Bearer token used instead of the kubeconfig's credentials (or ``token_file``)."""
    watch_topology: bool = True
    """Also watch pods and namespaces, so that every drift carries its blast radius (the
    workload pairs it opens or closes). Needs ``list``/``watch`` on pods and namespaces;
    false: no blast radius in the daemon."""

    @field_validator("kubeconfig")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)


def _is_local_path(url: str) -> bool:
    """Git's rule: a URL has ``://``, scp syntax has a ``:`` before the first ``/``."""
    return "://" not in url and ":" not in url.split("/", 1)[0]


class GitDesiredSettings(_Model):
    """``desired.git``: read the policies from a commit of a Git repository."""

    url: str = Field(min_length=1)
    """Repository URL, scp-style address or local path, read with your own ``git``."""
    ref: str | None = None
    """Branch, tag or commit; null: the remote's HEAD."""
    path: str | None = None
    """Sub-directory of the repository holding the manifests; null: all of it."""
    poll_interval: Annotated[Duration, at_least(1)] = 60.0
    """How often to fetch (seconds; write ``60s``, ``5m``); at least 1s."""

    @field_validator("url")
    @classmethod
    def _resolve_local(cls, value: str, info: ValidationInfo) -> str:
        return str(resolve_path(value, info)) if _is_local_path(value) else value

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (
            PurePosixPath(value).is_absolute() or ".." in PurePosixPath(value).parts
        ):
            raise ValueError(f"{value!r} must be a relative path inside the repository")
        return value


class DesiredSettings(_Model):
    """The ``desired:`` section: where the policies in Git are; exactly one of the two."""

    path: Path | None = None
    """A manifest file or directory (``~`` expanded, relative to this file)."""
    git: GitDesiredSettings | None = None
    """A Git repository, polled."""

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @field_validator("git")
    @classmethod
    def _not_both(
        cls, value: GitDesiredSettings | None, info: ValidationInfo
    ) -> GitDesiredSettings | None:
        if value is not None and info.data.get("path") is not None:
            raise ValueError("give either path or git, not both")
        return value

    @model_validator(mode="after")
    def _one(self) -> DesiredSettings:
        if self.path is None and self.git is None:
            raise ValueError("give path (a manifest directory) or git (a repository)")
        return self


LogLevel = Literal["debug", "info", "warning", "error"]


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class LogSettings(_Model):
    """The ``log:`` section."""

    level: Annotated[LogLevel, BeforeValidator(_lower)] = "info"
    """Lowest level written: debug, info, warning or error."""
    format: Literal["auto", "json", "console"] = "auto"
    """``json`` lines, ``console`` text, or ``auto``: console on a terminal, else JSON."""


class Settings(_Model):
    """The driftwatch configuration file."""

    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    """The cluster ``driftwatch run`` watches."""
    desired: DesiredSettings | None = None
    """Where the policies in Git are (required by ``driftwatch run``, unused by ``check``)."""
    default_namespace: str = "default"
    """Namespace for manifests that do not name one (as ``kubectl apply`` would use)."""
    ignore: IgnoreSettings = Field(default_factory=IgnoreSettings)
    """Namespaces and policies to leave alone."""
    rules: RuleSettings = Field(default_factory=RuleSettings)
    """Rule selection and severity overrides."""
    link_template: Annotated[str, AfterValidator(check_link_template)] | None = None
    """Link to a policy's source, with ``{commit}``, ``{path}``, ``{line}``, ``{repo}``."""
    log: LogSettings = Field(default_factory=LogSettings)
    """Log level and format of ``driftwatch run``."""
    state: StateSettings = Field(default_factory=StateSettings)
    """Where incidents and undelivered notifications are kept (``driftwatch run``)."""
    notifiers: list[NotifierSettings] = Field(default_factory=list)
    """The receivers: ``{name, type, ...}``. None: drift events are printed on the console."""
    routes: list[RouteSettings] = Field(default_factory=list)
    """Which receivers get which incidents, tried in order; none: every receiver gets all."""
    silences: list[SilenceSettings] = Field(default_factory=list)
    """Time-bound mutes."""
    repeat_interval: Annotated[Duration, at_least(0)] = 4 * 3600.0
    """Remind receivers of incidents still open this long after their last message (0: never)."""
    group_wait: Annotated[Duration, at_least(0), at_most(3600)] = 0.0
    """Announce incidents that open within this window after a first one in one message per
    receiver (0: each at once, in real time). A notifier's own ``group_wait`` overrides it;
    receivers that cannot batch (``pagerduty``) are never delayed."""
    server: ServerSettings | None = None
    """The HTTP server (probes, metrics, incidents API, Git push hook); null: none."""
    ha: HaSettings = Field(default_factory=HaSettings)
    """High availability: replicas, leader election, where incidents are shared."""
    admission: AdmissionSettings | None = None
    """The validating admission webhook (refuse or warn about writes that would make a
    NetworkPolicy differ from Git); null: none."""
    remediation: RemediationSettings = Field(default_factory=RemediationSettings)
    """Which drifts driftwatch reverts to Git by itself (default: none, alert only)."""

    @model_validator(mode="wrap")
    @classmethod
    def _receivers_known(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        settings = handler(data)
        problems: list[InitErrorDetails] = []
        seen: set[str] = set()
        for i, notifier in enumerate(settings.notifiers):
            if notifier.name in seen:
                problems.append(custom_error(("notifiers", i, "name"), "names must be unique"))
            seen.add(notifier.name)
        for i, notifier in enumerate(settings.notifiers):
            ends_after = getattr(notifier.config, "ends_after", None)
            if notifier.type == "alertmanager" and isinstance(ends_after, float):
                repeat = settings.repeat_interval
                if repeat <= 0 or ends_after <= repeat:
                    problems.append(
                        custom_error(
                            ("notifiers", i, "ends_after"),
                            "must be longer than repeat_interval (reminders refresh open "
                            "alerts; without them Alertmanager would resolve open incidents)",
                        )
                    )
        for i, route in enumerate(settings.routes):
            unknown = [r for r in route.receivers if r not in seen]
            if unknown:
                known = ", ".join(n.name for n in settings.notifiers) or "none"
                problems.append(
                    custom_error(
                        ("routes", i, "receivers"),
                        f"{', '.join(unknown)}: not a configured notifier (configured: {known})",
                    )
                )
        if (
            settings.server is not None
            and settings.server.git_webhook_secret is not None
            and settings.desired is not None
            and settings.desired.git is None
        ):
            problems.append(
                custom_error(
                    ("server", "git_webhook_secret_file"),
                    "the Git push hook needs desired.git (desired.path is read once)",
                )
            )
        if settings.ha.enabled and not settings.notifiers:
            problems.append(
                custom_error(
                    ("ha", "enabled"),
                    "several replicas need notifiers: (only the leader notifies; without "
                    "them every replica would print every drift)",
                )
            )
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return settings

    def group_waits(self) -> dict[str, float]:
        """Each notifier's ``group_wait`` in seconds (0: real time)."""
        return {n.name: n.wait(self.group_wait) for n in self.notifiers}

    def secret_values(self) -> frozenset[str]:
        """Every secret this configuration holds (tokens, credentials in URLs): to redact."""
        found = set(secret_values(self))
        if self.desired is not None and self.desired.git is not None:
            try:
                password = urlsplit(self.desired.git.url).password
            except ValueError:  # a malformed URL: git will say so
                password = None
            if password:
                found.add(password)
        return frozenset(found)
