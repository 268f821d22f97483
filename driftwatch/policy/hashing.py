"""Hash once, reuse: for the frozen values that key the model's caches.

A frozen dataclass hashes all its fields on every ``hash()``; for nested policy
values that is a walk of the whole tree each time one is looked up in a cache
(tens of microseconds for a large spec). :func:`cached_hash` computes it on first
use and keeps it in the object's ``_hash`` slot.

The hash of a string differs between processes, so a cached hash must never
travel: pickling (as the worker processes that parse desired files do) rebuilds
the object from its fields, and the copy hashes afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

__all__ = ["cached_hash"]

T = TypeVar("T")
_set = object.__setattr__


def cached_hash(cls: type[T]) -> type[T]:
    """Class decorator, applied above ``@dataclass(frozen=True, slots=True)``.

    The class declares ``_hash: int | None = field(default=None, init=False,
    repr=False, compare=False)``; equality stays the dataclass's own.
    """
    compared = tuple(f.name for f in fields(cls) if f.compare)  # type: ignore[arg-type]
    init = tuple(f.name for f in fields(cls) if f.init)  # type: ignore[arg-type]
    key: Callable[[Any], Any] = attrgetter(*compared) if compared else (lambda _: ())
    args: Callable[[Any], Any] = attrgetter(*init) if init else (lambda _: ())
    single = len(init) == 1

    def __hash__(self: Any) -> int:
        value: int | None = self._hash
        if value is None:
            value = hash(key(self))
            _set(self, "_hash", value)
        return value

    def __reduce__(self: Any) -> tuple[Any, ...]:
        values = args(self)
        return (cls, (values,) if single else tuple(values))

    cls.__hash__ = __hash__  # type: ignore[method-assign]
    if "__reduce__" not in cls.__dict__:  # a class may carry more than its init fields
        cls.__reduce__ = __reduce__  # type: ignore[method-assign]
    return cls
