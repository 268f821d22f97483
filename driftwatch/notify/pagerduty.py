"""The ``pagerduty`` receiver: PagerDuty's Events API v2 over the shared aiohttp session.

One incident is one PagerDuty alert, keyed by ``dedup_key`` = the incident id:

* ``opened``, ``updated`` and ``reminder`` send ``trigger``. PagerDuty deduplicates on the
  key, so an update (or a reminder) re-triggers the same open alert with the current
  summary, severity and details instead of opening a second one; a trigger sent twice
  after a crash is harmless for the same reason.
* ``resolved`` sends ``resolve`` with the same key (no payload: PagerDuty ignores it).
* People's actions: an ``updated`` of an *approved* incident sends ``resolve`` (the live
  version is accepted: nothing to page about), so that when the drift changes again and
  the incident reopens, its ``trigger`` opens a new alert (a trigger for an alert still
  acknowledged would only be logged on it). The ``updated`` announcing a *snooze* sends
  ``acknowledge`` (the page stops escalating; PagerDuty's own acknowledgement timeout
  still applies). Other actions (``reverted``) trigger as updates do; every trigger's
  ``custom_details`` carry the incident's ``state`` and ``actions``.
* ``test`` (``driftwatch notify test``) sends one ``trigger`` whose summary starts with
  ``[TEST]`` and says it is about no real drift, keyed by the notification's own id so
  that every test opens a fresh alert (and a retried one does not open two). It is *not*
  resolved automatically: a test that resolved itself at once could hide whether the page
  went out at all, so the user resolves it in PagerDuty.

Severities map ``critical -> critical``, ``high -> error``, ``medium -> warning``,
``low``/``info``/none ``-> info``. The summary is cut to PagerDuty's 1,024 characters and
the diff and findings in ``custom_details`` are cut so that the whole event stays well
under PagerDuty's 512 KB limit.

Outcomes follow PagerDuty's retry table: 202 delivered; 400 (an invalid event) is
permanent and dead-lettered with PagerDuty's own error text; 429, 5xx, network errors and
timeouts are retried (``Retry-After`` honoured); any other status is permanent. Redirects
are not followed. No reason ever contains the routing key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import ConfigDict, Field, SecretStr, field_validator

from driftwatch.notify.http import outcome_of
from driftwatch.notify.model import Kind, Notification, Outcome, ReceiverContext, ReceiverType
from driftwatch.values.secrets import SecretFileModel

__all__ = [
    "RECEIVER",
    "PagerDutyConfig",
    "PagerDutyReceiver",
    "build",
    "encode_event",
    "event_for",
    "pagerduty_severity",
]

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"

SUMMARY_MAX = 1024
"""PagerDuty's limit on ``payload.summary``, in characters."""
DEDUP_KEY_MAX = 255
"""PagerDuty's limit on ``dedup_key``, in characters."""
EVENT_BYTES_MAX = 512 * 1024
"""PagerDuty's limit on one event."""
EVENT_BYTES_BUDGET = 256 * 1024
"""What an event is cut down to: half the limit leaves room for PagerDuty's own counting."""
DIFF_CHARS_MAX = 64 * 1024
"""The diff in ``custom_details`` is cut to this before the budget is even looked at."""
FINDINGS_MAX = 50
"""Findings beyond this many are counted (``findings_omitted``), not sent."""
_SHRINK_STEPS: tuple[tuple[int, int], ...] = ((8 * 1024, 10), (1024, 3), (0, 0))
"""(diff characters, findings) tried in turn while an event is over the budget."""

CLASS = "networkpolicy-drift"
CLIENT = "driftwatch"
WHAT = "PagerDuty Events API"
"""How reasons name the endpoint."""

_SEVERITIES: Mapping[str, str] = {
    "critical": "critical",
    "high": "error",
    "medium": "warning",
    "low": "info",
    "info": "info",
}


