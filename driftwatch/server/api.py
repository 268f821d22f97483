"""``/api/v1``: the incidents, as JSON (bearer token, see ``server.auth``; the actions on
an incident, ``POST .../approve|snooze|revert`` and ``GET .../live``, are in
``server.actions``).

``GET /api/v1/incidents?state=&severity=&namespace=&limit=`` lists incidents, most
recently updated first; ``GET /api/v1/incidents/{id}`` answers one. An incident id
(``<cluster>/<namespace>/<name>#<n>``) holds ``/`` and ``#``: it is sent URL-encoded as
one path segment (``prod%2Fshop%2Fweb%231``).

One incident is :func:`incident_json`::

    {"id": "prod/shop/web#1", "cluster": "prod", "namespace": "shop", "name": "web",
     "number": 1, "state": "open" | "updated" | "approved" | "resolved",
     "severity": "high" | null,
     "status": "modified" | "missing" | "unmanaged", "opened_at": "...Z",
     "updated_at": "...Z", "resolved_at": "...Z" | null, "last_notified_at": "...Z" | null,
     "labels": {...}, "body": {...the notification body, schema_version 1...}}
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from driftwatch.incidents import Incident, IncidentState, IncidentStore
from driftwatch.server.errors import json_error
from driftwatch.server.keys import BACKEND

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "SCAN_LIMIT",
    "add_routes",
    "incident_json",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SCAN_LIMIT = 1000
"""Resolved incidents are looked for among this many most recently updated ones (open
ones are always all considered)."""
_STATES = frozenset(s.value for s in IncidentState)
_SEVERITIES = frozenset(("info", "low", "medium", "high", "critical"))
_PARAMETERS = frozenset(("state", "severity", "namespace", "limit"))


def incident_json(incident: Incident) -> dict[str, Any]:
    """The API's shape of one incident (see the module docstring)."""
    return {
        "id": incident.id,
        "cluster": incident.key.cluster,
        "namespace": incident.key.namespace,
        "name": incident.key.name,
        "number": incident.number,
        "state": incident.state.value,
        "severity": incident.severity,
        "status": incident.status,
        "opened_at": incident.opened_at,
        "updated_at": incident.updated_at,
        "resolved_at": incident.resolved_at,
        "last_notified_at": incident.last_notified_at,
        "labels": dict(incident.labels),
        "body": incident.body,
    }


class _BadQuery(ValueError):
    pass


def _choices(request: web.Request, name: str, allowed: frozenset[str]) -> frozenset[str] | None:
    """A comma-separated filter (``state=open,updated``), each value checked."""
    raw = request.query.get(name)
    if raw is None:
        return None
    values = frozenset(v.strip() for v in raw.split(",") if v.strip())
    unknown = sorted(values - allowed)
    if unknown or not values:
        raise _BadQuery(f"{name} must be one or more of {', '.join(sorted(allowed))}")
    return values


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise _BadQuery(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def _store(request: web.Request) -> IncidentStore | None:
    return request.app[BACKEND].incidents


_NO_STORE = "incidents are not stored: configure notifiers (and state.path)"


async def _candidates(store: IncidentStore, states: frozenset[str] | None) -> list[Incident]:
    found = {i.id: i for i in await store.open_incidents()}
    if states is None or IncidentState.RESOLVED.value in states:
        for incident in await store.history(limit=SCAN_LIMIT):
            found.setdefault(incident.id, incident)
    return sorted(found.values(), key=lambda i: (i.updated_at, i.id), reverse=True)


def _select(
    incidents: Iterable[Incident],
    states: frozenset[str] | None,
    severities: frozenset[str] | None,
    namespace: str | None,
) -> list[Incident]:
    return [
        i
        for i in incidents
        if (states is None or i.state.value in states)
        and (severities is None or (i.severity or "") in severities)
        and (namespace is None or fnmatch.fnmatchcase(i.key.namespace, namespace))
    ]


async def list_incidents(request: web.Request) -> web.Response:
    """``{"incidents": [...], "count": n, "limit": l, "truncated": bool}``; 400 for a bad
    filter, 404 when no store is configured."""
    try:
        unknown = sorted(set(request.query) - _PARAMETERS)
        if unknown:
            raise _BadQuery(f"unknown parameter(s) {', '.join(unknown)}")
        states = _choices(request, "state", _STATES)
        severities = _choices(request, "severity", _SEVERITIES)
        namespace = request.query.get("namespace") or None
        limit = _limit(request)
    except _BadQuery as e:
        return json_error(400, str(e))
    store = _store(request)
    if store is None:
        return json_error(404, _NO_STORE)
    selected = _select(await _candidates(store, states), states, severities, namespace)
    shown = selected[:limit]
    return web.json_response(
        {
            "incidents": [incident_json(i) for i in shown],
            "count": len(shown),
            "limit": limit,
            "truncated": len(selected) > limit,
        }
    )


async def get_incident(request: web.Request) -> web.Response:
    """One incident by id (URL-encoded in one segment); 404 when unknown."""
    incident_id = request.match_info["id"]
    store = _store(request)
    if store is None:
        return json_error(404, _NO_STORE)
    incident = await store.get(incident_id)
    if incident is None:
        return json_error(404, "no such incident", id=incident_id)
    return web.json_response(incident_json(incident))


def add_routes(api: web.Application) -> None:
    """The routes of the ``/api/v1`` sub-application."""
    api.router.add_get("/incidents", list_incidents, allow_head=False)
    api.router.add_get("/incidents/{id}", get_incident, allow_head=False)
