"""Durable delivery: one worker per receiver drains the store's outbox.

A notification leaves the outbox only when its receiver confirmed it; a retryable failure
waits (exponential backoff with jitter, or longer if the receiver said ``Retry-After``); a
permanent one goes to the dead-letter table and is logged. One incident's notifications
reach a receiver in order (the store hands out only the oldest of each incident), and a
receiver that is slow or down delays nobody else.

With ``group_wait``, an ``opened`` notification is stored as *grouped* and due only after
the wait; once the oldest is due, every grouped one waiting for that receiver goes out as
one :class:`~driftwatch.notify.model.Batch` (a batch of one as the usual single message),
retried, dead-lettered and confirmed as a whole. Its incidents' later notifications wait
behind it, as behind any first notification.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from driftwatch.incidents import IncidentStore, Pending
from driftwatch.notify.model import Batch, Kind, Notification, Outcome, Receiver

__all__ = ["Backoff", "Limits", "Outbox", "OutcomeHook"]

Log = Any
OutcomeHook = Callable[[str, str], None]
"""``on_outcome(receiver, outcome)``, outcome ``delivered``, ``retry``, ``dead_letter`` or
``disabled`` (dead-lettered, and the receiver disabled): once per notification attempted
(a batch's members count one each). For metrics; must be cheap and must not raise."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between attempts: ``initial * factor**(attempt-1)``, capped at ``maximum``,
    with full jitter between half and all of it."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        base = min(self.maximum, self.initial * self.factor ** max(0, attempt - 1))
        wait = base * (0.5 + rng.random() / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, 3600.0))  # the receiver's word, within reason
        return wait


@dataclass(frozen=True, slots=True)
class Limits:
    """How hard one receiver may be pushed."""

    max_in_flight: int = 4
    """Deliveries at the same time (each to a different incident: one incident's
    notifications always go one after the other, in order)."""
    per_second: float | None = None
    """At most this many attempts per second (``None``: no limit)."""


class _Pacer:
    """Spaces calls at least ``interval`` seconds apart (monotonic clock)."""

    def __init__(self, per_second: float | None) -> None:
        self._interval = 0.0 if not per_second else 1.0 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self._interval


