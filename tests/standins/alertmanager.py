"""An Alertmanager v2 stand-in on loopback: ``POST /api/v2/alerts`` checked like the real one.

What it enforces, after Alertmanager's ``postAlertsHandler`` and ``types.Alert.Validate``:

- a JSON body (``Content-Type: application/json``, else 415) holding an array of objects,
  else 400; ``labels``/``annotations`` maps of strings and RFC 3339 ``startsAt``/``endsAt``,
  else 400 (the body does not parse); an alert without ``labels`` is 422 (schema);
- per alert: empty label values dropped, then at least one label, label and annotation names
  matching ``[a-zA-Z_][a-zA-Z0-9_]*``, ``endsAt`` not before ``startsAt``. Valid alerts are
  kept even when others fail; the answer is then 400 naming each problem;
- a missing ``startsAt`` is the time of receipt (or ``endsAt``), a missing ``endsAt`` is
  ``resolve_timeout`` ahead;
- alerts are kept by label set (the fingerprint) and merged the way Alertmanager merges:
  the earliest ``startsAt``; the newest ``endsAt``, unless a firing update comes with an
  earlier one than an explicit end already known. An alert is resolved when its ``endsAt``
  is not after the time it was received.

Optional auth: ``token`` (``Authorization: Bearer``) or ``basic`` (user, password); a wrong
or missing header is 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.standins.base import Delivered, Failure, Failures, Server

__all__ = ["AlertmanagerStandIn", "StoredAlert"]

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
KIND_ANNOTATION = "driftwatch_kind"


@dataclass(slots=True)
class StoredAlert:
    """One alert as Alertmanager holds it (by fingerprint), after merging every update."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    updated_at: datetime
    generator_url: str = ""
    timeout: bool = False
    """``endsAt`` was not given (Alertmanager filled in its resolve timeout)."""
    updates: int = 1

    @property
    def resolved(self) -> bool:
        """``endsAt`` had passed when the latest update arrived."""
        return self.ends_at <= self.updated_at


@dataclass(slots=True)
class _Posted:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    generator_url: str
    raw: dict[str, Any]


