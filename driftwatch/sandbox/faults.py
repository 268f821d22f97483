"""Fault injection: what a flaky API server does to its clients.

* :meth:`Faults.cut_watches` ends every open watch stream (cleanly, like a server-side
  timeout, or abruptly, like a dropped connection);
* :meth:`Faults.compact` forgets the watch history, so a watch from an older
  resourceVersion gets an ``ERROR`` event with a 410 ``Expired`` Status;
* :meth:`Faults.refuse` drops connections without an answer, :meth:`Faults.delay` answers
  late, :meth:`Faults.fail` answers with an error Status (500 by default) — each for
  ``count`` requests and/or ``duration`` seconds (neither: until :meth:`Faults.clear`),
  optionally only for paths containing ``match``;
* :meth:`Faults.restart` is an API server restart: open watches drop, the history is gone
  (objects stay, and resourceVersions keep counting from where they were, as after a
  restart on the same etcd), and requests may be refused for ``downtime`` seconds.

Requests under ``/_sandbox/`` (the admin endpoints) are never affected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from driftwatch.sandbox.store import Store

__all__ = ["FaultKind", "FaultRule", "Faults"]

FaultKind = Literal["refuse", "delay", "fail"]


@dataclass(slots=True)
class FaultRule:
    """One active fault. ``remaining`` requests (None: any number) until ``until`` (a
    ``time.monotonic()`` deadline; None: no deadline)."""

    kind: FaultKind
    remaining: int | None = None
    until: float | None = None
    match: str | None = None
    seconds: float = 0.0
    status: int = 500

    def active(self, now: float) -> bool:
        return (self.remaining is None or self.remaining > 0) and (
            self.until is None or now < self.until
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "until": self.until,
            "match": self.match,
            "seconds": self.seconds,
            "status": self.status,
        }


class Faults:
    """The fault switches of one sandbox (call them on the sandbox's event loop thread)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self.rules: list[FaultRule] = []
        self.restarts = 0

    def _add(
        self,
        kind: FaultKind,
        count: int | None,
        duration: float | None,
        match: str | None,
        **extra: Any,
    ) -> FaultRule:
        if count is not None and count < 0:
            raise ValueError("count must be >= 0")
        if duration is not None and duration < 0:
            raise ValueError("duration must be >= 0")
        until = None if duration is None else self.clock() + duration
        rule = FaultRule(kind, count, until, match, **extra)
        self.rules.append(rule)
        return rule

    def cut_watches(self, *, abrupt: bool = False) -> int:
        """End all open watch streams; returns how many were open."""
        return self.store.cut_watches(abrupt=abrupt)

    def compact(self, resource_version: int | None = None) -> int:
        """Forget history up to ``resource_version`` (default: everything so far)."""
        return self.store.compact(resource_version)

    def refuse(
        self, *, count: int | None = None, duration: float | None = None, match: str | None = None
    ) -> FaultRule:
        """Drop connections without answering."""
        return self._add("refuse", count, duration, match)

    def delay(
        self,
        seconds: float,
        *,
        count: int | None = None,
        duration: float | None = None,
        match: str | None = None,
    ) -> FaultRule:
        """Answer ``seconds`` late."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        return self._add("delay", count, duration, match, seconds=seconds)

    def fail(
        self,
        *,
        status: int = 500,
        count: int | None = None,
        duration: float | None = None,
        match: str | None = None,
    ) -> FaultRule:
        """Answer with an error Status (500 InternalError by default; 429 and 503 carry
        ``Retry-After: 1``)."""
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        return self._add("fail", count, duration, match, status=status)

    def restart(self, *, downtime: float = 0.0) -> None:
        """Drop open watches, empty the history, refuse requests for ``downtime`` seconds."""
        self.restarts += 1
        self.store.cut_watches(abrupt=True)
        self.store.compact()
        if downtime > 0:
            self.refuse(duration=downtime)

    def clear(self) -> None:
        """Remove every refuse/delay/fail rule."""
        self.rules.clear()

    def pick(self, path: str) -> FaultRule | None:
        """The rule that applies to a request for ``path`` (its count is used up by one)."""
        now = self.clock()
        self.rules = [r for r in self.rules if r.active(now)]
        for rule in self.rules:
            if rule.match is None or rule.match in path:
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule
        return None

    def describe(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [r.describe() for r in self.rules if r.active(now)]
