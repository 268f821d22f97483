"""The values the drift layer produces."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from driftwatch.policy import NetworkPolicy, PolicyKey, Provenance
from driftwatch.rules import Finding, Severity, Status

__all__ = ["Drift", "Report"]


@dataclass(frozen=True, slots=True)
class Drift:
    """How one key stands: both sides, the diff, the findings, and the worst severity."""

    key: PolicyKey
    status: Status
    desired: NetworkPolicy | None
    live: NetworkPolicy | None
    diff: str
    findings: tuple[Finding, ...]
    severity: Severity | None

    @property
    def source(self) -> Provenance | None:
        """Where the desired side came from in Git."""
        return self.desired.source if self.desired is not None else None

    def sort_key(self) -> tuple[int, str, str, str]:
        """Most severe first, then namespace, name, cluster."""
        rank = -1 if self.severity is None else int(self.severity)
        return (-rank, self.key.namespace, self.key.name, self.key.cluster)


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of comparing a whole desired state with a whole live state."""

    drifts: Sequence[Drift]
    """Every key that is not in sync, most severe first."""
    counts: Counter[Status]
    """How many keys are in each status, in-sync included."""
    ignored: int = 0
    """Keys left alone by the ignore rules."""

    @property
    def max_severity(self) -> Severity | None:
        return max((d.severity for d in self.drifts if d.severity is not None), default=None)
