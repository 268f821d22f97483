"""What people (and driftwatch's remediation) do to an incident: approve it, snooze it,
revert its policy; and the errors an action can meet.

An action is recorded in the incident body's ``actions`` list (``schema_version`` 1, an
additive key), oldest first, as ``{"action", "actor", "reason", "at", "until"}`` (times
in RFC 3339 UTC; ``until`` only for a snooze). An ``approved`` entry also holds ``pair``:
a digest of the (Git, live) versions that were approved, so an approval survives a restart
exactly as long as neither side changes.
"""

from __future__ import annotations

import enum

__all__ = [
    "MAX_ACTIONS",
    "Action",
    "IncidentActionError",
    "IncidentResolved",
    "NotLeading",
    "UnknownIncident",
]

MAX_ACTIONS = 50
"""An incident body keeps the latest this many actions."""


class Action(enum.StrEnum):
    APPROVED = "approved"
    """Keep the live version: no alert until Git or the live object changes again."""
    SNOOZED = "snoozed"
    """Send nothing about the incident (but its resolve) until ``until``."""
    REVERTED = "reverted"
    """The live policy was put back to Git's version (by driftwatch or a person)."""
    REVERT_LOOP = "revert-loop"
    """Something keeps re-applying the drift after each revert (remediation gave up)."""
    REOPENED = "reopened"
    """Recorded by driftwatch: an approved drift changed again."""


class IncidentActionError(Exception):
    """An action that cannot be done; the message is one line for people."""


class UnknownIncident(IncidentActionError, LookupError):
    def __init__(self, incident_id: str) -> None:
        super().__init__(f"no such incident: {incident_id}")
        self.incident_id = incident_id


class IncidentResolved(IncidentActionError):
    def __init__(self, incident_id: str) -> None:
        super().__init__(f"incident {incident_id} is resolved")
        self.incident_id = incident_id


class NotLeading(IncidentActionError):
    """This replica does not lead: the leader records incident changes."""

    def __init__(self) -> None:
        super().__init__("this replica is not the leader; ask the leader")
