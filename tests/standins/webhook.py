"""A Standard Webhooks consumer on loopback that verifies every request with the
``standardwebhooks`` library (the reference implementation), not with driftwatch's code.

``POST /hook`` takes the bare incident body (``application/json``) or a CloudEvents 1.0
event in structured mode (``application/cloudevents+json``) carrying it as ``data``; or a
batch, ``{"schema_version": 1, "type": "drift.batch", "batch_id", "occurred_at",
"incidents": [<drift.opened body>, ...]}``, delivered once per incident.
Requests with a missing, stale or wrong signature get 401; other content types 415; a body
that is not the documented one (:data:`BODY_SCHEMA`, ``schema_version`` 1) 400. Tests
can make it fail the next requests (:meth:`WebhookStandIn.fail_next`), answer 410 Gone
(``gone``), redirect (``redirect_to``) or answer slowly (``delay``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.standins.base import Delivered, Failure, Failures, Server

__all__ = [
    "BATCH_SCHEMA",
    "BODY_SCHEMA",
    "Request",
    "WebhookStandIn",
    "batch_problems",
    "body_problems",
    "new_secret",
]

PATH = "/hook"
CLOUDEVENTS_JSON = "application/cloudevents+json"

BODY_SCHEMA: Mapping[str, tuple[type | None, ...]] = {
    "schema_version": (int,),
    "type": (str,),
    "incident_id": (str,),
    "cluster": (str,),
    "namespace": (str,),
    "name": (str,),
    "status": (str,),
    "severity": (str, None),
    "findings": (list,),
    "diff": (str,),
    "desired_source": (dict, None),
    "live_change": (dict, None),
    "occurred_at": (str,),
    "reason": (str,),
    "link": (str, None),
    "opened_at": (str, None),
    "resolved_at": (str, None),
    "blast_radius": (dict, None),
    "state": (str,),
    "actions": (list,),
}
"""The incident body's documented fields (``Notification.body``, ``schema_version`` 1) and
the JSON types each may hold (``None`` for null)."""
ADDED_IN_V1 = frozenset({"blast_radius", "state", "actions"})
"""Keys added within schema version 1: a body written before them (still in an outbox
across an upgrade) may lack them."""
TYPES = frozenset(f"drift.{k}" for k in ("opened", "updated", "resolved", "reminder", "test"))
BATCH_SCHEMA: Mapping[str, type] = {
    "schema_version": int,
    "type": str,
    "batch_id": str,
    "occurred_at": str,
    "incidents": list,
}
"""A batch's fields (``type`` ``drift.batch``) and their JSON types."""
LIVE_CHANGE_KEYS = frozenset({"manager", "operation", "time"})
ACTION_KEYS = frozenset({"action", "actor", "reason", "at", "until"})
"""Every ``actions`` entry has these (an approval also its ``pair``)."""


def body_problems(body: Mapping[str, Any]) -> list[str]:
    """What keeps ``body`` from matching the documented schema (empty when it does)."""
    problems = [f"missing {k}" for k in BODY_SCHEMA if k not in body and k not in ADDED_IN_V1]
    problems += [f"undocumented {k}" for k in body if k not in BODY_SCHEMA]
    for key, allowed in BODY_SCHEMA.items():
        value = body.get(key)
        if key in body and not any(
            value is None if t is None else type(value) is t for t in allowed
        ):
            problems.append(f"{key} is {type(value).__name__}")
    if body.get("schema_version") != 1:
        problems.append("schema_version is not 1")
    if body.get("type") not in TYPES:
        problems.append(f"type {body.get('type')!r}")
    for action in body.get("actions") or ():
        if not isinstance(action, dict) or not set(action) >= ACTION_KEYS:
            problems.append(f"action {action!r}")
    live = body.get("live_change")
    if isinstance(live, dict) and set(live) != LIVE_CHANGE_KEYS:
        problems.append(f"live_change keys {sorted(live)}")
    for stamp in ("occurred_at", "opened_at", "resolved_at"):
        if isinstance(body.get(stamp), str):
            try:
                datetime.fromisoformat(body[stamp])
            except ValueError:
                problems.append(f"{stamp} is not RFC 3339")
    return problems


