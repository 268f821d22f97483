"""A drift's blast radius, and what it does to the drift's severity.

Where the topology is known (it holds at least one workload):

* ``selects-no-workload`` (info, hygiene): neither Git's version of the policy nor the live
  one applies to any workload, so the change moves no traffic now; the drift's severity
  is lowered one level (never below info). It rises again when a workload appears.
* ``sensitive-workload-exposed`` (exposure): a workload of a configured sensitive
  namespace or label gains ingress it did not have; the drift's severity is raised one
  level (at most critical).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from driftwatch.connectivity import blast_radius
from driftwatch.drift.model import Drift
from driftwatch.policy import NetworkPolicy
from driftwatch.rules import Direction, Finding, Severity, Status
from driftwatch.topology import Topology, Workload

__all__ = [
    "SELECTS_NO_WORKLOAD",
    "SENSITIVE_WORKLOAD_EXPOSED",
    "Sensitivity",
    "with_blast_radius",
]

SELECTS_NO_WORKLOAD = "selects-no-workload"
SENSITIVE_WORKLOAD_EXPOSED = "sensitive-workload-exposed"


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """Which workloads are sensitive: in a namespace matching one of ``namespaces``
    (globs), or carrying one of ``labels`` (``key`` and value, or any value for ``None``)."""

    namespaces: tuple[str, ...] = ()
    labels: tuple[tuple[str, str | None], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.namespaces or self.labels)

    def why(self, workload: Workload) -> str | None:
        """Why ``workload`` is sensitive (``None``: it is not)."""
        for glob in self.namespaces:
            if fnmatchcase(workload.namespace, glob):
                return f"namespace {workload.namespace} matches {glob}"
        have = workload.label_map
        for key, value in self.labels:
            if key in have and (value is None or have[key] == value):
                return f"label {key}={have[key]}"
        return None


def with_blast_radius(
    drift: Drift,
    topology: Topology,
    policies: Mapping[str, Collection[NetworkPolicy]],
    sensitivity: Sensitivity = Sensitivity(),
) -> Drift:
    """``drift`` with its blast radius and the two findings above (unchanged when in sync
    or when the topology holds no workload). ``policies``: the cluster's, by namespace
    (this key's own version there is replaced by each side in turn)."""
    if drift.status is Status.IN_SYNC or not topology.workloads:
        return drift
    radius = blast_radius(topology, policies, drift.desired, drift.live)
    findings = list(drift.findings)
    severity = drift.severity
    if radius.selects_no_workload:
        findings.append(
            Finding(
                SELECTS_NO_WORKLOAD,
                Severity.INFO,
                Direction.HYGIENE,
                "The policy selects no workload (in Git or live): no traffic moves now;"
                " severity lowered one level.",
                {},
            )
        )
        if severity is not None:
            severity = severity.raised(-1)
    elif sensitivity:
        by_name = {str(w): w for w in topology.workloads}
        exposed: dict[str, str] = {}
        for pair in radius.gained():
            w = by_name.get(pair.destination)
            if w is not None and (why := sensitivity.why(w)) is not None:
                exposed.setdefault(pair.destination, why)
        if exposed:
            raised = (severity or Severity.INFO).raised(1)
            names = ", ".join(sorted(exposed))
            findings.append(
                Finding(
                    SENSITIVE_WORKLOAD_EXPOSED,
                    raised,
                    Direction.EXPOSURE,
                    f"Sensitive workload(s) gain ingress: {names}; severity raised one level.",
                    {"workloads": dict(sorted(exposed.items()))},
                )
            )
            severity = raised
    return dataclasses.replace(
        drift, findings=tuple(findings), severity=severity, blast_radius=radius
    )
