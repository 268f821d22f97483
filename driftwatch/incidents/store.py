"""Where incidents and their outbox live: an interface, so that a Kubernetes-backed store
(for high availability) can stand in for the SQLite default."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from driftwatch.incidents.model import DeadLetter, Incident, Pending
from driftwatch.policy import PolicyKey

__all__ = ["IncidentStore", "Outgoing"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A notification to enqueue together with an incident change."""

    id: str
    receiver: str
    kind: str
    body: dict[str, object]
    delay: float = 0.0
    """Seconds after the save before it is due (``group_wait``)."""
    grouped: bool = False
    """Sent in a batch with the receiver's other grouped notifications (``group_wait``):
    only :meth:`IncidentStore.batch` hands it out, never :meth:`IncidentStore.due`."""


class IncidentStore(Protocol):
    """Incidents, their history, the outbox and receivers' threads.

    Every method is atomic: an incident change and the notifications it causes are
    committed together, so a crash loses neither or both.
    """

    async def reload(self) -> None:
        """Read again what other replicas wrote (a new leader, before it writes); a store
        only this process writes may do nothing."""
        ...

    async def open_incident(self, key: PolicyKey) -> Incident | None:
        """The key's open incident, if any."""
        ...

    async def open_incidents(self) -> list[Incident]: ...

    async def next_number(self, key: PolicyKey) -> int:
        """The number the key's next incident will get."""
        ...

    async def save(self, incident: Incident, outgoing: Sequence[Outgoing], now: float) -> None:
        """Insert or replace ``incident`` and enqueue ``outgoing`` (due at ``now``)."""
        ...

    async def get(self, incident_id: str) -> Incident | None: ...

    async def history(self, limit: int = 100) -> list[Incident]:
        """Incidents, most recently updated first (open and resolved)."""
        ...

    async def due(self, receiver: str, now: float, limit: int = 100) -> list[Pending]:
        """The receiver's notifications due by ``now``: for each incident only the oldest,
        so one incident's notifications reach the receiver in order. Grouped ones are left
        to :meth:`batch` (and hold back their incident's later ones)."""
        ...

    async def batch(self, receiver: str, now: float, limit: int = 50) -> list[Pending]:
        """The receiver's next batch of grouped notifications, if one is due: a batch
        already formed (a retry), else, once the oldest grouped one is due, every grouped
        one waiting (up to ``limit``), which from then on are one batch (one
        :attr:`Pending.batch` id) until delivered or dead-lettered. Empty: none due."""
        ...

    async def next_due(self, receiver: str) -> float | None:
        """When the receiver's earliest pending notification is due (``None``: none)."""
        ...

    async def delivered(self, pending: Pending, thread: Mapping[str, str] | None) -> None:
        """Remove a confirmed notification; keep the receiver's thread for the incident."""
        ...

    async def delivered_batch(
        self, pendings: Sequence[Pending], threads: Mapping[str, Mapping[str, str]]
    ) -> None:
        """Remove a confirmed batch; keep each incident's thread (by incident id)."""
        ...

    async def retry(self, pending: Pending, at: float, error: str) -> None:
        """Try again at ``at`` (a batch's member: the whole batch)."""
        ...

    async def due_now(self, now: float) -> int:
        """Make every pending notification due at ``now`` (a restart retries at once rather
        than after the last run's backoff); returns how many were waiting."""
        ...

    async def dead_letter(self, pending: Pending, reason: str, now: float) -> None: ...

    async def dead_letter_batch(
        self, pendings: Sequence[Pending], reason: str, now: float
    ) -> None: ...

    async def thread(self, receiver: str, incident_id: str) -> dict[str, str]: ...

    async def pending_count(self) -> int: ...

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    async def disable_receiver(self, receiver: str, reason: str, now: float) -> None:
        """Stop delivering to a receiver for good (a webhook answered 410)."""
        ...

    async def disabled_receivers(self) -> dict[str, str]: ...

    async def close(self) -> None: ...