class _BadBody(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class AlertmanagerStandIn:
    """``async with AlertmanagerStandIn() as am``: an Alertmanager on ``am.url``."""

    token: str | None = field(default_factory=lambda: "am-" + secrets.token_hex(12))
    basic: tuple[str, str] | None = None
    resolve_timeout: timedelta = timedelta(minutes=5)
    url: str = ""
    secret: str = ""
    """The token, or the basic auth password (set from them)."""
    alerts: dict[str, StoredAlert] = field(default_factory=dict)
    """By fingerprint."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Every request that reached the handler: ``headers`` and ``body`` (parsed, if JSON)."""
    _delivered: list[Delivered] = field(default_factory=list)
    _failures: Failures = field(default_factory=Failures)
    _server: Server | None = None

    def __post_init__(self) -> None:
        if not self.secret:
            self.secret = self.token or (self.basic[1] if self.basic is not None else "")

    async def __aenter__(self) -> AlertmanagerStandIn:
        app = web.Application()
        app.router.add_post("/api/v2/alerts", self._post_alerts)
        self._server = await Server(app).__aenter__()
        self.url = self._server.url
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            await self._server.__aexit__(*exc)

    def receiver_config(self, name: str) -> dict[str, Any]:
        config: dict[str, Any] = {"name": name, "type": "alertmanager", "url": self.url}
        if self.token is not None:
            config["bearer_token"] = self.token
        if self.basic is not None:
            config["basic_auth_username"], config["basic_auth_password"] = self.basic
        return config

    def recover(self) -> None:
        """Drop the failures still queued: the service is up again."""
        self._failures.clear()

    def fail_next(self, status: int, *, times: int = 1, retry_after: int | None = None) -> None:
        self._failures.add(Failure(status, times, retry_after))

    @property
    def delivered(self) -> list[Delivered]:
        """One entry per accepted alert that carries driftwatch's kind annotation."""
        return list(self._delivered)

    def alert_for(self, incident_id: str) -> StoredAlert:
        """The one alert whose ``incident_id`` label is ``incident_id`` (AssertionError if
        there are none or several)."""
        found = [a for a in self.alerts.values() if a.labels.get("incident_id") == incident_id]
        assert len(found) == 1, f"{len(found)} alerts for {incident_id}: {found}"
        return found[0]

    # the handler

    async def _post_alerts(self, request: web.Request) -> web.Response:
        now = datetime.now(UTC)
        text = await request.text()
        record: dict[str, Any] = {"headers": dict(request.headers), "body": text}
        self.requests.append(record)
        if not self._authorized(request.headers.get("Authorization")):
            return _error(401, "Unauthorized")
        failure = self._failures.take()
        if failure is not None:
            return _error(failure.status, "stand-in failure", failure.headers())
        if request.content_type != "application/json":
            return _error(415, f"unsupported media type {request.content_type!r}")
        try:
            body = json.loads(text)
            record["body"] = body
            posted = _parse(body)
        except ValueError as e:
            return _error(400, f"parsing alerts body failed: {e}")
        except _BadBody as e:
            return _error(e.status, str(e))
        problems: list[str] = []
        for alert in posted:
            problem = self._accept(alert, now)
            if problem:
                problems.append(problem)
        if problems:
            return web.json_response("; ".join(problems), status=400)
        return web.Response(status=200)

    def _authorized(self, header: str | None) -> bool:
        if self.token is not None:
            return header == f"Bearer {self.token}"
        if self.basic is not None:
            raw = base64.b64encode(":".join(self.basic).encode()).decode()
            return header == f"Basic {raw}"
        return True

    def _accept(self, alert: _Posted, now: datetime) -> str:
        """Validate, default and store one alert; the problem, or ``""``."""
        labels = {k: v for k, v in alert.labels.items() if v}
        starts, ends, timeout = alert.starts_at, alert.ends_at, False
        if starts is None:
            starts = ends if ends is not None else now
        if ends is None:
            ends, timeout = now + self.resolve_timeout, True
        if ends < starts:
            return "start time must be before end time"
        bad = [n for n in labels if not _LABEL_NAME.fullmatch(n)]
        if bad:
            return f"invalid label set: invalid name {bad[0]!r}"
        if not labels:
            return "at least one label pair required"
        bad = [n for n in alert.annotations if not _LABEL_NAME.fullmatch(n)]
        if bad:
            return f"invalid annotations: invalid name {bad[0]!r}"
        fingerprint = _fingerprint(labels)
        new = StoredAlert(
            fingerprint,
            labels,
            dict(alert.annotations),
            starts,
            ends,
            now,
            alert.generator_url,
            timeout,
        )
        old = self.alerts.get(fingerprint)
        self.alerts[fingerprint] = new if old is None else _merge(old, new)
        kind = alert.annotations.get(KIND_ANNOTATION)
        if kind is not None:
            incident = labels.get("incident_id", "")
            self._delivered.append(Delivered(incident, kind, raw=alert.raw))
        return ""


def _merge(old: StoredAlert, new: StoredAlert) -> StoredAlert:
    """Alertmanager's ``Alert.Merge`` with ``new`` the younger."""
    new.starts_at = min(old.starts_at, new.starts_at)
    new.updates = old.updates + 1
    if new.resolved:
        if old.resolved and old.ends_at > new.ends_at:
            new.ends_at = old.ends_at
    elif old.ends_at > new.ends_at and not old.timeout:
        new.ends_at = old.ends_at
    return new


def _parse(body: object) -> list[_Posted]:
    if not isinstance(body, list):
        raise _BadBody(400, "parsing alerts body failed: not an array of alerts")
    return [_parse_alert(i, item) for i, item in enumerate(body)]


def _parse_alert(index: int, item: object) -> _Posted:
    if not isinstance(item, dict):
        raise _BadBody(400, f"parsing alerts body failed: [{index}] is not an object")
    if "labels" not in item or item["labels"] is None:
        raise _BadBody(422, f"{index}.labels in body is required")
    url = item.get("generatorURL", "")
    if not isinstance(url, str) or (url and not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:|/", url)):
        raise _BadBody(422, f"{index}.generatorURL in body must be of type uri: {url!r}")
    return _Posted(
        _string_map(index, "labels", item["labels"]),
        _string_map(index, "annotations", item.get("annotations") or {}),
        _rfc3339(index, "startsAt", item.get("startsAt")),
        _rfc3339(index, "endsAt", item.get("endsAt")),
        url,
        item,
    )


def _string_map(index: int, what: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _BadBody(400, f"parsing alerts body failed: [{index}].{what}: not strings")
    return dict(value)


def _rfc3339(index: int, what: str, value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise _BadBody(400, f"parsing alerts body failed: [{index}].{what}: {value!r}")
    parsed = datetime.fromisoformat(value.upper())
    return parsed.astimezone(UTC)


def _fingerprint(labels: dict[str, str]) -> str:
    canonical = json.dumps(sorted(labels.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status, headers=headers)
