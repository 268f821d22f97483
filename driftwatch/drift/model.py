"""The values the drift layer produces."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from driftwatch.connectivity import BlastRadius
from driftwatch.drift.diff import unified_diff
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
    _diff: str | None = field(compare=False)
    """The unified diff, or None to render it when first asked for (see :attr:`diff`);
    not compared (it follows from the two sides)."""
    findings: tuple[Finding, ...]
    severity: Severity | None
    blast_radius: BlastRadius | None = field(default=None, compare=False)
    """Which workload pairs gain or lose connections (``None``: the topology is unknown);
    see :func:`driftwatch.drift.blast.with_blast_radius`."""

    @property
    def diff(self) -> str:
        """Unified diff of the canonical YAML, desired first (empty when in sync).

        Rendered on first use: the daemon re-evaluates drifts far more often than it
        shows them, and rendering two large policies costs more than classifying them.
        """
        text = self._diff
        if text is None:
            text = (
                unified_diff(self.desired, self.live) if self.status is not Status.IN_SYNC else ""
            )
            object.__setattr__(self, "_diff", text)
        return text

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