class PagerDutyConfig(SecretFileModel):
    """``type: pagerduty``: an Events API v2 integration on a PagerDuty service."""

    # Inputs stay out of ValidationError texts: the routing key is a secret.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    routing_key: SecretStr = Field(min_length=1)
    """The integration key of the service's "Events API V2" integration (32 characters).
    May be given as ``routing_key_file`` (a mounted Secret)."""
    url: str = DEFAULT_URL
    """Where events are posted: the US endpoint by default; the EU service region uses
    ``https://events.eu.pagerduty.com/v2/enqueue``."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value


def pagerduty_severity(severity: object) -> str:
    """driftwatch's severity as one of PagerDuty's four (``info`` when unknown or none)."""
    return _SEVERITIES.get(str(severity).lower(), "info") if severity is not None else "info"


def _dedup_key(key: str) -> str:
    """``key`` itself when PagerDuty takes it; else a stable cut with its SHA-256 appended."""
    if len(key) <= DEDUP_KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{key[: DEDUP_KEY_MAX - len(digest) - 1]}~{digest}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_diff(diff: str, limit: int) -> str:
    """Whole lines of ``diff`` up to ``limit`` characters, then a line saying what was cut."""
    if len(diff) <= limit:
        return diff
    lines = diff.splitlines(keepends=True)
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) > limit:
            break
        kept.append(line)
        size += len(line)
    note = f"… {len(lines) - len(kept)} of {len(lines)} diff lines cut to fit PagerDuty's limits"
    return "".join(kept) + ("" if not kept or kept[-1].endswith("\n") else "\n") + note


def _summary(notification: Notification) -> str:
    body = notification.body
    policy = f"{body.get('namespace') or ''}/{body.get('name') or ''}"
    reason = " ".join(str(body.get("reason") or "").split())
    if notification.kind is Kind.TEST:
        text = (
            f"[TEST] driftwatch test notification via receiver {notification.receiver!r} "
            f"(cluster {body.get('cluster') or '?'}), not a real drift; resolve this alert"
        )
    else:
        severity = body.get("severity")
        label = f"[{str(severity).upper()}] " if severity else ""
        text = f"{label}NetworkPolicy drift {policy}"
    return _cut(f"{text}: {reason}" if reason else text, SUMMARY_MAX)


def _details(notification: Notification, diff_max: int, findings_max: int) -> dict[str, Any]:
    body = notification.body
    findings: Sequence[Any] = body.get("findings") or ()
    details: dict[str, Any] = {
        "kind": str(notification.kind),
        "incident_id": notification.incident_id,
        "reason": body.get("reason"),
        "status": body.get("status"),
        "severity": body.get("severity"),
        "findings": list(findings[:findings_max]),
        "diff": _cut_diff(str(body.get("diff") or ""), diff_max),
        "desired_source": body.get("desired_source"),
        "live_change": body.get("live_change"),
        "opened_at": body.get("opened_at"),
    }
    if body.get("actions"):
        details["state"] = body.get("state")
        details["actions"] = list(body["actions"])[-10:]
    radius = body.get("blast_radius")
    if isinstance(radius, dict):
        pairs = list(radius.get("pairs") or ())
        details["blast_radius"] = {**radius, "pairs": pairs[: max(findings_max, 1)]}
    if len(findings) > findings_max:
        details["findings_omitted"] = len(findings) - findings_max
    return details


def event_for(notification: Notification, routing_key: str) -> dict[str, Any]:
    """The Events API v2 event for ``notification`` (before any cutting to the budget)."""
    return _event(notification, routing_key, DIFF_CHARS_MAX, FINDINGS_MAX)


def _action(notification: Notification) -> str:
    """``trigger``, or ``resolve``/``acknowledge`` (see the module docstring)."""
    body = notification.body
    if notification.kind is Kind.RESOLVED:
        return "resolve"
    if notification.kind is not Kind.UPDATED:
        return "trigger"
    if body.get("state") == "approved":
        return "resolve"
    actions = body.get("actions")
    last = actions[-1] if isinstance(actions, list) and actions else None
    # The notification announcing an action is the one that occurred when it was done.
    snoozed = isinstance(last, Mapping) and last.get("action") == "snoozed"
    if snoozed and isinstance(last, Mapping) and last.get("at") == body.get("occurred_at"):
        return "acknowledge"
    return "trigger"


def _event(
    notification: Notification, routing_key: str, diff_max: int, findings_max: int
) -> dict[str, Any]:
    action = _action(notification)
    if action != "trigger":
        return {
            "routing_key": routing_key,
            "event_action": action,
            "dedup_key": _dedup_key(notification.incident_id),
        }
    body = notification.body
    key = notification.id if notification.kind is Kind.TEST else notification.incident_id
    payload: dict[str, Any] = {
        "summary": _summary(notification),
        "source": str(body.get("cluster") or CLIENT),
        "severity": pagerduty_severity(body.get("severity")),
        "component": f"{body.get('namespace') or ''}/{body.get('name') or ''}",
        "group": str(body.get("namespace") or ""),
        "class": CLASS,
        "custom_details": _details(notification, diff_max, findings_max),
    }
    if body.get("occurred_at"):
        payload["timestamp"] = str(body["occurred_at"])
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": _dedup_key(key),
        "payload": payload,
        "client": CLIENT,
    }
    if body.get("link"):
        event["links"] = [{"href": str(body["link"]), "text": "Git source"}]
    return event


def _dumps(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def encode_event(notification: Notification, routing_key: str) -> bytes:
    """The request body: the event as JSON, its diff and findings cut to the budget."""
    data = _dumps(_event(notification, routing_key, DIFF_CHARS_MAX, FINDINGS_MAX))
    for diff_max, findings_max in _SHRINK_STEPS:
        if len(data) <= EVENT_BYTES_BUDGET:
            break
        data = _dumps(_event(notification, routing_key, diff_max, findings_max))
    return data


def _error_text(raw: bytes) -> str:
    """PagerDuty's error body as one line: ``message: error; error`` when it is its JSON."""
    text = raw.decode("utf-8", errors="replace")
    try:
        answer = json.loads(text)
    except ValueError:
        return text
    if not isinstance(answer, dict):
        return text
    errors = answer.get("errors")
    parts = [str(answer.get("message") or answer.get("status") or "")]
    if isinstance(errors, list):
        parts += [str(e) for e in errors]
    return "; ".join(p for p in parts if p) or text


