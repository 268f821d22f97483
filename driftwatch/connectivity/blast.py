"""The blast radius of one policy's drift: which workload pairs and external ranges gain
or lose connections when the policy is as it is live rather than as Git has it, every
other policy as it is."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from driftwatch.connectivity.conns import ALL, FULL, NONE, PROTOCOLS, Conns
from driftwatch.connectivity.diff import PairDiff, diff_type, external_changes
from driftwatch.connectivity.engine import Connectivity, segments
from driftwatch.connectivity.render import diff_json
from driftwatch.policy import NetworkPolicy
from driftwatch.semantic import intervals as iv
from driftwatch.topology import Topology

__all__ = ["BlastRadius", "blast_radius"]

PAIRS_SHOWN = 50
"""Pairs a JSON body carries at most (the counts are always whole)."""


@dataclass(frozen=True, slots=True)
class BlastRadius:
    """Before: Git's version of the policy; after: the live one."""

    selected: tuple[str, ...]
    """Workloads either version applies to (``ns/name[Kind]``)."""
    pairs: tuple[PairDiff, ...]
    """Pairs whose allowed connections differ (ref1 before, ref2 after), netpol-analyzer's
    order."""

    @property
    def selects_no_workload(self) -> bool:
        return not self.selected

    def gained(self) -> list[PairDiff]:
        """Pairs that may now open something they could not (an exposure)."""
        return [p for p in self.pairs if (p.ref2 & _complement(p.ref1))]

    def lost(self) -> list[PairDiff]:
        """Pairs that lost something they could open (an isolation)."""
        return [p for p in self.pairs if (p.ref1 & _complement(p.ref2))]

    def to_json(self, limit: int = PAIRS_SHOWN) -> dict[str, Any]:
        counts = {"added": 0, "removed": 0, "changed": 0}
        for p in self.pairs:
            counts[p.diff_type] += 1
        return {
            "selected": list(self.selected),
            "selects_no_workload": self.selects_no_workload,
            **counts,
            "pairs": [diff_json(p) for p in self.pairs[:limit]],
            "truncated": max(0, len(self.pairs) - limit),
        }

    def summary(self, limit: int = 3) -> list[str]:
        """A line per pair, the first ``limit``: ``shop/web[Deployment] -> prod/db[StatefulSet]:
        No Connections => TCP 5432``."""
        return [
            f"{p.source} -> {p.destination}: {p.ref1.text()} => {p.ref2.text()}"
            for p in self.pairs[:limit]
        ]


def _complement(c: Conns) -> Conns:
    if c is ALL:
        return NONE
    have = dict(c.ports)
    return Conns.of({p: iv.subtract(FULL, have.get(p, ())) for p in PROTOCOLS})


def blast_radius(
    topology: Topology,
    others: Mapping[str, Collection[NetworkPolicy]],
    desired: NetworkPolicy | None,
    live: NetworkPolicy | None,
) -> BlastRadius:
    """What changes when the policy is ``live`` instead of ``desired`` (either ``None``:
    absent). ``others``: every policy of the namespace, by namespace, without this one's
    key (the others of other namespaces matter as the far end of a pair)."""
    policy = desired or live
    if policy is None:
        return BlastRadius((), ())
    ns = policy.namespace
    same = [p for p in others.get(ns, ()) if p.name != policy.name]
    before_ns = {**others, ns: [*same, desired] if desired is not None else same}
    after_ns = {**others, ns: [*same, live] if live is not None else same}
    before = Connectivity(topology, by_namespace=before_ns)
    after = Connectivity(topology, by_namespace=after_ns)
    subjects = sorted(
        set(before.selected(desired) if desired is not None else ())
        | set(after.selected(live) if live is not None else ())
    )
    names = [str(w) for w in topology.workloads]
    found: list[PairDiff] = []

    def add(source: str, destination: str, c1: Conns, c2: Conns) -> None:
        found.append(PairDiff(diff_type(c1, c2), source, destination, c1, c2))

    for a in subjects:
        for x in range(len(names)):
            if x == a:
                continue
            for s, d in ((x, a), (a, x)):
                c1, c2 = before.pair(s, d), after.pair(s, d)
                if c1 != c2:
                    add(names[s], names[d], c1, c2)
        segs = segments([*before.blocks_of(a), *after.blocks_of(a)])
        for change in external_changes(names[a], segs, (before, a), (after, a)):
            add(*change)
    unique = {(p.source, p.destination): p for p in found}
    pairs = sorted(unique.values(), key=PairDiff.sort_key)
    return BlastRadius(tuple(names[i] for i in subjects), tuple(pairs))
