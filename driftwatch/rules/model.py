"""Values of the risk engine: severities, directions, findings, and the rule interface.

A rule is a small pure function with a stable id. It looks at one (desired, live)
pair and returns findings: a one-line human message plus structured evidence.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from driftwatch.policy import NetworkPolicy, PolicyKey
from driftwatch.semantic import ChangeSet, PortSet
from driftwatch.semantic.intervals import Intervals

__all__ = [
    "Direction",
    "Finding",
    "Hit",
    "Rule",
    "RuleContext",
    "RuleFunc",
    "RuleSettings",
    "Severity",
    "Status",
]


class Severity(enum.IntEnum):
    """Ordered: ``info < low < medium < high < critical``. ``str()`` is the lower-case name."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """``"high"`` -> ``Severity.HIGH``; ``ValueError`` naming the choices otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = ", ".join(str(s) for s in cls)
            raise ValueError(f"unknown severity {text!r}: use one of {choices}") from None

    def raised(self, levels: int = 1) -> Severity:
        """This severity raised by ``levels``, capped at critical and floored at info."""
        if not levels:
            return self
        return Severity(max(Severity.INFO, min(Severity.CRITICAL, self + levels)))


class Direction(enum.StrEnum):
    """Which way a finding moves the perimeter."""

    EXPOSURE = "exposure"
    """More traffic is allowed than Git allows."""
    ISOLATION = "isolation"
    """Traffic that Git allows is now blocked."""
    HYGIENE = "hygiene"
    """Neither: the state differs from Git without changing what traffic flows."""


class Status(enum.StrEnum):
    """How the live object of one key stands against Git."""

    IN_SYNC = "in_sync"
    MODIFIED = "modified"
    MISSING = "missing"
    UNMANAGED = "unmanaged"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a rule found about a drift."""

    rule: str
    severity: Severity
    direction: Direction
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": str(self.severity),
            "direction": str(self.direction),
            "message": self.message,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """What rules read from the configuration (beyond enabling and severities)."""

    trusted: Intervals = ()
    """Addresses that never count as public or as the world (a corporate range)."""
    sensitive_ports: PortSet = field(default_factory=PortSet)
    """Ports whose exposure escalates ``ports-widened``."""


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a rule sees: one key, its status, the two sides (``None`` = absent), and the
    semantic change set between them (``None`` when in sync)."""

    key: PolicyKey
    status: Status
    desired: NetworkPolicy | None
    live: NetworkPolicy | None
    changes: ChangeSet | None = None
    settings: RuleSettings = field(default_factory=RuleSettings)
    memo: dict[object, Any] = field(default_factory=dict, init=False, compare=False, repr=False)
    """What one rule works out that others need too (per context: see ``risk._memo``)."""


class Hit(NamedTuple):
    """What a rule body yields: the engine turns it into a :class:`Finding`."""

    message: str
    evidence: Mapping[str, Any]
    escalate: int = 0
    """Levels above the rule's (configured) severity, for escalations the rule defines."""


RuleFunc = Callable[[RuleContext], Iterable[Hit | tuple[str, Mapping[str, Any]]]]
"""A rule body: yields hits (or ``(message, evidence)`` pairs)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A catalogued rule: stable id, defaults, a description, and its body."""

    id: str
    severity: Severity
    direction: Direction
    description: str
    check: RuleFunc = field(compare=False, repr=False)
