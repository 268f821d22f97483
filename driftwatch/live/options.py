"""Tuning of the watcher: :class:`WatchOptions` (what is asked of the server, and how long
to wait for it) and :class:`Backoff` (how long to wait between failed attempts)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Backoff", "WatchOptions"]


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """How lists and watches are requested.

    ``page_size``: ``limit`` of each list page. ``server_timeout``: the ``timeoutSeconds``
    sent with a watch (rounded up to whole seconds); the server ends the stream then and the
    watcher resumes. ``read_timeout``: the longest silence tolerated on a connection before
    it is given up as half-open; it must exceed the server's bookmark interval (about a
    minute on kube-apiserver) when ``bookmarks`` is on, or a quiet cluster causes needless
    reconnects. ``bookmarks``: ask for BOOKMARK events (they keep the resume point fresh).
    ``request_timeout``: the whole of one list page, and connecting for a watch.
    ``freeze_gc``: pause the cyclic garbage collector while a list is parsed, then
    :func:`gc.freeze` what survives (the watcher's view among it). A full collection
    walks every live container: with 10,000 policies that is over 100 ms, an event-loop
    stall; frozen objects are skipped (and still freed by reference counting, as
    policies hold no cycles).
    """

    page_size: int = 500
    server_timeout: float = 300.0
    read_timeout: float = 90.0
    bookmarks: bool = True
    request_timeout: float = 60.0
    freeze_gc: bool = True

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1")
        for name in ("server_timeout", "read_timeout", "request_timeout"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds")

    @property
    def timeout_seconds(self) -> int:
        """``server_timeout`` as the whole number the API takes."""
        return max(1, math.ceil(self.server_timeout))


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt ``n`` (from 0) waits
    ``min(maximum, initial * factor**n)``, shortened by up to ``jitter`` of itself at random
    (so waits never exceed ``maximum``, and clients that failed together spread out)."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (self.initial > 0 and math.isfinite(self.initial)):
            raise ValueError("initial must be a positive number of seconds")
        if not (self.maximum >= self.initial and math.isfinite(self.maximum)):
            raise ValueError("maximum must be at least initial")
        if not self.factor >= 1:
            raise ValueError("factor must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def ceiling(self, attempt: int) -> float:
        """The wait before jitter for attempt ``attempt`` (0 for the first retry)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        try:
            return min(self.maximum, self.initial * self.factor**attempt)
        except OverflowError:
            return self.maximum

    def next_delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before retry number ``attempt`` (0-based), drawn from ``rng``."""
        ceiling = self.ceiling(attempt)
        return ceiling * (1.0 - self.jitter * rng.random())

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits of successive attempts, forever."""
        rng = rng if rng is not None else random.Random()  # noqa: S311  (not for secrets)
        attempt = 0
        while True:
            yield self.next_delay(attempt, rng)
            attempt += 1
