"""The allowed connections of one state as a list, and the difference of two states."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from driftwatch.connectivity.conns import NONE, Conns
from driftwatch.connectivity.engine import EXTERNAL, Connectivity, External, Segment, segments

__all__ = [
    "Connection",
    "DiffType",
    "PairDiff",
    "connection_list",
    "connectivity_diff",
    "diff_type",
    "external_changes",
    "runs",
]

DiffType = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class Connection:
    """``source`` may open ``conns`` to ``destination`` (names as ``ns/name[Kind]`` or,
    as netpol-analyzer's connection list writes external ranges, ``a.b.c.d-e.f.g.h``)."""

    source: str
    destination: str
    conns: Conns


@dataclass(frozen=True, slots=True)
class PairDiff:
    """One (source, destination) pair whose allowed connections differ."""

    diff_type: DiffType
    source: str
    destination: str
    ref1: Conns
    ref2: Conns
    workloads_diff_info: str | None = None
    """``workload ns/a[Kind] [and ns/b[Kind]] added|removed`` when an end exists in one
    state only."""

    def sort_key(self) -> tuple[int, str]:
        return (_ORDER[self.diff_type], self.line_body())

    def line_body(self) -> str:
        return f"source: {self.source}, destination: {self.destination}"


_ORDER = {"changed": 0, "added": 1, "removed": 2}


def runs(
    segs: Sequence[Segment], value: Callable[[Segment], tuple[Conns, Conns]]
) -> Iterator[tuple[External, Conns, Conns]]:
    """Maximal runs of adjacent segments with the same value."""
    start: Segment | None = None
    current: tuple[Conns, Conns] | None = None
    end = 0
    for seg in segs:
        v = value(seg)
        if current is not None and v == current:
            end = seg[1]
            continue
        if current is not None and start is not None:
            yield External(start[0], end), current[0], current[1]
        start, current, end = seg, v, seg[1]
    if current is not None and start is not None:
        yield External(start[0], end), current[0], current[1]


def external_changes(
    name: str,
    segs: Sequence[Segment],
    one: tuple[Connectivity, int | None],
    two: tuple[Connectivity, int | None] | None = None,
) -> Iterator[tuple[str, str, Conns, Conns]]:
    """``(source, destination, conns in one, conns in two)`` for each maximal run of
    external ranges that the workload ``name`` (index in each state; ``None``: absent
    there) may be reached from, then may reach, where the two states differ (``two``
    absent: every run ``one`` allows, against no connections)."""
    (s1, i1), (s2, i2) = one, two if two is not None else (one[0], None)

    def conns(state: Connectivity, i: int | None, seg: Segment, inbound: bool) -> Conns:
        if i is None:
            return NONE
        return state.from_external(i, seg) if inbound else state.to_external(i, seg)

    for inbound in (True, False):

        def value(seg: Segment, inbound: bool = inbound) -> tuple[Conns, Conns]:
            return conns(s1, i1, seg, inbound), conns(s2, i2, seg, inbound)

        for ext, c1, c2 in runs(segs, value):
            if c1 != c2:
                yield (str(ext), name, c1, c2) if inbound else (name, str(ext), c1, c2)


def connection_list(state: Connectivity) -> list[Connection]:
    """Every allowed (source, destination) pair, workload to workload (never to itself)
    and between a workload and an external range; sorted by source then destination."""
    out: list[Connection] = []
    names = [str(w) for w in state.workloads]
    n = len(names)
    for i in range(n):
        for j in range(n):
            if i != j and (conns := state.pair(i, j)):
                out.append(Connection(names[i], names[j], conns))
    segs = segments(state.blocks)
    for j in range(n):
        for source, destination, conns, _ in external_changes(names[j], segs, (state, j)):
            out.append(Connection(_range(source), _range(destination), conns))
    out.sort(key=lambda c: (c.source, c.destination))
    return out


def _range(name: str) -> str:
    """As the connection list names an external range: without ``[External]``."""
    return name.removesuffix(EXTERNAL)


def diff_type(c1: Conns, c2: Conns) -> DiffType:
    if not c1:
        return "added"
    if not c2:
        return "removed"
    return "changed"


def connectivity_diff(ref1: Connectivity, ref2: Connectivity) -> list[PairDiff]:
    """Every pair whose allowed connections differ from ``ref1`` to ``ref2``, changed
    first, then added, then removed (each sorted): netpol-analyzer's diff."""
    names1, names2 = ref1.index, ref2.index
    names = sorted(set(names1) | set(names2))
    found: list[PairDiff] = []

    def info(kind: DiffType, *ends: str) -> str | None:
        if kind == "changed":
            return None
        other = names1 if kind == "added" else names2
        new = [e for e in ends if e in names and e not in other]
        return f"workload {' and '.join(new)} {kind}" if new else None

    def add(source: str, destination: str, c1: Conns, c2: Conns) -> None:
        kind = diff_type(c1, c2)
        found.append(PairDiff(kind, source, destination, c1, c2, info(kind, source, destination)))

    for s in names:
        i1, i2 = names1.get(s), names2.get(s)
        for d in names:
            if s == d:
                continue
            j1, j2 = names1.get(d), names2.get(d)
            c1 = ref1.pair(i1, j1) if i1 is not None and j1 is not None else NONE
            c2 = ref2.pair(i2, j2) if i2 is not None and j2 is not None else NONE
            if c1 != c2:
                add(s, d, c1, c2)
    segs = segments([*ref1.blocks, *ref2.blocks])
    for w in names:
        for change in external_changes(w, segs, (ref1, names1.get(w)), (ref2, names2.get(w))):
            add(*change)
    found.sort(key=PairDiff.sort_key)
    return found