class PagerDutyReceiver:
    """Sends each notification as one Events API v2 event (see the module's docstring)."""

    def __init__(self, name: str, config: PagerDutyConfig, ctx: ReceiverContext) -> None:
        self.name = name
        self._url = config.url
        self._key = config.routing_key.get_secret_value()
        self._session = ctx.session
        self._timeout = aiohttp.ClientTimeout(total=ctx.timeout)

    async def deliver(self, notification: Notification) -> Outcome:
        data = encode_event(notification, self._key)
        try:
            async with self._session.post(
                self._url,
                data=data,
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status, headers = response.status, response.headers
                raw = b"" if status == 202 else await response.read()
        except TimeoutError:
            return Outcome.retry(f"{WHAT} did not answer within {self._timeout.total:g} s")
        except aiohttp.ClientError as e:
            return Outcome.retry(self._redact(f"{WHAT} unreachable: {type(e).__name__}: {e}"))
        if status == 202:
            return Outcome.ok()
        outcome = outcome_of(status, headers, _error_text(raw), what=WHAT)
        return dataclasses.replace(outcome, reason=self._redact(outcome.reason))

    def _redact(self, reason: str) -> str:
        return reason.replace(self._key, "[routing key]")

    async def close(self) -> None:
        """Nothing of its own to release: the session is shared."""

    def secrets(self) -> Iterable[str]:
        yield self._key


def build(name: str, config: PagerDutyConfig, ctx: ReceiverContext) -> PagerDutyReceiver:
    """``ReceiverType.build`` for ``type: pagerduty``."""
    return PagerDutyReceiver(name, config, ctx)


RECEIVER = ReceiverType("pagerduty", PagerDutyConfig, build)
"""The ``pagerduty`` receiver type, for ``notify.registry``."""
