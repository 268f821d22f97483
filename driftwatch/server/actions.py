"""Acting on incidents over HTTP: ``/api/v1/incidents/{id}/approve|snooze|revert`` and the
live policy of an incident (``GET /api/v1/incidents/{id}/live``, what ``driftwatch export``
prints). The Slack buttons (``server.slack``) go through :func:`perform` too.

Request bodies are JSON objects (an empty body is ``{}``): ``reason`` (recorded and shown
in the notification), ``actor`` (only with the anonymous ``api_token``: recorded as
``<actor> (via API token)``; a named token's name is the actor), and for ``snooze`` one of
``for`` (a duration: ``4h``, ``30m``) or ``until`` (RFC 3339 with a time zone), at most
:data:`MAX_SNOOZE` ahead. The answer is the incident (``api.incident_json``) as saved.
Errors are JSON: 400 (bad body), 404 (unknown incident), 409 (resolved, or an action
refused), 501 (revert not available), 503 (a follower replica: ask the leader).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from driftwatch.incidents import (
    Action,
    Incident,
    IncidentActionError,
    IncidentResolved,
    NotLeading,
    UnknownIncident,
)
from driftwatch.policy.render import to_manifest
from driftwatch.server.api import incident_json
from driftwatch.server.auth import token_name
from driftwatch.server.backend import Backend
from driftwatch.server.errors import json_error
from driftwatch.server.keys import BACKEND
from driftwatch.values.durations import parse_duration

__all__ = ["MAX_SNOOZE", "ActionFailed", "add_routes", "perform"]

MAX_SNOOZE = 30 * 86400.0
"""The longest snooze: 30 days."""
MAX_TEXT = 500
_FIELDS = {
    Action.APPROVED: frozenset({"reason", "actor"}),
    Action.SNOOZED: frozenset({"reason", "actor", "for", "until"}),
    Action.REVERTED: frozenset({"reason", "actor"}),
}


class ActionFailed(Exception):
    """An action refused: the HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def perform(
    backend: Backend,
    incident_id: str,
    action: Action,
    *,
    actor: str,
    reason: str | None = None,
    until: float | None = None,
) -> Incident:
    """Do ``action`` through the daemon's backend; :class:`ActionFailed` when it cannot."""
    store = backend.incidents
    if store is None or backend.act is None:
        raise ActionFailed(404, "incidents are not stored: configure notifiers (and state.path)")
    current = await store.get(incident_id)
    if current is None:
        raise ActionFailed(404, "no such incident")
    if not current.is_open:
        raise ActionFailed(409, f"incident {incident_id} is resolved")
    try:
        if action is Action.REVERTED:
            if backend.revert is None:
                raise ActionFailed(501, "revert is not available in this driftwatch")
            result = await backend.revert(incident_id, actor, reason)
            if isinstance(result, Incident):
                return result
            return await store.get(incident_id) or current
        return await backend.act(incident_id, action, actor=actor, reason=reason, until=until)
    except UnknownIncident:
        raise ActionFailed(404, "no such incident") from None
    except NotLeading as e:
        raise ActionFailed(503, str(e)) from None
    except (IncidentResolved, IncidentActionError) as e:
        raise ActionFailed(409, str(e)) from None
    except ValueError as e:
        raise ActionFailed(400, str(e)) from None


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ActionFailed(400, f"{name} must be a string of at most {MAX_TEXT} characters")
    return value.strip() or None


async def _body(request: web.Request, action: Action) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ActionFailed(400, "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ActionFailed(400, "the body must be a JSON object")
    unknown = sorted(set(data) - _FIELDS[action])
    if unknown:
        allowed = ", ".join(sorted(_FIELDS[action]))
        raise ActionFailed(400, f"unknown field(s) {', '.join(unknown)} (allowed: {allowed})")
    return data


def _actor(request: web.Request, data: dict[str, Any]) -> str:
    """A named token's name; with the anonymous token, ``<actor> (via API token)``."""
    name = token_name(request)
    if name is not None:
        return name
    given = _text(data, "actor")
    if given is not None and len(given) > 100:
        raise ActionFailed(400, "actor must be at most 100 characters")
    return f"{' '.join(given.split())} (via API token)" if given else "API token"


def _until(data: dict[str, Any], now: float) -> float:
    if ("for" in data) == ("until" in data):
        raise ActionFailed(400, 'give one of "for" (a duration: 4h) or "until" (RFC 3339)')
    if "for" in data:
        try:
            seconds = parse_duration(data["for"])
        except ValueError as e:
            raise ActionFailed(400, f"for: {e}") from None
        until = now + seconds
    else:
        text = data["until"]
        moment = None
        if isinstance(text, str):
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                moment = None
        if moment is None or moment.tzinfo is None:
            raise ActionFailed(400, "until must be an RFC 3339 time with a zone: ...T14:00:00Z")
        until = moment.timestamp()
    if until <= now:
        raise ActionFailed(400, "the snooze must end in the future")
    if until - now > MAX_SNOOZE:
        raise ActionFailed(400, "a snooze lasts at most 30 days")
    return until


def _handler(action: Action) -> Any:
    async def handle(request: web.Request) -> web.Response:
        incident_id = request.match_info["id"]
        try:
            data = await _body(request, action)
            actor = _actor(request, data)
            reason = _text(data, "reason")
            until = _until(data, time.time()) if action is Action.SNOOZED else None
            incident = await perform(
                request.app[BACKEND],
                incident_id,
                action,
                actor=actor,
                reason=reason,
                until=until,
            )
        except ActionFailed as e:
            return json_error(e.status, e.message, id=incident_id)
        return web.json_response(incident_json(incident))

    return handle


async def live_policy(request: web.Request) -> web.Response:
    """``{"id", "namespace", "name", "path", "manifest"}``: the incident's live policy as a
    clean manifest (``path``: its file in Git, when the incident has a desired source)."""
    incident_id = request.match_info["id"]
    backend = request.app[BACKEND]
    if backend.incidents is None:
        return json_error(404, "incidents are not stored: configure notifiers (and state.path)")
    incident = await backend.incidents.get(incident_id)
    if incident is None:
        return json_error(404, "no such incident", id=incident_id)
    policy = await backend.live(incident.key) if backend.live is not None else None
    if policy is None:
        return json_error(404, "the policy is not in the cluster", id=incident_id)
    source = incident.body.get("desired_source")
    path = source.get("path") if isinstance(source, dict) else None
    return web.json_response(
        {
            "id": incident.id,
            "namespace": incident.key.namespace,
            "name": incident.key.name,
            "path": path if isinstance(path, str) and path else None,
            "manifest": to_manifest(policy),
        }
    )


def add_routes(api: web.Application) -> None:
    """The action routes of the ``/api/v1`` sub-application."""
    api.router.add_post("/incidents/{id}/approve", _handler(Action.APPROVED))
    api.router.add_post("/incidents/{id}/snooze", _handler(Action.SNOOZED))
    api.router.add_post("/incidents/{id}/revert", _handler(Action.REVERTED))
    api.router.add_get("/incidents/{id}/live", live_policy, allow_head=False)
