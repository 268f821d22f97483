"""A PagerDuty Events API v2 stand-in on loopback: ``POST /v2/enqueue``.

It checks events the way the real endpoint documents them, and more strictly where that
catches a receiver's mistakes: the JSON must be an object with only the documented keys;
``routing_key`` must be 32 characters and the configured one; ``event_action`` one of
``trigger``, ``acknowledge``, ``resolve``; ``dedup_key`` a string of at most 255
characters, required unless triggering; a trigger needs a ``payload`` with ``summary``
(at most 1,024 characters), ``source`` and a ``severity`` of ``critical``, ``error``,
``warning`` or ``info``, an RFC 3339 ``timestamp`` if any, ``custom_details`` an object;
``links`` need ``href``, ``images`` need ``src``; the whole event at most 512 KB. An
invalid event gets PagerDuty's 400 (``{"status": "invalid event", "message": "Event object
is invalid", "errors": [...]}``); a valid one 202 with its ``dedup_key``.

Accepted events are kept in order (:attr:`PagerDutyStandIn.events`), and per dedup key
(:meth:`PagerDutyStandIn.actions_for`), so a test can say "each key triggered once and
resolved once".
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.standins.base import Delivered, Failure, Failures, Server

__all__ = ["PagerDutyStandIn", "validate_event"]

ACTIONS = frozenset({"trigger", "acknowledge", "resolve"})
SEVERITIES = frozenset({"critical", "error", "warning", "info"})
EVENT_KEYS = frozenset(
    {"routing_key", "event_action", "dedup_key", "payload", "client", "client_url"}
    | {"links", "images"}
)
PAYLOAD_KEYS = frozenset(
    {"summary", "source", "severity", "timestamp", "component", "group", "class"}
    | {"custom_details"}
)
KINDS = frozenset({"opened", "updated", "reminder", "test"})
"""What a trigger's ``custom_details.kind`` may say (driftwatch's notification kinds)."""
MAX_BYTES = 512 * 1024


def _string(errors: list[str], where: str, value: object, *, limit: int | None = None) -> None:
    if not isinstance(value, str):
        errors.append(f"'{where}' must be a string")
    elif not value:
        errors.append(f"'{where}' must not be empty")
    elif limit is not None and len(value) > limit:
        errors.append(f"Length of '{where}' is too long (maximum is {limit} characters)")


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _payload(errors: list[str], payload: object) -> None:
    if not isinstance(payload, dict):
        errors.append("'payload' is missing or not an object")
        return
    errors += [f"'payload.{k}' is not a known field" for k in sorted(payload.keys() - PAYLOAD_KEYS)]
    _string(errors, "payload.summary", payload.get("summary"), limit=1024)
    _string(errors, "payload.source", payload.get("source"), limit=255)
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' must be one of critical, error, warning, info")
    if "timestamp" in payload and not _is_datetime(payload["timestamp"]):
        errors.append("'payload.timestamp' must be an ISO 8601 date-time")
    for key in ("component", "group", "class"):
        if key in payload and not isinstance(payload[key], str):
            errors.append(f"'payload.{key}' must be a string")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")


def _refs(errors: list[str], event: dict[str, Any], name: str, required: str) -> None:
    items = event.get(name, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        errors.append(f"'{name}' must be a list of objects")
        return
    for n, item in enumerate(items):
        _string(errors, f"{name}[{n}].{required}", item.get(required))
        errors += [
            f"'{name}[{n}].{k}' must be a string" for k, v in item.items() if not isinstance(v, str)
        ]


def validate_event(event: object, routing_key: str) -> list[str]:
    """What is wrong with ``event`` for an integration keyed ``routing_key`` (empty: valid)."""
    if not isinstance(event, dict):
        return ["Event must be a JSON object"]
    errors = [f"'{k}' is not a known field" for k in sorted(event.keys() - EVENT_KEYS)]
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    elif key != routing_key:
        errors.append("'routing_key' is not the key of any Events API V2 integration")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    if "dedup_key" in event or action != "trigger":
        _string(errors, "dedup_key", event.get("dedup_key"), limit=255)
    if action == "trigger" or "payload" in event:
        _payload(errors, event.get("payload"))
    for name in ("client", "client_url"):
        if name in event and not isinstance(event[name], str):
            errors.append(f"'{name}' must be a string")
    _refs(errors, event, "links", "href")
    _refs(errors, event, "images", "src")
    return errors


def _kind(event: dict[str, Any]) -> str:
    action = event["event_action"]
    if action == "resolve":
        return "resolved"
    if action == "acknowledge":
        return "acknowledged"
    details = event["payload"].get("custom_details") or {}
    kind = details.get("kind") if isinstance(details, dict) else None
    return kind if kind in KINDS else "opened"


class PagerDutyStandIn:
    """``async with PagerDutyStandIn() as pd``: the Events API v2 on a loopback port."""

    def __init__(self, routing_key: str | None = None) -> None:
        self.routing_key = routing_key or secrets.token_hex(16)
        """The integration key it accepts (32 characters unless a test says otherwise)."""
        self.secret = self.routing_key
        self.url = ""
        self.events: list[dict[str, Any]] = []
        """Accepted events, in order, with ``dedup_key`` filled in where PagerDuty would."""
        self.rejected: list[tuple[object, list[str]]] = []
        """Invalid events and what was wrong with them."""
        self.requests = 0
        """Every request to ``/v2/enqueue``, whatever its answer."""
        self._failures = Failures()
        app = web.Application(client_max_size=4 * MAX_BYTES)
        app.router.add_post("/v2/enqueue", self._enqueue)
        self._server = Server(app)

    async def __aenter__(self) -> PagerDutyStandIn:
        await self._server.__aenter__()
        self.url = self._server.url
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.__aexit__(*exc)

    @property
    def server(self) -> Server:
        """Its HTTP server: ``await pd.server.go_down()`` refuses connections (the service
        is unreachable), ``come_back()`` listens again on the same port."""
        return self._server

    def receiver_config(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "pagerduty",
            "routing_key": self.routing_key,
            "url": f"{self.url}/v2/enqueue",
        }

    def recover(self) -> None:
        """Drop the failures still queued: the service is up again."""
        self._failures.clear()

    def fail_next(
        self, status: int, *, times: int = 1, retry_after: int | None = None, body: Any = None
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After``)."""
        self._failures.add(Failure(status, times, retry_after, body))

    @property
    def delivered(self) -> list[Delivered]:
        return [Delivered(e["dedup_key"], _kind(e), e) for e in self.events]

    def actions_for(self, dedup_key: str) -> list[str]:
        """The ``event_action`` of every accepted event with this key, in order."""
        return [e["event_action"] for e in self.events if e["dedup_key"] == dedup_key]

    def dedup_keys(self) -> list[str]:
        """Every dedup key seen, in order of first appearance."""
        return list(dict.fromkeys(e["dedup_key"] for e in self.events))

    async def _enqueue(self, request: web.Request) -> web.Response:
        self.requests += 1
        failure = self._failures.take()
        if failure is not None:
            return self._fail(failure)
        raw = await request.read()
        if len(raw) > MAX_BYTES:
            return self._invalid(None, [f"Event is too large ({len(raw)} bytes, max {MAX_BYTES})"])
        if request.content_type != "application/json":
            return self._invalid(None, ["Content-Type must be application/json"])
        try:
            event = json.loads(raw)
        except ValueError:
            return web.json_response(
                {
                    "status": "Unrecognized object",
                    "message": "Event object format is unrecognized",
                    "errors": ["JSON parse error"],
                },
                status=400,
            )
        errors = validate_event(event, self.routing_key)
        if errors:
            return self._invalid(event, errors)
        event.setdefault("dedup_key", uuid.uuid4().hex)
        self.events.append(event)
        answer = {
            "status": "success",
            "message": "Event processed",
            "dedup_key": event["dedup_key"],
        }
        return web.json_response(answer, status=202)

    def _invalid(self, event: object, errors: list[str]) -> web.Response:
        self.rejected.append((event, errors))
        answer = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        return web.json_response(answer, status=400)

    def _fail(self, failure: Failure) -> web.Response:
        headers = failure.headers()
        body = failure.body
        if body is None:
            body = {
                400: {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": ["Stand-in told to reject this event"],
                },
                429: {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly. "
                    "Please retry later.",
                },
            }.get(failure.status, {"status": "error", "message": "Internal Server Error"})
        return web.json_response(body, status=failure.status, headers=headers)
