"""The ``alertmanager`` receiver: each incident as one alert posted to Alertmanager's v2 API.

``POST <url>/api/v2/alerts`` with a JSON array of ``{labels, annotations, startsAt, endsAt,
generatorURL}``. Alertmanager identifies an alert by its label set (the fingerprint), so an
incident keeps one label set for its life: ``alertname=NetworkPolicyDrift``, ``severity``,
``cluster``, ``namespace``, ``policy``, ``rule`` and ``incident_id``.

An alert fires while ``endsAt`` lies ahead and resolves once it has passed. Opened, updated
and reminder notifications post the alert with ``endsAt`` ``ends_after`` past the moment of
delivery, so reminders (``repeat_interval``, which must be shorter than ``ends_after``) keep
it firing, and an alert that driftwatch stops refreshing (the daemon is gone) resolves by
itself rather than firing forever. A resolved notification posts the same labels with
``endsAt`` set to when the drift was resolved, which Alertmanager reads as resolved.

When an update changes the labels (the severity rose, another rule now leads), the new
alert fires and the alert under the old labels is resolved in the same request. The labels
last sent are kept as the incident's ``thread``, so the resolve goes to exactly the alert
that fired, even when the closing body would yield other labels.

A batch (``group_wait``: several incidents opened together) is one request carrying every
incident's alert, in the order they opened; on success each incident keeps its own labels
(``Outcome.threads``). Alertmanager groups the alerts itself (its ``group_by`` and
``group_wait``); the batch saves requests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import ConfigDict, SecretStr, field_validator, model_validator

from driftwatch.notify.http import outcome_of
from driftwatch.notify.model import (
    Batch,
    Kind,
    Notification,
    Outcome,
    ReceiverContext,
    ReceiverType,
)
from driftwatch.values.durations import Duration, at_least
from driftwatch.values.secrets import SecretFileModel

__all__ = [
    "ALERTNAME",
    "MAX_DIFF_BYTES",
    "RECEIVER",
    "TEST_ALERTNAME",
    "AlertmanagerConfig",
    "AlertmanagerReceiver",
    "build",
]

ALERTNAME = "NetworkPolicyDrift"
TEST_ALERTNAME = "DriftwatchTest"
TEST_DURATION = timedelta(minutes=1)
"""A test alert resolves itself this long after it was sent."""
MAX_DIFF_BYTES = 8 * 1024
"""The ``diff`` annotation is cut to this many bytes of UTF-8 (notification templates and
chat services choke on more)."""
ALERTS_PATH = "/api/v2/alerts"
THREAD_LABELS = "labels"
"""The ``thread`` key holding the JSON label set last sent for the incident."""
_MAX_RESPONSE = 4096
_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class AlertmanagerConfig(SecretFileModel):
    """``type: alertmanager``: post incidents as alerts to Alertmanager's v2 API."""

    model_config = ConfigDict(extra="forbid")

    url: str
    """Alertmanager's base URL, e.g. ``http://alertmanager:9093`` (with its route prefix,
    if it has one); alerts go to ``<url>/api/v2/alerts``."""
    bearer_token: SecretStr | None = None
    """Sent as ``Authorization: Bearer`` (a proxy in front of Alertmanager); or
    ``bearer_token_file``."""
    basic_auth_username: str | None = None
    """User for HTTP basic auth (Alertmanager's ``web.config.file``); needs the password."""
    basic_auth_password: SecretStr | None = None
    """Password for HTTP basic auth; or ``basic_auth_password_file``."""
    ends_after: Annotated[Duration, at_least(60)] = 5 * 3600.0
    """How long a firing alert lasts unless refreshed: ``endsAt`` is this far past each
    delivery, so an alert driftwatch stops refreshing resolves by itself. Must be longer
    than ``repeat_interval`` (default 4h), which refreshes open incidents; the configuration
    is rejected otherwise."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL such as http://alertmanager:9093")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not hold credentials: use basic_auth_username/_password")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        base = value.strip().rstrip("/")
        if base.endswith(ALERTS_PATH) or base.endswith("/api/v2") or base.endswith("/api/v1"):
            raise ValueError(f"give the base URL: {ALERTS_PATH} is added")
        return base

    @model_validator(mode="after")
    def _check_auth(self) -> AlertmanagerConfig:
        if (self.basic_auth_username is None) != (self.basic_auth_password is None):
            raise ValueError("basic_auth_username and basic_auth_password go together")
        if self.bearer_token is not None and self.basic_auth_username is not None:
            raise ValueError("give either bearer_token or basic_auth_*, not both")
        return self


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AlertmanagerReceiver:
    """Posts each notification as one alert, a batch as one request (see the module's
    description)."""

    def __init__(
        self,
        name: str,
        config: AlertmanagerConfig,
        context: ReceiverContext,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.name = name
        self.config = config
        self._session = context.session
        self._timeout = aiohttp.ClientTimeout(total=context.timeout)
        self._clock = clock
        self._endpoint = config.url + ALERTS_PATH
        self._headers = {"Content-Type": "application/json", "User-Agent": "driftwatch"}
        if config.bearer_token is not None:
            self._headers["Authorization"] = "Bearer " + config.bearer_token.get_secret_value()
        if config.basic_auth_username is not None and config.basic_auth_password is not None:
            pair = f"{config.basic_auth_username}:{config.basic_auth_password.get_secret_value()}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()

    def secrets(self) -> Iterable[str]:
        for secret in (self.config.bearer_token, self.config.basic_auth_password):
            if secret is not None and secret.get_secret_value():
                yield secret.get_secret_value()

    async def close(self) -> None:
        """Nothing of its own to release: the session is shared."""

    async def deliver(self, notification: Notification) -> Outcome:
        alerts, labels = self.alerts_for(notification)
        outcome = await self._post(alerts)
        if outcome.delivered:
            thread = None if labels is None else {THREAD_LABELS: json.dumps(labels)}
            return Outcome.ok(thread)
        return outcome

    async def deliver_batch(self, batch: Batch) -> Outcome:
        """Every incident's alerts in one request; each incident keeps its own labels."""
        alerts: list[dict[str, Any]] = []
        threads: dict[str, dict[str, str]] = {}
        for notification in batch.notifications:
            more, labels = self.alerts_for(notification)
            alerts += more
            if labels is not None:
                threads[notification.incident_id] = {THREAD_LABELS: json.dumps(labels)}
        outcome = await self._post(alerts)
        return Outcome.ok(threads=threads) if outcome.delivered else outcome

    async def _post(self, alerts: list[dict[str, Any]]) -> Outcome:
        """One ``POST`` of ``alerts``: what it came to, no secret in the reason."""
        try:
            async with self._session.post(
                self._endpoint,
                data=json.dumps(alerts),
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                raw = await response.content.read(_MAX_RESPONSE)
                outcome = outcome_of(
                    response.status,
                    response.headers,
                    raw.decode("utf-8", "replace"),
                    what="Alertmanager",
                )
        except TimeoutError:
            outcome = Outcome.retry(f"Alertmanager did not answer within {self._timeout.total:g} s")
        except aiohttp.ClientError as e:
            outcome = Outcome.retry(f"Alertmanager unreachable: {type(e).__name__}: {e}")
        return self._redacted(outcome)

    def alerts_for(
        self, notification: Notification
    ) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
        """The alerts to post, the incident's own first, and the label set to keep (``None``
        for a test)."""
        body = notification.body
        now = self._clock()
        occurred = _time(body.get("occurred_at")) or now
        if notification.kind is Kind.TEST:
            return [_test_alert(self.name, notification, occurred, now)], None
        starts = _time(body.get("opened_at")) or occurred
        labels = incident_labels(notification)
        previous = _kept_labels(notification.thread)
        annotations = incident_annotations(notification)
        if notification.kind is Kind.RESOLVED:
            ends = _time(body.get("resolved_at")) or occurred
            kept = previous or labels
            return [_alert(kept, annotations, starts, max(ends, starts), body)], kept
        ends = max(now, occurred) + timedelta(seconds=self.config.ends_after)
        alerts = [_alert(labels, annotations, starts, max(ends, starts), body)]
        if previous is not None and previous != labels:
            note = {
                "summary": f"Superseded: {annotations['summary']}",
                "description": "This incident's labels changed; it fires under the new ones.",
            }
            alerts.append(_alert(previous, note, starts, max(now, starts), body))
        return alerts, labels

    def _redacted(self, outcome: Outcome) -> Outcome:
        reason = outcome.reason
        for secret in self.secrets():
            reason = reason.replace(secret, "<redacted>")
        if reason == outcome.reason:
            return outcome
        if outcome.retryable:
            return Outcome.retry(reason, outcome.retry_after)
        return Outcome.fail(reason)


def build(name: str, config: AlertmanagerConfig, context: ReceiverContext) -> AlertmanagerReceiver:
    """``RECEIVER.build``."""
    return AlertmanagerReceiver(name, config, context)


RECEIVER = ReceiverType("alertmanager", AlertmanagerConfig, build, batches=True)


def incident_labels(notification: Notification) -> dict[str, str]:
    """The alert's identity: stable for as long as the incident's severity and leading rule
    stay the same. ``severity`` is driftwatch's own (``critical``, ``high``, ``medium``,
    ``low``, ``info``; ``none`` for a drift without findings); ``rule`` is the leading
    finding's rule, or the drift's status. Empty values are left out (as Alertmanager does)."""
    body = notification.body
    labels = {
        "alertname": ALERTNAME,
        "severity": _text(body.get("severity")) or "none",
        "cluster": _text(body.get("cluster")),
        "namespace": _text(body.get("namespace")),
        "policy": _text(body.get("name")),
        "rule": _leading_rule(body),
        "incident_id": notification.incident_id,
    }
    return {k: v for k, v in labels.items() if v}


def incident_annotations(notification: Notification) -> dict[str, str]:
    """What a person reads: summary, findings, diff, why this message, the Git source."""
    body = notification.body
    annotations = {
        "summary": _summary(body),
        "description": _description(body),
        "diff": cut_diff(_text(body.get("diff"))),
        "reason": _one_line(_text(body.get("reason"))),
        "git_source": _text(body.get("link")),
        "live_change": _live_change(body.get("live_change")),
        "driftwatch_kind": str(notification.kind),
    }
    return {k: v for k, v in annotations.items() if v}


def cut_diff(diff: str, limit: int = MAX_DIFF_BYTES) -> str:
    """``diff`` cut to at most ``limit`` bytes of UTF-8, at a line end where possible, with
    a note saying how much is missing."""
    data = diff.encode("utf-8")
    if len(data) <= limit:
        return diff
    head = data[: limit - 80].decode("utf-8", "ignore")
    if "\n" in head:
        head = head[: head.rindex("\n") + 1]
    missing = len(data) - len(head.encode("utf-8"))
    return f"{head}... (cut: {missing} more bytes)"


def _test_alert(
    receiver: str, notification: Notification, occurred: datetime, now: datetime
) -> dict[str, Any]:
    labels = {
        "alertname": TEST_ALERTNAME,
        "severity": "info",
        "incident_id": notification.incident_id,
    }
    annotations = {
        "summary": f"driftwatch test notification through receiver {receiver}: no action needed",
        "description": "Sent by `driftwatch notify test`; it is about no real incident and "
        "resolves by itself within a minute.",
        "driftwatch_kind": str(Kind.TEST),
    }
    starts = min(occurred, now)
    return _alert(labels, annotations, starts, now + TEST_DURATION, notification.body)


def _alert(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    starts: datetime,
    ends: datetime,
    body: Mapping[str, Any],
) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "labels": dict(labels),
        "annotations": dict(annotations),
        "startsAt": _rfc3339(starts),
        "endsAt": _rfc3339(ends),
    }
    link = _text(body.get("link"))
    if link.startswith(("http://", "https://")):  # Alertmanager wants a URI here
        alert["generatorURL"] = link
    return alert


