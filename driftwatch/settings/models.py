"""The configuration file's schema (pydantic v2).

Validated once at start-up; the values are then turned into the plain dataclasses
the core takes (``IgnoreRules``, ``RuleOptions``), so nothing below this layer
depends on pydantic and no setting lives in a module global.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from driftwatch.drift import IgnoreRules, PolicyMatcher
from driftwatch.policy import LabelSelector, parse_selector_string
from driftwatch.policy.parse import PolicyError, parse_label_selector
from driftwatch.rules import CATALOGUE, Escalation, RuleOptions, Severity
from driftwatch.rules import RuleSettings as CoreRuleSettings
from driftwatch.rules.risk import SENSITIVE_PORTS
from driftwatch.semantic import PortSet
from driftwatch.semantic.intervals import normalise
from driftwatch.semantic.ipspace import cidr_intervals

__all__ = ["IgnoreSettings", "PolicyIgnore", "RuleSettings", "Settings"]

_RULE_IDS = frozenset(r.id for r in CATALOGUE)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class Settings(_Model):
    """The driftwatch configuration file."""

    default_namespace: str = "default"
    """Namespace for manifests that do not name one (as ``kubectl apply`` would use)."""
    ignore: IgnoreSettings = Field(default_factory=IgnoreSettings)
    """Namespaces and policies to leave alone."""
    rules: RuleSettings = Field(default_factory=RuleSettings)
    """Rule selection and severity overrides."""
