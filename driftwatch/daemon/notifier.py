"""What the daemon hands drift events to.

The notification pipeline (routing, durable delivery, Slack, PagerDuty, webhooks) is a
later layer; the daemon only needs something that takes one event at a time, in order.
"""

from __future__ import annotations

from typing import Protocol

from driftwatch.drift import DriftEvent

__all__ = ["Notifier"]


class Notifier(Protocol):
    """Receives every drift event, in the order the tracker emitted them.

    ``send`` should not raise; if it does, the daemon logs the error (naming ``name``) and
    goes on with the next notifier and the next event.
    """

    name: str
    """Names the receiver in logs."""

    async def send(self, event: DriftEvent) -> None: ...