def batch_problems(batch: Mapping[str, Any]) -> list[str]:
    """What keeps ``batch`` from being a documented batch (empty when it is)."""
    problems = [f"missing {k}" for k in BATCH_SCHEMA if k not in batch]
    problems += [f"undocumented {k}" for k in batch if k not in BATCH_SCHEMA]
    problems += [
        f"{k} is {type(batch[k]).__name__}"
        for k, t in BATCH_SCHEMA.items()
        if k in batch and type(batch[k]) is not t
    ]
    if batch.get("schema_version") != 1 or batch.get("type") != "drift.batch":
        problems.append("not a schema_version 1 drift.batch")
    incidents = batch.get("incidents")
    if not isinstance(incidents, list) or not incidents:
        return [*problems, "no incidents"]
    for n, body in enumerate(incidents):
        if not isinstance(body, dict):
            problems.append(f"incidents[{n}] is not an object")
            continue
        problems += [f"incidents[{n}]: {p}" for p in body_problems(body)]
        if body.get("type") != "drift.opened":
            problems.append(f"incidents[{n}] is not drift.opened")
    try:
        datetime.fromisoformat(str(batch.get("occurred_at")))
    except ValueError:
        problems.append("occurred_at is not RFC 3339")
    return problems


def new_secret(size: int = 32) -> str:
    """A fresh ``whsec_`` secret of ``size`` random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(size)).decode("ascii")


@dataclass(frozen=True, slots=True)
class Request:
    """One request as it arrived (accepted or not) and what the stand-in answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class WebhookStandIn:
    """``async with WebhookStandIn() as hook``: a verifying webhook consumer (a ``StandIn``)."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or new_secret()
        """The ``whsec_`` secret it verifies with."""
        self.url = ""
        self.requests: list[Request] = []
        """Every request, in arrival order, whatever the answer."""
        self.gone = False
        """Answer 410 Gone to every request."""
        self.redirect_to: str | None = None
        """Answer 302 with this ``Location`` to every request to ``/hook``."""
        self.delay = 0.0
        """Seconds to wait before answering."""
        self.check_schema = True
        """Answer 400 to a body that is not the documented one (:func:`body_problems`)."""
        self._failures = Failures()
        self._accepted: list[Delivered] = []
        self._server: Server | None = None

    async def __aenter__(self) -> WebhookStandIn:
        app = web.Application()
        app.router.add_post(PATH, self._hook)
        app.router.add_route("*", "/{tail:.*}", self._elsewhere)
        self._server = await Server(app).__aenter__()
        self.url = self._server.url
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            await self._server.__aexit__(*exc)

    def receiver_config(self, name: str) -> dict[str, Any]:
        return {"name": name, "type": "webhook", "url": f"{self.url}{PATH}", "secret": self.secret}

    def recover(self) -> None:
        """Drop the failures still queued: the service is up again."""
        self._failures.clear()

    def fail_next(self, status: int, *, times: int = 1, retry_after: int | None = None) -> None:
        self._failures.add(Failure(status, times, retry_after))

    @property
    def delivered(self) -> list[Delivered]:
        return list(self._accepted)

    async def _elsewhere(self, request: web.Request) -> web.Response:
        return self._answer(request, await request.read(), web.Response(status=404))

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._answer(request, raw, self._respond(request, raw))

    def _answer(self, request: web.Request, raw: bytes, response: web.Response) -> web.Response:
        self.requests.append(Request(request.path, dict(request.headers), raw, response.status))
        return response

    def _respond(self, request: web.Request, raw: bytes) -> web.Response:
        if self.gone:
            return web.Response(status=410, text="gone: this endpoint takes no more webhooks")
        if self.redirect_to is not None:
            return web.Response(status=302, headers={"Location": self.redirect_to})
        failure = self._failures.take()
        if failure is not None:
            return web.Response(
                status=failure.status, headers=failure.headers(), text="injected failure"
            )
        headers = dict(request.headers)
        try:
            payload = Webhook(self.secret).verify(raw, headers)
        except WebhookVerificationError as e:
            return web.Response(status=401, text=f"signature check failed: {e}")
        if request.content_type == CLOUDEVENTS_JSON:
            if not isinstance(payload, dict) or payload.get("specversion") != "1.0":
                return web.Response(status=400, text="not a CloudEvents 1.0 event")
            body = payload.get("data")
        elif request.content_type == "application/json":
            body = payload
        else:
            return web.Response(status=415, text=f"unsupported {request.content_type}")
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            return web.Response(status=400, text="no incident body")
        batch = body["type"] == "drift.batch"
        check = batch_problems if batch else body_problems
        if self.check_schema and (problems := check(body)):
            return web.Response(status=400, text="not the documented body: " + "; ".join(problems))
        record = {"headers": headers, "body": payload, "raw": raw.decode("utf-8")}
        for one in (body.get("incidents") or []) if batch else [body]:
            kind = str(one.get("type")).split(".")[-1]
            self._accepted.append(Delivered(str(one.get("incident_id")), kind, record))
        return web.json_response({"ok": True}, dumps=json.dumps)
