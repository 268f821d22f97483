"""Sets of integers as sorted, disjoint, inclusive intervals: the base of port and IP sets."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Intervals", "contains", "intersect", "normalise", "subtract", "union"]

Intervals = tuple[tuple[int, int], ...]
"""Sorted, disjoint, non-adjacent inclusive ``(lo, hi)`` pairs."""


def normalise(pairs: Iterable[tuple[int, int]]) -> Intervals:
    """Sort and merge overlapping or adjacent intervals."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(pairs):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def union(a: Intervals, b: Intervals) -> Intervals:
    if not a:
        return b
    if not b:
        return a
    return normalise((*a, *b))


def subtract(a: Intervals, b: Intervals) -> Intervals:
    """``a`` minus ``b``."""
    if not a or not b:
        return a
    out: list[tuple[int, int]] = []
    j = 0
    for lo, hi in a:
        cur = lo
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= hi:
            blo, bhi = b[k]
            if blo > cur:
                out.append((cur, blo - 1))
            cur = max(cur, bhi + 1)
            if cur > hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


def intersect(a: Intervals, b: Intervals) -> Intervals:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def contains(a: Intervals, b: Intervals) -> bool:
    """Whether ``a`` includes every element of ``b``."""
    return not subtract(b, a)
