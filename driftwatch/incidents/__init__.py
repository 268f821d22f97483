"""Incidents: one per open drift, with a stable id and a lifecycle (open, updated*,
resolved), kept in a store together with the notifications waiting to be delivered, so
that a restart neither re-alerts nor forgets to resolve.

Two stores: :class:`SqliteStore` (one file, the single-instance default) and
:class:`KubernetesStore` (DriftIncident objects, for replicas behind a leader Lease), which
is imported on first use so that the SQLite path does not pay for loading
kubernetes_asyncio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from driftwatch.incidents.actions import (
    Action,
    IncidentActionError,
    IncidentResolved,
    NotLeading,
    UnknownIncident,
)
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
from driftwatch.values.lazy import lazy_exports

if TYPE_CHECKING:
    from driftwatch.incidents.kubernetes import KubernetesStore, KubernetesStoreError

__all__ = [
    "Action",
    "DeadLetter",
    "Incident",
    "IncidentActionError",
    "IncidentResolved",
    "IncidentState",
    "IncidentStore",
    "KubernetesStore",
    "KubernetesStoreError",
    "NotLeading",
    "Outgoing",
    "Pending",
    "SqliteStore",
    "UnknownIncident",
    "default_state_path",
    "incident_id",
    "iso_time",
]

_LAZY = {
    "KubernetesStore": "driftwatch.incidents.kubernetes",
    "KubernetesStoreError": "driftwatch.incidents.kubernetes",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
