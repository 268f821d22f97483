"""Delivering incidents: receivers (Slack, PagerDuty, Alertmanager, signed webhooks,
console), the routes that choose them, and the durable outbox that retries them.

Effects at the edge: HTTP through one shared aiohttp session; nothing here decides drift.
"""

from driftwatch.notify.http import outcome_of, retry_after
from driftwatch.notify.model import (
    Kind,
    Notification,
    Outcome,
    Receiver,
    ReceiverContext,
    ReceiverType,
)

__all__ = [
    "Kind",
    "Notification",
    "Outcome",
    "Receiver",
    "ReceiverContext",
    "ReceiverType",
    "outcome_of",
    "retry_after",
]
