"""IP address space as one integer line (IPv4 first, then IPv6), and maps from it to ports.

IPv4 address ``a`` is ``a``; IPv6 address ``a`` is ``2**32 + a``. An ``ipBlock`` is its
CIDR minus its excepts, so ``10.0.0.0/8`` and ``10.0.0.0/9`` + ``10.128.0.0/9`` are the
same interval. An :data:`IPMap` says which ports each address may use: canonical (maximal
runs of equal port sets), so two policies allow the same IP traffic iff their maps are equal.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
from collections.abc import Iterable

from driftwatch.policy import IPBlock
from driftwatch.semantic import intervals as iv
from driftwatch.semantic.ports import NO_PORTS, PortSet

__all__ = [
    "ALL_IPS",
    "ALL_V4",
    "ALL_V6",
    "METADATA_API",
    "PUBLIC",
    "PUBLIC_V4",
    "PUBLIC_V6",
    "IPMap",
    "block_intervals",
    "build_map",
    "cidr_intervals",
    "covered_ports",
    "describe",
    "map_addresses",
    "subtract_maps",
    "to_cidrs",
]

V6_OFFSET = 1 << 32
ALL_V4: iv.Intervals = ((0, V6_OFFSET - 1),)
ALL_V6: iv.Intervals = ((V6_OFFSET, V6_OFFSET + (1 << 128) - 1),)
ALL_IPS: iv.Intervals = ((0, V6_OFFSET + (1 << 128) - 1),)

IPMap = tuple[tuple[int, int, PortSet], ...]


@functools.lru_cache(maxsize=16384)
def cidr_intervals(cidr: str) -> iv.Intervals:
    net = ipaddress.ip_network(cidr, strict=False)
    base = 0 if net.version == 4 else V6_OFFSET
    return ((base + int(net.network_address), base + int(net.broadcast_address)),)


@functools.lru_cache(maxsize=16384)
def block_intervals(block: IPBlock) -> iv.Intervals:
    """The addresses an ipBlock admits: its CIDR minus every except."""
    excepts = iv.normalise(r for e in block.excepts for r in cidr_intervals(e))
    return iv.subtract(cidr_intervals(block.cidr), excepts)


_NON_PUBLIC = (
    "10.0.0.0/8",  # RFC 1918
    "172.16.0.0/12",  # RFC 1918
    "192.168.0.0/16",  # RFC 1918
    "100.64.0.0/10",  # RFC 6598 (carrier-grade NAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local
    "fc00::/7",  # RFC 4193 unique local
    "::1/128",  # loopback
    "fe80::/10",  # link-local
)
PUBLIC: iv.Intervals = iv.subtract(
    ALL_IPS, iv.normalise(r for c in _NON_PUBLIC for r in cidr_intervals(c))
)
"""Every address that is not private (RFC 1918, 6598, 4193), loopback or link-local."""
PUBLIC_V4: iv.Intervals = iv.intersect(PUBLIC, ALL_V4)
PUBLIC_V6: iv.Intervals = iv.intersect(PUBLIC, ALL_V6)

METADATA_API: iv.Intervals = iv.normalise(
    (*cidr_intervals("169.254.169.254/32"), *cidr_intervals("fd00:ec2::254/128"))
)
"""The cloud instance-metadata endpoints (AWS, GCP, Azure, ... and AWS's IPv6 one)."""


def build_map(entries: Iterable[tuple[iv.Intervals, PortSet]]) -> IPMap:
    """The canonical map of the union of ``(addresses, ports)`` allowances."""
    pieces = [(lo, hi, ports) for ranges, ports in entries if ports for lo, hi in ranges]
    if not pieces:
        return ()
    pieces.sort(key=lambda piece: piece[0])
    if all(a[1] < b[0] for a, b in itertools.pairwise(pieces)):
        # The usual case (disjoint blocks): the map is the pieces, equal neighbours merged.
        out: list[tuple[int, int, PortSet]] = []
        for lo, hi, ports in pieces:
            _append(out, lo, hi, ports)
        return tuple(out)
    # Overlaps: sweep the boundaries, keeping the port sets of the pieces open at each one
    # (a multiset: few distinct sets, as every peer of one rule shares its rule's).
    opening: dict[int, list[PortSet]] = {}
    closing: dict[int, list[PortSet]] = {}
    for lo, hi, ports in pieces:
        opening.setdefault(lo, []).append(ports)
        closing.setdefault(hi + 1, []).append(ports)
    cuts = sorted(opening.keys() | closing.keys())
    active: dict[PortSet, int] = {}
    out = []
    for start, stop in itertools.pairwise(cuts):
        for ports in closing.get(start, ()):
            left = active[ports] - 1
            if left:
                active[ports] = left
            else:
                del active[ports]
        for ports in opening.get(start, ()):
            active[ports] = active.get(ports, 0) + 1
        union = NO_PORTS
        for ports in active:
            union = union | ports
        _append(out, start, stop - 1, union)
    return tuple(out)


def _append(out: list[tuple[int, int, PortSet]], lo: int, hi: int, ports: PortSet) -> None:
    if not ports:
        return
    if out and out[-1][1] + 1 == lo and out[-1][2] == ports:
        out[-1] = (out[-1][0], hi, ports)
    else:
        out.append((lo, hi, ports))


def subtract_maps(a: IPMap, b: IPMap) -> IPMap:
    """What ``a`` allows that ``b`` does not (one merge pass over both maps)."""
    if not b or not a:
        return a
    if a == b:
        return ()
    out: list[tuple[int, int, PortSet]] = []
    k, nb = 0, len(b)
    for lo, hi, ports in a:
        cur = lo
        while cur <= hi:
            while k < nb and b[k][1] < cur:
                k += 1
            if k < nb and b[k][0] <= cur:  # a run of b covers cur: subtract its ports
                end = min(b[k][1], hi)
                _append(out, cur, end, ports - b[k][2])
            else:  # a gap in b up to its next run
                end = min(b[k][0] - 1, hi) if k < nb else hi
                _append(out, cur, end, ports)
            cur = end + 1
    return tuple(out)


def map_addresses(m: IPMap) -> iv.Intervals:
    return iv.normalise((lo, hi) for lo, hi, _ in m)


def covered_ports(m: IPMap, space: iv.Intervals) -> PortSet:
    """The ports allowed to every address of ``space`` (nothing if some address has none)."""
    result: PortSet | None = None
    k, n = 0, len(m)
    for start, end in space:  # one pass over both, sorted
        while k < n and m[k][1] < start:
            k += 1
        cur = start
        while True:
            if k >= n or m[k][0] > cur:
                return NO_PORTS  # an address of ``space`` with no ports at all
            hi, ports = m[k][1], m[k][2]
            result = ports if result is None else result & ports
            if not result:
                return NO_PORTS
            if hi >= end:
                break  # the next range of ``space`` may start within this run
            cur = hi + 1
            k += 1
    return result or NO_PORTS


def _address(n: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(n) if n < V6_OFFSET else ipaddress.IPv6Address(n - V6_OFFSET)


def to_cidrs(ranges: iv.Intervals) -> list[str]:
    return list(_cidrs(ranges))


@functools.lru_cache(maxsize=16384)
def _cidrs(ranges: iv.Intervals) -> tuple[str, ...]:
    out: list[str] = []
    for lo, hi in ranges:
        for part in iv.intersect(((lo, hi),), (*ALL_V4, *ALL_V6)):
            first, last = _address(part[0]), _address(part[1])
            out.extend(str(n) for n in ipaddress.summarize_address_range(first, last))
    return tuple(out)


@functools.lru_cache(maxsize=16384)
def describe(ranges: iv.Intervals, *, limit: int = 6) -> str:
    """``0.0.0.0/0``, ``every IPv4 address except 10.0.0.0/8``, or a list of CIDRs."""
    parts: list[str] = []
    for family, full, name in ((ALL_V4, "0.0.0.0/0", "IPv4"), (ALL_V6, "::/0", "IPv6")):
        mine = iv.intersect(ranges, family)
        if not mine:
            continue
        if mine == family:
            parts.append(full)
            continue
        missing = to_cidrs(iv.subtract(family, mine))
        cidrs = to_cidrs(mine)
        if len(missing) < len(cidrs) and len(missing) <= limit:
            parts.append(f"every {name} address except {', '.join(missing)}")
        elif len(cidrs) > limit:
            parts.append(f"{', '.join(cidrs[:limit])} and {len(cidrs) - limit} more ranges")
        else:
            parts.append(", ".join(cidrs))
    return " and ".join(parts) if parts else "no address"
