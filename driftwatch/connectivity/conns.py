"""Sets of allowed connections: per protocol (TCP, UDP, SCTP), a set of ports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from driftwatch.semantic import intervals as iv

__all__ = ["ALL", "NONE", "PROTOCOLS", "Conns"]

PROTOCOLS = ("SCTP", "TCP", "UDP")
"""The protocols a NetworkPolicy names, in the order they are printed."""
FULL: iv.Intervals = ((1, 65535),)


@dataclass(frozen=True, slots=True)
class Conns:
    """Allowed connections: ``(protocol, ports)`` pairs, sorted by protocol, none empty."""

    ports: tuple[tuple[str, iv.Intervals], ...] = ()

    @staticmethod
    def of(mapping: Mapping[str, iv.Intervals]) -> Conns:
        return Conns(tuple((p, mapping[p]) for p in PROTOCOLS if mapping.get(p)))

    @staticmethod
    def port_range(protocol: str, lo: int, hi: int) -> Conns:
        return Conns(((protocol, ((lo, hi),)),)) if lo <= hi else NONE

    def __bool__(self) -> bool:
        return bool(self.ports)

    def _dict(self) -> dict[str, iv.Intervals]:
        return dict(self.ports)

    def __or__(self, other: Conns) -> Conns:
        if not other.ports or self is ALL:
            return self
        if not self.ports or other is ALL:
            return other
        a, b = self._dict(), other._dict()
        return _canon(Conns.of({p: iv.union(a.get(p, ()), b.get(p, ())) for p in PROTOCOLS}))

    def __and__(self, other: Conns) -> Conns:
        if not self.ports or other is ALL:
            return self
        if not other.ports or self is ALL:
            return other
        a, b = self._dict(), other._dict()
        return _canon(Conns.of({p: iv.intersect(a.get(p, ()), b.get(p, ())) for p in PROTOCOLS}))

    @property
    def is_all(self) -> bool:
        return self is ALL or self == ALL

    def text(self) -> str:
        """As netpol-analyzer prints it: ``All Connections``, ``No Connections``, or
        ``SCTP 7070,TCP 8080-8081,UDP 9090`` (protocols sorted, ports as ranges)."""
        if not self.ports:
            return "No Connections"
        if self.is_all:
            return "All Connections"
        return ",".join(f"{protocol} {_ranges(ports)}" for protocol, ports in self.ports)

    def to_json(self) -> dict[str, list[str]] | str:
        """``"all"``, or ``{"TCP": ["80", "8080-8081"], ...}`` (empty: no connections)."""
        if self.is_all:
            return "all"
        return {protocol: _ranges(ports).split(",") for protocol, ports in self.ports}


def _ranges(ports: iv.Intervals) -> str:
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ports)


ALL = Conns(tuple((p, FULL) for p in PROTOCOLS))
NONE = Conns()


def _canon(conns: Conns) -> Conns:
    """``ALL`` itself for every protocol's every port (so ``is`` tests are quick)."""
    return ALL if conns == ALL else conns


def union_all(sets: Iterable[Conns]) -> Conns:
    out = NONE
    for conns in sets:
        out = out | conns
        if out is ALL:
            break
    return out
