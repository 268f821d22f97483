"""Public fakes for testing code that notifies (as ``structlog.testing`` is for logs)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from driftwatch.notify.model import Batch, Notification, Outcome

__all__ = ["ScriptedReceiver"]


@dataclass
class ScriptedReceiver:
    """A receiver that records every attempt and answers from a script; it takes batches
    (``group_wait``) too.

    ``script`` holds the outcomes of the next attempts, in order, a batch's attempt taking
    one outcome like a single notification's; once it is empty every attempt is delivered
    (and given a thread, like Slack's, on the first delivery of each incident; a batch
    gives all its incidents the thread ``{"ts": <batch id>}``). ``attempts`` records single
    notifications' attempts, ``batches`` every batch's, and ``delivered`` every
    notification delivered, alone or in a batch, in order.
    """

    name: str = "fake"
    script: list[Outcome] = field(default_factory=list)
    attempts: list[Notification] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    delivered: list[Notification] = field(default_factory=list)
    secret: str = "fake-secret"  # noqa: S105 - a fake, for "no secret in any log line"

    async def deliver(self, notification: Notification) -> Outcome:
        self.attempts.append(notification)
        if self.script:
            outcome = self.script.pop(0)
            if outcome.delivered:
                self.delivered.append(notification)
            return outcome
        self.delivered.append(notification)
        thread = dict(notification.thread) or {"ts": notification.id}
        return Outcome.ok(thread=thread)

    async def deliver_batch(self, batch: Batch) -> Outcome:
        self.batches.append(batch)
        if self.script:
            outcome = self.script.pop(0)
            if outcome.delivered:
                self.delivered.extend(batch.notifications)
            return outcome
        self.delivered.extend(batch.notifications)
        return Outcome.ok(thread={"ts": batch.id})

    async def close(self) -> None:
        return None

    def secrets(self) -> Iterable[str]:
        return [self.secret]
