"""Incidents: one per open drift, with a stable id and a lifecycle (open, updated*,
resolved), kept in a store together with the notifications waiting to be delivered, so
that a restart neither re-alerts nor forgets to resolve."""

from driftwatch.incidents.model import (
    DeadLetter,
    Incident,
    IncidentState,
    Pending,
    incident_id,
    iso_time,
)
from driftwatch.incidents.sqlite import SqliteStore, default_state_path
from driftwatch.incidents.store import IncidentStore, Outgoing

__all__ = [
    "DeadLetter",
    "Incident",
    "IncidentState",
    "IncidentStore",
    "Outgoing",
    "Pending",
    "SqliteStore",
    "default_state_path",
    "incident_id",
    "iso_time",
]
