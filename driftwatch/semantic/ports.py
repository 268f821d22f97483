"""Port sets: numeric ranges per protocol, plus named ports (resolved only on pods)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

from driftwatch.policy import PolicyPort
from driftwatch.policy.hashing import cached_hash
from driftwatch.semantic import intervals as iv

__all__ = ["ALL_PORTS", "NO_PORTS", "PROTOCOLS", "PortSet"]

PROTOCOLS = ("TCP", "UDP", "SCTP")
_FULL: iv.Intervals = ((1, 65535),)
_ALL_RANGES = tuple((p, _FULL) for p in PROTOCOLS)


@cached_hash
@dataclass(frozen=True, slots=True)
class PortSet:
    """Canonical: protocols in fixed order, merged ranges, names only where not implied.

    A named port resolves to a number on each destination pod, which a policy alone
    does not know; so a name is its own element, covered only by the same name or by
    the protocol's whole range.
    """

    ranges: tuple[tuple[str, iv.Intervals], ...] = ()
    names: frozenset[tuple[str, str]] = frozenset()
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)

    @staticmethod
    def build(ranges: dict[str, iv.Intervals], names: Iterable[tuple[str, str]]) -> PortSet:
        clean = tuple((p, ranges[p]) for p in PROTOCOLS if ranges.get(p))
        full = {p for p, r in clean if r == _FULL}
        return PortSet(clean, frozenset(n for n in names if n[0] not in full))

    @staticmethod
    def of(ports: Iterable[PolicyPort]) -> PortSet:
        """The ports of one rule; no ports at all means every port."""
        ranges: dict[str, list[tuple[int, int]]] = {}
        names: set[tuple[str, str]] = set()
        empty = True
        for port in ports:
            empty = False
            if port.port is None:
                ranges.setdefault(port.protocol, []).append((1, 65535))
            elif isinstance(port.port, str):
                names.add((port.protocol, port.port))
            else:
                end = port.end_port if port.end_port is not None else port.port
                ranges.setdefault(port.protocol, []).append((port.port, end))
        if empty:
            return ALL_PORTS
        return PortSet.build({p: iv.normalise(r) for p, r in ranges.items()}, names)

    def _map(self) -> dict[str, iv.Intervals]:
        return dict(self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges or self.names)

    # The set operations are memoised (``_union`` etc. below): the same few port sets meet
    # again and again across the peers of a policy and across policies.
    def __or__(self, other: PortSet) -> PortSet:
        if not other:
            return self
        if not self:
            return other
        return _union(self, other)

    def _or(self, other: PortSet) -> PortSet:
        a, b = self._map(), other._map()
        return PortSet.build(
            {p: iv.union(a.get(p, ()), b.get(p, ())) for p in PROTOCOLS}, self.names | other.names
        )

    def __sub__(self, other: PortSet) -> PortSet:
        if not other or not self:
            return self
        return _difference(self, other)

    def _sub(self, other: PortSet) -> PortSet:
        if self == other or other.ranges == _ALL_RANGES:
            return NO_PORTS
        a, b = self._map(), other._map()
        full = {p for p, r in other.ranges if r == _FULL}
        return PortSet.build(
            {p: iv.subtract(a.get(p, ()), b.get(p, ())) for p in PROTOCOLS},
            (n for n in self.names - other.names if n[0] not in full),
        )

    def __and__(self, other: PortSet) -> PortSet:
        if not self or not other:
            return NO_PORTS
        return _intersection(self, other)

    def _and(self, other: PortSet) -> PortSet:
        a, b = self._map(), other._map()
        full_a = {p for p, r in self.ranges if r == _FULL}
        full_b = {p for p, r in other.ranges if r == _FULL}
        names = (self.names & other.names) | {n for n in self.names if n[0] in full_b}
        names |= {n for n in other.names if n[0] in full_a}
        return PortSet.build(
            {p: iv.intersect(a.get(p, ()), b.get(p, ())) for p in PROTOCOLS}, names
        )

    def covers(self, other: PortSet) -> bool:
        return not (other - self)

    @property
    def is_all(self) -> bool:
        return self == ALL_PORTS

    def has(self, protocol: str, port: int) -> bool:
        return any(lo <= port <= hi for lo, hi in self._map().get(protocol, ()))

    def describe(self) -> str:
        """``TCP 80, 443, 8000-8999; UDP 53; TCP port "metrics"``, or ``all ports``."""
        return _describe(self)

    def _describe(self) -> str:
        if self.is_all:
            return "all ports"
        missing = ALL_PORTS - self
        if not self.names and missing and not missing.names and len(missing.ranges) == 1:
            return f"all ports except {missing.describe()}"
        parts = []
        for proto, ranges in self.ranges:
            if ranges == _FULL:
                parts.append(f"all {proto} ports")
                continue
            nums = ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)
            parts.append(f"{proto} {nums}")
        for proto, name in sorted(self.names):
            parts.append(f'{proto} port "{name}"')
        return "; ".join(parts) if parts else "no ports"

    def to_json(self) -> list[str]:
        """``["TCP/80", "TCP/8000-8999", "UDP/53", "TCP/metrics"]``; ``["all"]`` for every port."""
        return list(_to_json(self))

    def _to_json(self) -> list[str]:
        if self.is_all:
            return ["all"]
        out: list[str] = []
        for proto, ranges in self.ranges:
            out.extend(f"{proto}/{lo}" if lo == hi else f"{proto}/{lo}-{hi}" for lo, hi in ranges)
        out.extend(f"{proto}/{name}" for proto, name in sorted(self.names))
        return out


ALL_PORTS = PortSet(tuple((p, _FULL) for p in PROTOCOLS), frozenset())
NO_PORTS = PortSet()


@functools.lru_cache(maxsize=65536)
def _union(a: PortSet, b: PortSet) -> PortSet:
    return a._or(b)


@functools.lru_cache(maxsize=65536)
def _difference(a: PortSet, b: PortSet) -> PortSet:
    return a._sub(b)


@functools.lru_cache(maxsize=65536)
def _intersection(a: PortSet, b: PortSet) -> PortSet:
    return a._and(b)


def clear_operation_caches() -> None:
    """Forget the memoised unions, differences and intersections (benchmarks)."""
    for cache in (_union, _difference, _intersection):
        cache.cache_clear()


# Port sets repeat across flows, findings and policies; their texts are asked for many times.
@functools.lru_cache(maxsize=16384)
def _describe(ports: PortSet) -> str:
    return ports._describe()


@functools.lru_cache(maxsize=16384)
def _to_json(ports: PortSet) -> tuple[str, ...]:
    return tuple(ports._to_json())