def _kept_labels(thread: Mapping[str, str]) -> dict[str, str] | None:
    try:
        kept = json.loads(thread[THREAD_LABELS])
    except (KeyError, ValueError):
        return None
    if not isinstance(kept, dict) or not kept:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in kept.items()):
        return None
    return kept


def _findings(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    findings = body.get("findings")
    if not isinstance(findings, list):
        return []
    return [f for f in findings if isinstance(f, Mapping)]


def _rank(finding: Mapping[str, Any]) -> int:
    return _SEVERITY_RANK.get(_text(finding.get("severity")).lower(), -1)


def _leading_rule(body: Mapping[str, Any]) -> str:
    """The highest-severity finding's rule (the first of equals), else the drift status."""
    findings = _findings(body)
    if findings:
        rule = _text(max(findings, key=_rank).get("rule"))
        if rule:
            return rule
    return _text(body.get("status"))


def _summary(body: Mapping[str, Any]) -> str:
    where = "/".join(_text(body.get(k)) or "?" for k in ("cluster", "namespace", "name"))
    severity = _text(body.get("severity")) or "no severity"
    status = _text(body.get("status")) or "drifted"
    count = len(_findings(body))
    plural = "" if count == 1 else "s"
    return _one_line(f"[{severity}] NetworkPolicy {where} {status} ({count} finding{plural})")


def _description(body: Mapping[str, Any]) -> str:
    lines = [
        f"- [{_text(f.get('severity')) or '?'}] {_text(f.get('rule')) or '?'}: "
        + _one_line(_text(f.get("message")))
        for f in _findings(body)
    ]
    return "\n".join(lines) if lines else f"Status: {_text(body.get('status')) or 'unknown'}"


def _live_change(change: object) -> str:
    if not isinstance(change, Mapping) or not change.get("manager"):
        return ""
    text = f"{_text(change.get('manager'))} ({_text(change.get('operation')) or '?'})"
    when = _text(change.get("time"))
    return f"{text} at {when}" if when else text


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _time(value: object) -> datetime | None:
    """An RFC 3339 time from the body (``None`` when absent or unreadable), in UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