class Outbox:
    """Delivers what the store holds, to each receiver, until cancelled."""

    def __init__(
        self,
        store: IncidentStore,
        receivers: Mapping[str, Receiver],
        *,
        backoff: Backoff | None = None,
        log: Log = None,
        clock: Callable[[], float] = time.time,
        poll: float = 5.0,
        limits: Mapping[str, Limits] | None = None,
        group_wait: Mapping[str, float] | None = None,
        on_outcome: OutcomeHook | None = None,
    ) -> None:
        self.store = store
        self.receivers = dict(receivers)
        self._limits = {name: (limits or {}).get(name, Limits()) for name in self.receivers}
        self._pacers = {name: _Pacer(lim.per_second) for name, lim in self._limits.items()}
        self.backoff = backoff or Backoff()
        self._log = log if log is not None else structlog.get_logger("driftwatch.notify")
        self._clock = clock
        self._poll = poll
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        self._wakes = {name: asyncio.Event() for name in self.receivers}
        self._group_wait = {name: (group_wait or {}).get(name, 0.0) for name in self.receivers}
        self._grouped = dict.fromkeys(self.receivers, True)
        """Whether grouped notifications may be waiting for the receiver: always with a
        ``group_wait``, else until a first look found none (left by another configuration)."""
        self.delivered = 0
        self.failed = 0
        self.on_outcome = on_outcome
        self.gate: Callable[[], bool] | None = None
        """Deliver only while it answers true (high availability: while leading; checked
        before every attempt, so a leader that lost the Lease sends nothing more)."""
        """Told every attempt's outcome (see :data:`OutcomeHook`)."""

    def _count(self, receiver: str, outcome: str, n: int = 1) -> None:
        if self.on_outcome is not None:
            for _ in range(n):
                self.on_outcome(receiver, outcome)

    def wake(self) -> None:
        """New notifications were enqueued: look now rather than at the next poll."""
        for event in self._wakes.values():
            event.set()

    async def run(self) -> None:
        """One worker per receiver; returns only when cancelled (or every worker ends)."""
        disabled = await self.store.disabled_receivers()
        for name, reason in disabled.items():
            self._log.info("receiver disabled", receiver=name, reason=reason)
        waiting = await self.store.due_now(self._clock())
        if waiting:
            # Left by an earlier run: try now, not after that run's backoff.
            self._log.info("undelivered notifications from before the start", count=waiting)
        async with asyncio.TaskGroup() as group:
            for name, receiver in self.receivers.items():
                if name not in disabled:
                    group.create_task(self._worker(receiver), name=f"outbox:{name}")

    async def drain(self) -> None:
        """Deliver everything due now, once per receiver (tests, ``notify test``)."""
        disabled = await self.store.disabled_receivers()
        for name, receiver in self.receivers.items():
            if name not in disabled:
                await self._deliver_due(receiver)

    async def _worker(self, receiver: Receiver) -> None:
        wake = self._wakes[receiver.name]
        while True:
            wake.clear()
            if not await self._deliver_due(receiver):
                return  # disabled
            next_at = await self.store.next_due(receiver.name)
            wait = self._poll if next_at is None else max(0.0, next_at - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=min(wait, self._poll))

    async def _deliver_due(self, receiver: Receiver) -> bool:
        """Attempt every due notification of ``receiver``; ``False`` once it is disabled.

        Up to ``max_in_flight`` deliveries run at a time, and the next starts as soon as one
        ends (a pipeline, not rounds: with notifications trickling in one by one, rounds
        would deliver one at a time and fall behind a receiver's round-trip time). An
        incident with a delivery in flight gets no other until it ends, so each incident's
        notifications stay in order.
        """
        limits, pacer = self._limits[receiver.name], self._pacers[receiver.name]
        name, wake = receiver.name, self._wakes[receiver.name]
        running: dict[asyncio.Task[bool], str] = {}  # task -> its incident
        queue: collections.deque[Pending] = collections.deque()  # due, not yet started
        enabled = True
        try:
            while enabled and self._may_send():
                wake.clear()  # before looking, so an enqueue from now on is not missed
                batched = False
                if self._grouped[name] and len(running) < limits.max_in_flight:
                    members = await self.store.batch(name, self._clock())
                    self._grouped[name] = bool(members) or self._group_wait[name] > 0
                    if members:
                        batched = True
                        await pacer.wait()
                        if not self._may_send():
                            break
                        if not await self._attempt_batch(receiver, members):
                            enabled = False
                            break
                if not queue and len(running) < limits.max_in_flight:
                    # One look serves many deliveries (a look costs more with a longer
                    # outbox); the store gives one per incident, none of those in flight.
                    busy = set(running.values())
                    due = await self.store.due(name, self._clock())
                    queue.extend(p for p in due if p.incident_id not in busy)
                while queue and len(running) < limits.max_in_flight:
                    pending = queue.popleft()
                    task = asyncio.create_task(self._one(receiver, pacer, pending))
                    running[task] = pending.incident_id
                if not running:
                    if batched:
                        continue
                    break
                waker = asyncio.ensure_future(wake.wait())
                try:
                    await asyncio.wait([*running, waker], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waker.cancel()
                for task in [t for t in running if t.done()]:
                    del running[task]
                    enabled = enabled and task.result()
            if running:  # let what is in flight end (no duplicate by cutting it short)
                results = await asyncio.gather(*running)
                running.clear()
                enabled = enabled and all(results)
            return enabled
        finally:
            for task in running:  # cancelled: so are the deliveries in flight
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _one(self, receiver: Receiver, pacer: _Pacer, pending: Pending) -> bool:
        await pacer.wait()
        if not self._may_send():
            return True
        return await self._attempt(receiver, pending)

    def _may_send(self) -> bool:
        return self.gate is None or self.gate()

    async def _notification(self, pending: Pending) -> Notification:
        return Notification(
            id=pending.id,
            receiver=pending.receiver,
            incident_id=pending.incident_id,
            kind=Kind(pending.kind),
            body=pending.body,
            thread=await self.store.thread(pending.receiver, pending.incident_id),
            attempt=pending.attempts + 1,
        )

    async def _attempt_batch(self, receiver: Receiver, members: list[Pending]) -> bool:
        """One attempt for a batch; ``False`` once the receiver is disabled."""
        deliver_batch = getattr(receiver, "deliver_batch", None)
        if len(members) == 1 or deliver_batch is None:
            # One incident (or a receiver that cannot batch, left grouped by an earlier
            # configuration): the usual message, each retried on its own.
            for pending in members:
                if not await self._attempt(receiver, dataclasses.replace(pending, batch=None)):
                    return False
            return True
        notifications = tuple([await self._notification(p) for p in members])
        batch = Batch(str(members[0].batch), receiver.name, notifications, notifications[0].attempt)
        try:
            outcome = await deliver_batch(batch)
        except Exception as e:  # a receiver bug must not stop delivery: retried, logged
            outcome = Outcome.retry(f"{receiver.name} failed: {type(e).__name__}")
        fields = {
            "receiver": receiver.name,
            "batch": batch.id,
            "incidents": [p.incident_id for p in members],
            "kind": str(Kind.OPENED),
            "attempt": batch.attempt,
        }
        if outcome.delivered:
            threads = {
                p.incident_id: kept
                for p in members
                if (kept := (outcome.threads or {}).get(p.incident_id, outcome.thread)) is not None
            }
            await self.store.delivered_batch(members, threads)
            self.delivered += len(members)
            self._count(receiver.name, "delivered", len(members))
            self._log.info("notification delivered", **fields)
            return True
        return await self._not_delivered(receiver, members, outcome, fields)

    async def _attempt(self, receiver: Receiver, pending: Pending) -> bool:
        notification = await self._notification(pending)
        try:
            outcome = await receiver.deliver(notification)
        except Exception as e:  # a receiver bug must not stop delivery: retried, logged
            outcome = Outcome.retry(f"{receiver.name} failed: {type(e).__name__}")
        fields = {
            "receiver": receiver.name,
            "incident": pending.incident_id,
            "kind": pending.kind,
            "attempt": notification.attempt,
        }
        if outcome.delivered:
            await self.store.delivered(pending, outcome.thread)
            self.delivered += 1
            self._count(receiver.name, "delivered")
            self._log.info("notification delivered", **fields)
            return True
        return await self._not_delivered(receiver, [pending], outcome, fields)

    async def _not_delivered(
        self, receiver: Receiver, pendings: list[Pending], outcome: Outcome, fields: dict[str, Any]
    ) -> bool:
        """Retry or dead-letter ``pendings`` (one notification, or a batch's); ``False`` once
        the receiver is disabled."""
        now = self._clock()
        if outcome.retryable:
            attempt = pendings[0].attempts + 1
            wait = self.backoff.delay(attempt, outcome.retry_after, self._rng)
            await self.store.retry(pendings[0], now + wait, outcome.reason)
            self._count(receiver.name, "retry", len(pendings))
            self._log.warning(
                "notification will be retried", reason=outcome.reason, retry_in=round(wait, 3),
                **fields,
            )  # fmt: skip
            return True
        if len(pendings) == 1:
            await self.store.dead_letter(pendings[0], outcome.reason, now)
        else:
            await self.store.dead_letter_batch(pendings, outcome.reason, now)
        self.failed += len(pendings)
        self._count(receiver.name, "disabled" if outcome.disable else "dead_letter", len(pendings))
        self._log.error("notification dead-lettered", reason=outcome.reason, **fields)
        if outcome.disable:
            await self.store.disable_receiver(receiver.name, outcome.reason, now)
            self._log.error("receiver disabled", receiver=receiver.name, reason=outcome.reason)
            return False
        return True
