"""Label selectors as sets: canonical form, emptiness, containment, and splitting.

A selector is a conjunction of per-key constraints; keys are independent, so
containment is decided exactly: ``A ⊇ B`` iff for every key ``A`` constrains,
``B``'s constraint on that key is a subset of ``A``'s. A constraint on one key
is: may the key be absent, and which values are allowed (a finite set ``in``,
or every value but a finite set, ``notin``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from driftwatch.policy import LabelSelector
from driftwatch.policy.hashing import cached_hash

__all__ = [
    "NAME_LABEL",
    "Constraint",
    "Sel",
    "canonical",
    "contains",
    "describe",
    "name_selector",
    "split_in",
]

NAME_LABEL = "kubernetes.io/metadata.name"
"""The label the API server puts on every namespace (Kubernetes 1.21+), immutable."""


@cached_hash
@dataclass(frozen=True, slots=True)
class Constraint:
    """What one key may be. ``finite``: values are exactly ``values`` (else: all but them)."""

    key: str
    absent_ok: bool
    finite: bool
    values: frozenset[str]
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return not self.absent_ok and self.finite and not self.values

    def __and__(self, other: Constraint) -> Constraint:
        absent = self.absent_ok and other.absent_ok
        if self.finite and other.finite:
            return Constraint(self.key, absent, True, self.values & other.values)
        if self.finite:
            return Constraint(self.key, absent, True, self.values - other.values)
        if other.finite:
            return Constraint(self.key, absent, True, other.values - self.values)
        return Constraint(self.key, absent, False, self.values | other.values)

    def within(self, other: Constraint) -> bool:
        """Every label state this constraint admits, ``other`` admits too."""
        if self.absent_ok and not other.absent_ok:
            return False
        if self.finite:
            return self.values <= other.values if other.finite else not self.values & other.values
        return False if other.finite else other.values <= self.values

    @property
    def admits_absent(self) -> bool:
        return self.absent_ok

    def describe(self) -> str:
        if self.finite and not self.absent_ok:
            if len(self.values) == 1:
                return f"{self.key}={next(iter(self.values))}"
            return f"{self.key} in ({','.join(sorted(self.values))})"
        if self.finite and self.absent_ok:
            if not self.values:
                return f"!{self.key}"
            return f"{self.key} in ({','.join(sorted(self.values))}) or unset"
        if not self.absent_ok:
            if not self.values:
                return self.key
            return f"{self.key} notin ({','.join(sorted(self.values))}) and set"
        return f"{self.key} notin ({','.join(sorted(self.values))})"


Sel = tuple[Constraint, ...] | None
"""A canonical selector: constraints sorted by key; ``()`` selects everything, ``None`` nothing."""


@functools.lru_cache(maxsize=16384)
def canonical(selector: LabelSelector) -> Sel:
    by_key: dict[str, Constraint] = {}

    def add(c: Constraint) -> None:
        prev = by_key.get(c.key)
        by_key[c.key] = c if prev is None else prev & c

    for key, value in selector.match_labels:
        add(Constraint(key, False, True, frozenset((value,))))
    for r in selector.match_expressions:
        if r.operator == "In":
            add(Constraint(r.key, False, True, frozenset(r.values)))
        elif r.operator == "NotIn":
            add(Constraint(r.key, True, False, frozenset(r.values)))
        elif r.operator == "Exists":
            add(Constraint(r.key, False, False, frozenset()))
        else:
            add(Constraint(r.key, True, True, frozenset()))
    if any(c.empty for c in by_key.values()):
        return None
    # A constraint that admits everything (absent ok, notin nothing) constrains nothing.
    return tuple(
        by_key[k]
        for k in sorted(by_key)
        if not (by_key[k].absent_ok and not by_key[k].finite and not by_key[k].values)
    )


@functools.lru_cache(maxsize=4096)
def name_selector(namespace: str) -> Sel:
    """The namespace called ``namespace``, as a selector on its name label."""
    return (Constraint(NAME_LABEL, False, True, frozenset((namespace,))),)


def contains(a: Sel, b: Sel) -> bool:
    """Whether ``a`` selects everything ``b`` selects."""
    if b is None:
        return True
    if a is None:
        return False
    theirs = {c.key: c for c in b}
    for mine in a:
        other = theirs.get(mine.key)
        if other is None:
            other = Constraint(mine.key, True, False, frozenset())
        if not other.within(mine):
            return False
    return True


def split_in(sel: Sel, limit: int = 32) -> list[Sel]:
    """Split ``key in (a,b)`` into one selector per value, so unions written either way compare.

    Splits only while the number of pieces stays within ``limit``.
    """
    if sel is None:
        return []
    pieces: list[tuple[Constraint, ...]] = [()]
    for c in sel:
        if (
            c.finite
            and not c.absent_ok
            and len(c.values) > 1
            and len(pieces) * len(c.values) <= limit
        ):
            pieces = [
                (*p, Constraint(c.key, False, True, frozenset((v,))))
                for p in pieces
                for v in sorted(c.values)
            ]
        else:
            pieces = [(*p, c) for p in pieces]
    return list(pieces)


@functools.lru_cache(maxsize=16384)
def describe(sel: Sel) -> str:
    if sel is None:
        return "nothing"
    return ",".join(c.describe() for c in sel)
