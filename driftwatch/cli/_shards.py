"""``check`` on a large state: compare and render in shares, one per core.

After both states are loaded, the process forks: each child inherits them (copy-on-write,
nothing is pickled on the way in), compares its share of the keys and renders those drifts,
and sends back only text, status counts and sort keys. The parent takes a share too, then
merges the drifts in report order. The output is byte for byte what one process writes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from driftwatch.drift import Drift, IgnoreRules, all_keys, compare_keys
from driftwatch.drift.blast import Sensitivity, with_blast_radius
from driftwatch.policy import NetworkPolicy
from driftwatch.rules import RuleEngine, Severity, Status
from driftwatch.topology import Topology

__all__ = ["PARALLEL_MIN_KEYS", "Rendered", "Work", "compare_and_render", "workers"]

PARALLEL_MIN_KEYS = 2000
"""Below this many keys one process is quicker than forking."""

Index = Mapping[tuple[str, str], NetworkPolicy]


@dataclass(frozen=True, slots=True)
class Work:
    """Everything a share needs (inherited by forked children, never pickled)."""

    desired: Index
    live: Index
    engine: RuleEngine
    cluster: str
    ignore: IgnoreRules
    render: Callable[[Drift], str]
    topology: Topology | None = None
    """Workloads and namespaces: each drift then carries its blast radius."""
    sensitivity: Sensitivity = field(default_factory=Sensitivity)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A whole report, rendered: its drifts in report order, with what the summary needs."""

    drifts: list[str]
    counts: Counter[Status]
    ignored: int
    max_severity: Severity | None


_WORK: Work | None = None
"""Set in the parent just before forking: what the children compare."""


def workers() -> int:
    """The cores this process may use (at most 4)."""
    if not hasattr(os, "sched_getaffinity"):
        return 1
    return min(len(os.sched_getaffinity(0)), 4)


Share = tuple[list[tuple[tuple[int, str, str, str], str]], Counter[Status], int, Severity | None]


def _share(index: int, count: int, work: Work | None = None) -> Share:
    work = work or _WORK
    if work is None:
        raise RuntimeError("a share was started without the loaded states (not forked?)")
    keys = all_keys(work.desired, work.live)[index::count]
    report = compare_keys(
        keys, work.desired, work.live, work.engine, cluster=work.cluster, ignore=work.ignore
    )
    found = report.drifts
    worst = report.max_severity
    if work.topology is not None:
        by_ns: dict[str, list[NetworkPolicy]] = {}
        for (ns, _), policy in work.live.items():
            by_ns.setdefault(ns, []).append(policy)
        found = [with_blast_radius(d, work.topology, by_ns, work.sensitivity) for d in found]
        worst = max((d.severity for d in found if d.severity is not None), default=None)
    drifts = [(d.sort_key(), work.render(d)) for d in found]
    return drifts, report.counts, report.ignored, worst


def compare_and_render(work: Work, count: int) -> Rendered:
    """Compare every key and render each drift, in ``count`` processes when it pays."""
    keys = len(work.desired.keys() | work.live.keys())
    if count < 2 or keys < PARALLEL_MIN_KEYS or "fork" not in _start_methods():
        shares = [_share(0, 1, work)]
    else:
        shares = list(_forked(work, count))
    drifts = sorted((d for share in shares for d in share[0]), key=lambda d: d[0])
    counts: Counter[Status] = Counter(dict.fromkeys(Status, 0))
    for share in shares:
        counts.update(share[1])
    severities = [s[3] for s in shares if s[3] is not None]
    return Rendered(
        [text for _, text in drifts],
        counts,
        sum(s[2] for s in shares),
        max(severities) if severities else None,
    )


def _start_methods() -> list[str]:
    return multiprocessing.get_all_start_methods()


def _forked(work: Work, count: int) -> Iterator[Share]:
    global _WORK  # noqa: PLW0603 - how forked children receive the loaded states
    _WORK = work
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(count - 1, mp_context=context) as pool:
            futures = [pool.submit(_share, i, count) for i in range(1, count)]
            yield _share(0, count, work)  # the parent's own share, meanwhile
            for future in futures:
                yield future.result()
    finally:
        _WORK = None
