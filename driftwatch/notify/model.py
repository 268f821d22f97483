"""What flows through delivery: a notification for one receiver, and what the receiver says.

A receiver never raises for a failed delivery: it returns an :class:`Outcome` that says
whether the notification arrived, may be retried (and when), or never will. The outbox
(``notify.outbox``) stores a notification before the first attempt and removes it only
after the receiver confirmed it, so the same :attr:`Notification.id` can reach a receiver
more than once after a crash; receivers pass it on where the protocol has a place for it
(the webhook's ``webhook-id``, PagerDuty's ``dedup_key`` is the incident id).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # a type only: importing settings must not load aiohttp
    import aiohttp
    from pydantic import BaseModel

__all__ = [
    "Batch",
    "BatchReceiver",
    "Kind",
    "Notification",
    "Outcome",
    "Receiver",
    "ReceiverContext",
    "ReceiverType",
]


class Kind(enum.StrEnum):
    """Why a receiver hears about an incident."""

    OPENED = "opened"
    UPDATED = "updated"
    RESOLVED = "resolved"
    REMINDER = "reminder"
    """Still open after ``repeat_interval``."""
    TEST = "test"
    """``driftwatch notify test``: clearly labelled, about no real incident."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one receiver about one incident."""

    id: str
    """Stable across retries and restarts (a UUID): the webhook's ``webhook-id``."""
    receiver: str
    """The configured receiver's name."""
    incident_id: str
    """The incident's stable id (``<cluster>/<namespace>/<name>#<n>``): PagerDuty's dedup key."""
    kind: Kind
    body: Mapping[str, Any]
    """The documented, versioned incident body (the webhook's JSON, ``schema_version`` 1):
    ``schema_version, type ("drift.opened"|"drift.updated"|"drift.resolved"|"drift.reminder"|
    "drift.test"), incident_id, cluster, namespace, name, status, severity, findings, diff,
    desired_source, live_change, occurred_at``, plus ``reason`` (one line: why this message),
    ``link`` (the Git source as a URL, or null), ``opened_at`` and ``resolved_at`` (RFC 3339
    or null). Receivers render from this alone."""
    thread: Mapping[str, str] = field(default_factory=dict)
    """What this receiver asked to keep for the incident on an earlier delivery (Slack's
    channel and ``ts`` of the parent message); empty for the first."""
    attempt: int = 1
    """1 for the first try."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Several incidents' ``opened`` notifications for one receiver, sent as one message.

    With ``group_wait``, incidents that open within the window after a first one are
    announced together; their later notifications (updates, resolves) go one by one.
    """

    id: str
    """Stable across retries and restarts (the webhook's ``webhook-id``)."""
    receiver: str
    notifications: tuple[Notification, ...]
    """In the order the incidents opened; every one is ``Kind.OPENED``."""
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery attempt came to. Use the constructors below."""

    delivered: bool
    retryable: bool = False
    retry_after: float | None = None
    """Seconds the receiver asked to wait (``Retry-After``), if it said."""
    reason: str = ""
    """For logs and the dead-letter table: status and a short excerpt, never a secret."""
    thread: Mapping[str, str] | None = None
    """On success: what to keep for this incident's later notifications to this receiver."""
    disable: bool = False
    """The receiver is gone for good (a webhook answering 410): stop sending to it."""
    threads: Mapping[str, Mapping[str, str]] | None = None
    """On a batch's success, when incidents keep different things: incident id -> what
    to keep (an incident missing here keeps :attr:`thread`)."""

    @staticmethod
    def ok(
        thread: Mapping[str, str] | None = None,
        threads: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Outcome:
        return Outcome(True, thread=thread, threads=threads)

    @staticmethod
    def retry(reason: str, after: float | None = None) -> Outcome:
        return Outcome(False, retryable=True, retry_after=after, reason=reason)

    @staticmethod
    def fail(reason: str) -> Outcome:
        """Permanent: retrying would fail the same way (dead-lettered)."""
        return Outcome(False, reason=reason)

    @staticmethod
    def gone(reason: str) -> Outcome:
        """Permanent, and the receiver should be disabled."""
        return Outcome(False, reason=reason, disable=True)


class Receiver(Protocol):
    """Delivers notifications to one configured destination."""

    name: str

    async def deliver(self, notification: Notification) -> Outcome:
        """One attempt. Returns the outcome; raises only for programming errors."""
        ...

    async def close(self) -> None:
        """Release what ``deliver`` opened (the shared session is not its own)."""
        ...

    def secrets(self) -> Iterable[str]:
        """Every secret value in its configuration: logs redact them."""
        ...


class BatchReceiver(Receiver, Protocol):
    """A receiver that can announce several incidents in one message (``group_wait``)."""

    async def deliver_batch(self, batch: Batch) -> Outcome:
        """One attempt for the whole batch: delivered (``Outcome.thread`` is then kept for
        every incident of the batch), retried or failed as one."""
        ...


@dataclass(frozen=True, slots=True)
class ReceiverContext:
    """What every receiver is built with."""

    session: aiohttp.ClientSession
    """One shared HTTP session (its connector's limits apply across receivers)."""
    timeout: float = 10.0
    """Seconds for one request, connect to last byte."""


@dataclass(frozen=True, slots=True)
class ReceiverType:
    """A kind of receiver (``type:`` in ``notifiers:``): its configuration and its factory.

    The built-in types are registered in ``notify.registry``; others come from the entry
    point group ``driftwatch.notifiers`` (each entry point loads a ``ReceiverType``).
    """

    name: str
    config: type[BaseModel]
    """Its settings (pydantic, ``extra="forbid"``), without ``name`` and ``type``."""
    build: Callable[[str, Any, ReceiverContext], Receiver]
    """``build(name, validated config, context)``."""
    batches: bool = False
    """Its receivers are :class:`BatchReceiver` s, so ``group_wait`` applies to them."""
