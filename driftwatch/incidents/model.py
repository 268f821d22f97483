"""An incident: one open drift of one key, from opening to resolution."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftwatch.policy import PolicyKey

__all__ = ["DeadLetter", "Incident", "IncidentState", "Pending", "incident_id", "iso_time"]


def iso_time(at: float) -> str:
    """Unix time as RFC 3339 UTC with milliseconds: ``2026-11-27T10:00:00.000Z``."""
    text = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class IncidentState(enum.StrEnum):
    OPEN = "open"
    UPDATED = "updated"
    """Open, and changed since it opened (status, severity or findings)."""
    APPROVED = "approved"
    """Open, and its live version approved by someone: nothing is sent about it until Git
    or the live policy changes again (then it is ``updated`` again)."""
    RESOLVED = "resolved"


def incident_id(key: PolicyKey, number: int) -> str:
    """``<cluster>/<namespace>/<name>#<n>``: the ``n``-th incident of that key, stable for
    its whole life (PagerDuty's dedup key, the Slack thread, the API's id)."""
    return f"{key.cluster}/{key.namespace}/{key.name}#{number}"


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    key: PolicyKey
    number: int
    """Counts the key's incidents, from 1."""
    state: IncidentState
    severity: str | None
    status: str
    """The drift's status (``modified``, ``missing``, ``unmanaged``) when last seen."""
    fingerprint: str
    """What the last notification said (status, severity, findings): equal fingerprints
    need no new notification, so a restart does not re-alert."""
    opened_at: str
    updated_at: str
    resolved_at: str | None
    last_notified_at: str | None
    """When the incident was last announced (opened, updated or reminded): reminders count
    from here."""
    body: dict[str, Any]
    """The latest incident body (see ``notify.body``)."""
    labels: dict[str, str] = field(default_factory=dict)
    """The policy's labels when last seen: routes match on them, reminders and resolves
    included."""

    @property
    def is_open(self) -> bool:
        return self.state is not IncidentState.RESOLVED


@dataclass(frozen=True, slots=True)
class Pending:
    """A notification waiting in the outbox for one receiver."""

    id: str
    receiver: str
    incident_id: str
    kind: str
    body: dict[str, Any]
    seq: int
    """Enqueue order: a receiver gets one incident's notifications in this order."""
    attempts: int
    next_at: float
    """Unix time of the next attempt."""
    last_error: str | None = None
    batch: str | None = None
    """The id of the batch it is sent in (``group_wait``), once the batch is formed."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A notification a receiver refused for good."""

    id: str
    receiver: str
    incident_id: str
    kind: str
    reason: str
    attempts: int
    failed_at: str
