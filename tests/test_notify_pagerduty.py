"""The ``pagerduty`` receiver against the Events API v2 stand-in on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from driftwatch.notify import Kind, Notification, Outcome, ReceiverContext
from driftwatch.notify.pagerduty import (
    EVENT_BYTES_BUDGET,
    RECEIVER,
    PagerDutyConfig,
    PagerDutyReceiver,
    pagerduty_severity,
)
from tests.aio import async_test
from tests.standins.base import Server, sample_body
from tests.standins.pagerduty import PagerDutyStandIn, validate_event

INCIDENT = "prod/shop/frontend#1"
KEY = "0123456789abcdef0123456789abcdef"


def note(
    kind: Kind = Kind.OPENED, *, incident: str = INCIDENT, n: int = 1, **body: Any
) -> Notification:
    full = sample_body(str(kind), incident, **body)
    return Notification(f"note-{kind}-{n}", "pd", incident, kind, full)


def config(stand_in: PagerDutyStandIn, **overrides: Any) -> PagerDutyConfig:
    raw = stand_in.receiver_config("pd")
    assert raw.pop("name") == "pd"
    assert raw.pop("type") == RECEIVER.name == "pagerduty"
    return PagerDutyConfig.model_validate({**raw, **overrides})


@asynccontextmanager
async def receiving(
    *, timeout: float = 5.0, **overrides: Any
) -> AsyncIterator[tuple[PagerDutyStandIn, PagerDutyReceiver]]:
    async with PagerDutyStandIn() as pd, aiohttp.ClientSession() as session:
        receiver = RECEIVER.build("pd", config(pd, **overrides), ReceiverContext(session, timeout))
        assert isinstance(receiver, PagerDutyReceiver)
        try:
            yield pd, receiver
        finally:
            await receiver.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v2/enqueue"


@async_test
async def test_open_triggers_with_the_incident_as_dedup_key_and_mapped_severity() -> None:
    expected = {
        "critical": "critical",
        "high": "error",
        "medium": "warning",
        "low": "info",
        "info": "info",
        None: "info",
    }
    async with receiving() as (pd, receiver):
        for n, (ours, theirs) in enumerate(expected.items()):
            incident = f"prod/shop/frontend-{n}#1"
            outcome = await receiver.deliver(note(incident=incident, severity=ours))
            assert outcome == Outcome.ok()
            (event,) = [e for e in pd.events if e["dedup_key"] == incident]
            assert event["payload"]["severity"] == theirs
    event = pd.events[1]  # high
    assert event["event_action"] == "trigger"
    assert event["routing_key"] == pd.routing_key
    assert event["client"] == "driftwatch"
    assert event["links"] == [
        {
            "href": "https://git.example/shop/blob/abc123/policies/frontend.yaml#L1",
            "text": "Git source",
        }
    ]
    payload = event["payload"]
    assert (
        payload["summary"]
        == "[HIGH] NetworkPolicy drift shop/frontend-1: ingress widened to the world"
    )
    assert payload["source"] == "prod"
    assert payload["component"] == "shop/frontend-1"
    assert payload["group"] == "shop"
    assert payload["class"] == "networkpolicy-drift"
    assert payload["timestamp"] == "2024-05-01T12:00:00Z"
    details = payload["custom_details"]
    body = note().body
    assert details["kind"] == "opened"
    assert details["incident_id"] == "prod/shop/frontend-1#1"
    for field in ("status", "severity", "findings", "diff", "desired_source", "live_change"):
        assert details[field] == body[field], field
    assert "findings_omitted" not in details
    assert pd.events[-1]["payload"]["summary"].startswith("NetworkPolicy drift")  # no severity
    assert [d.kind for d in pd.delivered] == ["opened"] * 6
    assert pd.delivered[0].incident_id == "prod/shop/frontend-0#1"


@async_test
async def test_updates_retrigger_and_resolve_uses_the_same_dedup_key() -> None:
    async with receiving() as (pd, receiver):
        for n, kind in enumerate((Kind.OPENED, Kind.UPDATED, Kind.REMINDER, Kind.RESOLVED)):
            severity = "critical" if kind is Kind.UPDATED else "high"
            assert (await receiver.deliver(note(kind, n=n, severity=severity))).delivered
    assert pd.actions_for(INCIDENT) == ["trigger", "trigger", "trigger", "resolve"]
    assert pd.dedup_keys() == [INCIDENT]
    assert [d.kind for d in pd.delivered] == ["opened", "updated", "reminder", "resolved"]
    assert pd.events[1]["payload"]["severity"] == "critical"
    assert pd.events[1]["payload"]["summary"].startswith("[CRITICAL] ")
    assert pd.events[3] == {
        "routing_key": pd.routing_key,
        "event_action": "resolve",
        "dedup_key": INCIDENT,
    }


@async_test
async def test_a_test_notification_is_one_labelled_trigger_with_its_own_key() -> None:
    async with receiving() as (pd, receiver):
        notification = note(Kind.TEST, incident="prod/driftwatch/test#0", reason="notify test")
        assert (await receiver.deliver(notification)).delivered
    (event,) = pd.events
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == notification.id != notification.incident_id
    assert event["payload"]["summary"].startswith("[TEST] driftwatch test notification")
    assert "not a real drift" in event["payload"]["summary"]
    assert pd.delivered[0].kind == "test"


@async_test
async def test_400_is_permanent_with_pagerdutys_error_text() -> None:
    async with receiving() as (pd, receiver):
        pd.fail_next(400)
        outcome = await receiver.deliver(note())
        assert not outcome.delivered
        assert not outcome.retryable
        assert not outcome.disable
        assert outcome.reason.startswith("PagerDuty Events API answered 400: ")
        assert "Event object is invalid" in outcome.reason
        assert "Stand-in told to reject this event" in outcome.reason
        assert pd.events == []


@async_test
async def test_an_unknown_routing_key_is_rejected_by_the_stand_in_and_dead_lettered() -> None:
    async with receiving(routing_key=KEY) as (pd, receiver):
        outcome = await receiver.deliver(note())
    assert not outcome.delivered
    assert not outcome.retryable
    assert "not the key of any Events API V2 integration" in outcome.reason
    assert KEY not in outcome.reason
    assert pd.rejected
    assert pd.events == []


@async_test
async def test_429_is_retried_after_what_retry_after_says() -> None:
    async with receiving() as (pd, receiver):
        pd.fail_next(429, retry_after=7)
        outcome = await receiver.deliver(note())
        assert outcome.retryable
        assert outcome.retry_after == 7.0
        assert "429" in outcome.reason
        assert "arriving too quickly" in outcome.reason
        assert (await receiver.deliver(note())).delivered
    assert pd.actions_for(INCIDENT) == ["trigger"]
    assert pd.requests == 2


@pytest.mark.parametrize("status", [500, 502, 503])
@async_test
async def test_5xx_is_retried(status: int) -> None:
    async with receiving() as (pd, receiver):
        pd.fail_next(status, times=2)
        for _ in range(2):
            outcome = await receiver.deliver(note())
            assert outcome.retryable
            assert outcome.retry_after is None
            assert str(status) in outcome.reason
        assert (await receiver.deliver(note())).delivered


@pytest.mark.parametrize("status", [401, 403, 404, 413])
@async_test
async def test_other_4xx_are_permanent(status: int) -> None:
    async with receiving() as (pd, receiver):
        pd.fail_next(status, body={"status": "nope", "message": "go away"})
        outcome = await receiver.deliver(note())
    assert not outcome.delivered
    assert not outcome.retryable
    assert outcome.reason == f"PagerDuty Events API answered {status}: go away"


@async_test
async def test_connection_refused_is_retried() -> None:
    async with receiving(url=closed_port_url()) as (_, receiver):
        outcome = await receiver.deliver(note())
    assert outcome.retryable
    assert "unreachable" in outcome.reason


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1)
    return web.json_response({"status": "success"}, status=202)


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/elsewhere")


@async_test
async def test_a_timeout_is_retried_and_a_redirect_is_not_followed() -> None:
    app = web.Application()
    app.router.add_post("/slow", _slow)
    app.router.add_post("/moved", _redirect)
    app.router.add_post("/elsewhere", _slow)
    async with Server(app) as server:
        async with receiving(url=f"{server.url}/slow", timeout=0.1) as (_, receiver):
            outcome = await receiver.deliver(note())
        assert outcome.retryable
        assert "did not answer within 0.1 s" in outcome.reason
        async with receiving(url=f"{server.url}/moved") as (_, receiver):
            outcome = await receiver.deliver(note())
        assert not outcome.delivered
        assert not outcome.retryable
        assert "302" in outcome.reason


@async_test
async def test_summary_is_cut_at_1024_characters() -> None:
    async with receiving() as (pd, receiver):
        assert (await receiver.deliver(note(reason="x" * 5000))).delivered
        assert (await receiver.deliver(note(Kind.TEST, reason="y" * 5000))).delivered
    for event in pd.events:
        summary = event["payload"]["summary"]
        assert len(summary) == 1024
        assert summary.endswith("…")


@async_test
async def test_a_huge_diff_and_many_findings_are_cut_to_fit() -> None:
    finding = dict(note().body["findings"][0], evidence={"blob": "e" * 2000})
    diff = "".join(f"+  - 10.{i // 256 % 256}.{i % 256}.0/24\n" for i in range(100_000))
    async with receiving() as (pd, receiver):
        outcome = await receiver.deliver(note(diff=diff, findings=[finding] * 400))
        assert outcome.delivered, outcome.reason
    (event,) = pd.events
    assert len(json.dumps(event).encode()) <= EVENT_BYTES_BUDGET
    details = event["payload"]["custom_details"]
    assert "diff lines cut to fit PagerDuty's limits" in details["diff"]
    assert details["diff"].startswith("+  - 10.0.0.0/24\n")
    assert details["findings_omitted"] == 400 - len(details["findings"])


@async_test
async def test_an_incident_id_too_long_for_a_dedup_key_is_shortened_stably() -> None:
    incident = f"prod/shop/{'n' * 253}#1"
    async with receiving() as (pd, receiver):
        assert (await receiver.deliver(note(incident=incident))).delivered
        assert (await receiver.deliver(note(Kind.RESOLVED, incident=incident))).delivered
    (key,) = pd.dedup_keys()
    assert len(key) <= 255
    assert key.startswith("prod/shop/nnn")
    assert pd.actions_for(key) == ["trigger", "resolve"]
    assert pd.events[0]["payload"]["custom_details"]["incident_id"] == incident


def test_config_validation(tmp_path: Path) -> None:
    assert PagerDutyConfig.model_validate({"routing_key": KEY}).url == (
        "https://events.pagerduty.com/v2/enqueue"
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "routing_key"),
        ({"routing_key": ""}, "routing_key"),
        ({"routing_key": KEY, "channel": "#x"}, "channel"),
        ({"routing_key": KEY, "url": "events.pagerduty.com/v2/enqueue"}, "url"),
        ({"routing_key": KEY, "routing_key_file": str(tmp_path / "key")}, "routing_key_file"),
        ({"routing_key_file": str(tmp_path / "missing")}, "routing_key_file"),
    ]
    for raw, where in cases:
        with pytest.raises(ValidationError) as caught:
            PagerDutyConfig.model_validate(raw)
        assert caught.value.errors()[0]["loc"] == (where,), raw
        assert KEY not in str(caught.value)
    (tmp_path / "key").write_text(KEY + "\n")
    from_file = PagerDutyConfig.model_validate({"routing_key_file": str(tmp_path / "key")})
    assert from_file.routing_key.get_secret_value() == KEY
    assert KEY not in repr(from_file)


async def _echo_key(request: web.Request) -> web.Response:
    event = await request.json()
    key = event["routing_key"]
    status = int(request.match_info["status"])
    return web.json_response(
        {"status": key, "message": f"bad key {key}", "errors": [key]}, status=status
    )


@async_test
async def test_the_routing_key_is_in_no_reason() -> None:
    reasons: list[str] = []
    app = web.Application()
    app.router.add_post("/echo/{status}", _echo_key)
    async with Server(app) as echo, receiving(routing_key=KEY) as (pd, receiver):
        assert list(receiver.secrets()) == [KEY]
        for status in (400, 403, 429, 500):
            pd.fail_next(status, retry_after=1)
            reasons.append((await receiver.deliver(note())).reason)
        reasons.append((await receiver.deliver(note())).reason)  # wrong key: 400
        for status in (400, 429, 503):
            async with receiving(routing_key=KEY, url=f"{echo.url}/echo/{status}") as (_, other):
                reasons.append((await other.deliver(note())).reason)
    async with receiving(routing_key=KEY, url=closed_port_url()) as (_, receiver):
        reasons.append((await receiver.deliver(note())).reason)
    assert all(reasons), reasons
    assert not [r for r in reasons if KEY in r]
    assert "bad key [routing key]" in reasons[5]


def test_severity_map_is_pagerdutys_four() -> None:
    assert pagerduty_severity("CRITICAL") == "critical"
    assert pagerduty_severity("bogus") == "info"
    assert pagerduty_severity(None) == "info"


def test_the_stand_in_rejects_what_pagerduty_would() -> None:
    good: dict[str, Any] = {
        "routing_key": KEY,
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "prod", "severity": "error"},
    }
    assert validate_event(good, KEY) == []
    assert (
        validate_event({"routing_key": KEY, "event_action": "resolve", "dedup_key": "k"}, KEY) == []
    )
    payload = good["payload"]
    bad: list[tuple[dict[str, Any], str]] = [
        ({**good, "routing_key": "short"}, "Length of 'routing_key' is incorrect"),
        ({**good, "event_action": "snooze"}, "'event_action' is invalid"),
        ({**good, "dedupKey": "k"}, "'dedupKey' is not a known field"),
        ({**good, "payload": None}, "'payload' is missing"),
        ({**good, "payload": {**payload, "summary": "s" * 1025}}, "'payload.summary' is too long"),
        ({**good, "payload": {**payload, "severity": "high"}}, "'payload.severity' must be"),
        ({**good, "payload": {**payload, "source": ""}}, "'payload.source' must not be empty"),
        ({**good, "payload": {**payload, "timestamp": "today"}}, "'payload.timestamp'"),
        ({**good, "payload": {**payload, "custom_details": []}}, "'payload.custom_details'"),
        ({**good, "links": [{"text": "no href"}]}, "'links[0].href' must be a string"),
        ({**good, "dedup_key": "k" * 256}, "'dedup_key' is too long"),
        ({"routing_key": KEY, "event_action": "resolve"}, "'dedup_key' must be a string"),
    ]
    for event, error in bad:
        errors = validate_event(event, KEY)
        assert any(error in e for e in errors), (event, errors)
