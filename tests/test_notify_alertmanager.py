"""The ``alertmanager`` receiver against the Alertmanager v2 stand-in on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from driftwatch.notify import Kind, Notification, Outcome, ReceiverContext
from driftwatch.notify.alertmanager import (
    MAX_DIFF_BYTES,
    RECEIVER,
    AlertmanagerConfig,
    AlertmanagerReceiver,
    cut_diff,
)
from tests.aio import async_test
from tests.standins.alertmanager import AlertmanagerStandIn
from tests.standins.base import Server

INCIDENT = "prod/shop/frontend#1"
OPENED = "2024-05-01T12:00:00Z"
LINK = "https://git.example.com/policies/blob/abc123/frontend.yaml#L1"


def finding(rule: str, severity: str, message: str = "changed") -> dict[str, Any]:
    return {"rule": rule, "severity": severity, "direction": "ingress", "message": message}


def note(
    kind: Kind = Kind.OPENED, thread: dict[str, str] | None = None, **body: Any
) -> Notification:
    full: dict[str, Any] = {
        "schema_version": 1,
        "type": f"drift.{kind}",
        "incident_id": INCIDENT,
        "cluster": "prod",
        "namespace": "shop",
        "name": "frontend",
        "status": "modified",
        "severity": "high",
        "findings": [
            finding("ports-widened", "medium", "port 22 now open"),
            finding("ingress-widened", "high", "ingress now allows\n0.0.0.0/0 on 443"),
        ],
        "diff": "--- git\n+++ live\n-  - 10.0.0.0/8\n+  - 0.0.0.0/0\n",
        "desired_source": {"path": "policies/frontend.yaml", "line": 1, "commit": "abc123"},
        "live_change": {"manager": "kubectl-edit", "operation": "Update", "time": OPENED},
        "occurred_at": OPENED,
        "reason": "ingress widened to the world",
        "link": LINK,
        "opened_at": OPENED,
        "resolved_at": None,
    }
    full.update(body)
    return Notification("n-1", "am", INCIDENT, kind, full, thread=thread or {})


@asynccontextmanager
async def receiver(
    config: dict[str, Any], *, clock: Callable[[], datetime] | None = None, timeout: float = 5.0
) -> AsyncIterator[AlertmanagerReceiver]:
    fields = {k: v for k, v in config.items() if k not in ("name", "type")}
    async with aiohttp.ClientSession() as session:
        context = ReceiverContext(session, timeout=timeout)
        if clock is None:
            built = RECEIVER.build("am", RECEIVER.config.model_validate(fields), context)
            assert isinstance(built, AlertmanagerReceiver)
            yield built
        else:
            yield AlertmanagerReceiver("am", AlertmanagerConfig(**fields), context, clock=clock)


class Clock:
    now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def no_secret(outcome: Outcome, secret: str) -> None:
    assert secret not in outcome.reason
    assert secret not in repr(outcome)


# delivery


@async_test
async def test_opened_fires_one_alert_with_labels_and_annotations() -> None:
    async with AlertmanagerStandIn() as am, receiver(am.receiver_config("am")) as r:
        outcome = await r.deliver(note())
        assert outcome.delivered, outcome.reason
        alert = am.alert_for(INCIDENT)
    assert alert.labels == {
        "alertname": "NetworkPolicyDrift",
        "severity": "high",
        "cluster": "prod",
        "namespace": "shop",
        "policy": "frontend",
        "rule": "ingress-widened",
        "incident_id": INCIDENT,
    }
    notes = alert.annotations
    assert notes["summary"] == "[high] NetworkPolicy prod/shop/frontend modified (2 findings)"
    assert notes["description"].splitlines() == [
        "- [medium] ports-widened: port 22 now open",
        "- [high] ingress-widened: ingress now allows 0.0.0.0/0 on 443",
    ]
    assert notes["diff"].startswith("--- git")
    assert notes["reason"] == "ingress widened to the world"
    assert notes["git_source"] == LINK
    assert notes["live_change"] == f"kubectl-edit (Update) at {OPENED}"
    assert notes["driftwatch_kind"] == "opened"
    assert alert.generator_url == LINK
    assert alert.starts_at == datetime.fromisoformat(OPENED)
    assert not alert.resolved
    ahead = alert.ends_at - alert.updated_at
    assert timedelta(hours=4, minutes=59) < ahead <= timedelta(hours=5)
    assert [(d.incident_id, d.kind) for d in am.delivered] == [(INCIDENT, "opened")]
    assert outcome.thread is not None
    assert json.loads(outcome.thread["labels"]) == alert.labels


@async_test
async def test_resend_keeps_one_alert_with_a_later_end() -> None:
    clock = Clock()
    async with AlertmanagerStandIn() as am, receiver(am.receiver_config("am"), clock=clock) as r:
        first = await r.deliver(note())
        ends = am.alert_for(INCIDENT).ends_at
        clock.now += timedelta(minutes=30)
        again = await r.deliver(note(Kind.REMINDER, thread=dict(first.thread or {})))
        assert again.delivered, again.reason
        assert len(am.alerts) == 1
        alert = am.alert_for(INCIDENT)
    assert alert.updates == 2
    assert alert.ends_at == ends + timedelta(minutes=30)
    assert alert.starts_at == datetime.fromisoformat(OPENED)
    assert not alert.resolved
    assert [d.kind for d in am.delivered] == ["opened", "reminder"]


@async_test
async def test_resolve_ends_the_same_alert() -> None:
    async with AlertmanagerStandIn() as am, receiver(am.receiver_config("am")) as r:
        opened = await r.deliver(note())
        resolved_at = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
        outcome = await r.deliver(
            note(Kind.RESOLVED, thread=dict(opened.thread or {}), resolved_at=resolved_at)
        )
        assert outcome.delivered, outcome.reason
        assert len(am.alerts) == 1
        alert = am.alert_for(INCIDENT)
    assert alert.resolved
    assert abs(alert.ends_at - datetime.fromisoformat(resolved_at)) < timedelta(milliseconds=1)
    assert alert.starts_at == datetime.fromisoformat(OPENED)
    assert [d.kind for d in am.delivered] == ["opened", "resolved"]


@async_test
async def test_changed_labels_fire_anew_and_resolve_the_old_alert() -> None:
    async with AlertmanagerStandIn() as am, receiver(am.receiver_config("am")) as r:
        opened = await r.deliver(note())
        critical = [finding("egress-to-world", "critical", "egress to 0.0.0.0/0")]
        updated = await r.deliver(
            note(
                Kind.UPDATED,
                thread=dict(opened.thread or {}),
                severity="critical",
                findings=critical,
            )
        )
        assert updated.delivered, updated.reason
        by_rule = {a.labels["rule"]: a for a in am.alerts.values()}
        assert set(by_rule) == {"ingress-widened", "egress-to-world"}
        assert by_rule["ingress-widened"].resolved
        assert not by_rule["egress-to-world"].resolved
        assert by_rule["egress-to-world"].labels["severity"] == "critical"
        # the resolve goes to the alert that fires, even if the body would yield other labels
        closing = await r.deliver(note(Kind.RESOLVED, thread=dict(updated.thread or {})))
        assert closing.delivered, closing.reason
        assert all(a.resolved for a in am.alerts.values())
        assert len(am.alerts) == 2
    assert [d.kind for d in am.delivered] == ["opened", "updated", "resolved"]


@async_test
async def test_a_late_firing_delivery_still_fires() -> None:
    # occurred_at long past (the outbox retried it after a restart): endsAt counts from now
    async with AlertmanagerStandIn() as am, receiver(am.receiver_config("am")) as r:
        outcome = await r.deliver(note(occurred_at="2020-01-01T00:00:00Z"))
        assert outcome.delivered, outcome.reason
        assert not am.alert_for(INCIDENT).resolved


@async_test
async def test_test_notification_is_labelled_and_ends_within_a_minute() -> None:
    async with AlertmanagerStandIn() as am, receiver(am.receiver_config("am")) as r:
        body = {"occurred_at": datetime.now(UTC).isoformat()}
        test = Notification("t-1", "am", "driftwatch-test", Kind.TEST, body)
        outcome = await r.deliver(test)
        assert outcome.delivered, outcome.reason
        assert outcome.thread is None
        (alert,) = am.alerts.values()
    assert alert.labels["alertname"] == "DriftwatchTest"
    assert "no action needed" in alert.annotations["summary"]
    assert timedelta(0) < alert.ends_at - alert.updated_at <= timedelta(minutes=1)
    assert [(d.incident_id, d.kind) for d in am.delivered] == [("driftwatch-test", "test")]


def test_diff_cut_to_about_eight_kilobytes() -> None:
    diff = "".join(f"+  - 10.0.{i // 256}.{i % 256}/32 é\n" for i in range(2000))
    cut = cut_diff(diff)
    assert len(cut.encode()) <= MAX_DIFF_BYTES
    assert cut.endswith("more bytes)")
    head = cut[: cut.rindex("...")]
    assert diff.startswith(head)
    assert head.endswith("\n")
    assert cut_diff("short\n") == "short\n"


# failures


@async_test
async def test_400_is_permanent() -> None:
    async with AlertmanagerStandIn() as am, receiver(am.receiver_config("am")) as r:
        am.fail_next(400)
        outcome = await r.deliver(note())
    assert not outcome.delivered
    assert not outcome.retryable
    assert "400" in outcome.reason
    no_secret(outcome, am.secret)


@async_test
async def test_429_retries_after_the_asked_delay() -> None:
    async with AlertmanagerStandIn() as am, receiver(am.receiver_config("am")) as r:
        am.fail_next(429, retry_after=7)
        first = await r.deliver(note())
        second = await r.deliver(note())
    assert first.retryable
    assert first.retry_after == 7.0
    assert second.delivered
    assert len(am.delivered) == 1


@async_test
async def test_500_retries() -> None:
    async with AlertmanagerStandIn() as am, receiver(am.receiver_config("am")) as r:
        am.fail_next(500, times=2)
        outcomes = [await r.deliver(note()) for _ in range(3)]
    assert [(o.delivered, o.retryable) for o in outcomes] == [
        (False, True),
        (False, True),
        (True, False),
    ]
    no_secret(outcomes[0], am.secret)


@async_test
async def test_closed_port_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = {"url": f"http://127.0.0.1:{port}", "bearer_token": "tok-closed-port-1234"}
    async with receiver(config) as r:
        outcome = await r.deliver(note())
    assert outcome.retryable
    assert "unreachable" in outcome.reason
    no_secret(outcome, "tok-closed-port-1234")


@async_test
async def test_timeout_retries() -> None:
    async def stall(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response()

    app = web.Application()
    app.router.add_post("/api/v2/alerts", stall)
    async with Server(app) as server, receiver({"url": server.url}, timeout=0.1) as r:
        outcome = await r.deliver(note())
    assert outcome.retryable
    assert "did not answer" in outcome.reason


@async_test
async def test_redirect_is_not_followed() -> None:
    async with AlertmanagerStandIn() as am:

        async def moved(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(am.url + "/api/v2/alerts")

        app = web.Application()
        app.router.add_post("/api/v2/alerts", moved)
        async with Server(app) as server, receiver({"url": server.url}) as r:
            outcome = await r.deliver(note())
        assert not outcome.delivered
        assert not outcome.retryable
        assert "307" in outcome.reason
        assert am.requests == []


# auth


@async_test
async def test_bearer_token_is_sent_and_a_wrong_one_is_permanent() -> None:
    async with AlertmanagerStandIn() as am:
        async with receiver(am.receiver_config("am")) as r:
            assert (await r.deliver(note())).delivered
        assert am.requests[0]["headers"]["Authorization"] == f"Bearer {am.secret}"
        wrong = am.receiver_config("am") | {"bearer_token": "not-" + am.secret}
        async with receiver(wrong) as r:
            outcome = await r.deliver(note())
    assert not outcome.delivered
    assert not outcome.retryable
    assert "401" in outcome.reason
    no_secret(outcome, am.secret)


@async_test
async def test_basic_auth() -> None:
    async with AlertmanagerStandIn(token=None, basic=("driftwatch", "pa55-w0rd-xyz")) as am:
        config = am.receiver_config("am")
        assert config["basic_auth_password"] == am.secret == "pa55-w0rd-xyz"
        async with receiver(config) as r:
            assert (await r.deliver(note())).delivered
            assert list(r.secrets()) == ["pa55-w0rd-xyz"]
        async with receiver(config | {"basic_auth_password": "wrong"}) as r:
            outcome = await r.deliver(note())
    assert "401" in outcome.reason
    assert not outcome.retryable


# configuration


def test_config_reads_secret_files_and_durations(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("file-token\n")
    config = AlertmanagerConfig.model_validate(
        {
            "url": "http://alertmanager:9093/",
            "bearer_token_file": str(tmp_path / "token"),
            "ends_after": "30m",
        }
    )
    assert config.url == "http://alertmanager:9093"
    assert config.bearer_token is not None
    assert config.bearer_token.get_secret_value() == "file-token"
    assert config.ends_after == 1800.0
    assert "file-token" not in repr(config)
    assert AlertmanagerConfig(url="https://am.example.com/prefix").ends_after == 5 * 3600.0


BASIC = {"basic_auth_username": "u", "basic_auth_password": "p"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Field required"),
        ({"url": "alertmanager:9093"}, "http:// or https://"),
        ({"url": "http://user:pw@am:9093"}, "must not hold credentials"),
        ({"url": "http://am:9093/api/v2/alerts"}, "give the base URL"),
        ({"url": "http://am:9093", "basic_auth_username": "u"}, "go together"),
        ({"url": "http://am:9093", "bearer_token": "t"} | BASIC, "not both"),
        ({"url": "http://am:9093", "ends_after": "30s"}, "at least 1m"),
        ({"url": "http://am:9093", "resend_interval": "5m"}, "Extra inputs"),
        ({"url": "http://am:9093", "bearer_token": "t", "bearer_token_file": "/x"}, "not both"),
    ],
)
def test_config_rejects(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertmanagerConfig.model_validate(fields)


def test_receiver_type() -> None:
    assert RECEIVER.name == "alertmanager"
    assert RECEIVER.config is AlertmanagerConfig


# the stand-in itself


@async_test
async def test_stand_in_validates_like_alertmanager() -> None:
    now = datetime.now(UTC)
    ok = {"labels": {"alertname": "x"}, "startsAt": now.isoformat()}
    backwards = ok | {"endsAt": (now - timedelta(1)).isoformat()}
    cases: list[tuple[Any, int, str]] = [
        ({"labels": {"a": "b"}}, 400, "not an array"),
        ([{"annotations": {}}], 422, "labels in body is required"),
        ([{"labels": {"a": 1}}], 400, "not strings"),
        ([{"labels": {"a": "b"}, "startsAt": "yesterday"}], 400, "startsAt"),
        ([{"labels": {"a": ""}}], 400, "at least one label pair required"),
        ([{"labels": {"bad-name": "b"}}], 400, "invalid label set"),
        ([{"labels": {"a": "b"}, "annotations": {"1x": "y"}}], 400, "invalid annotations"),
        ([backwards], 400, "start time must be before end time"),
        ([ok], 200, ""),
    ]
    async with AlertmanagerStandIn(token=None) as am, aiohttp.ClientSession() as session:
        for body, status, message in cases:
            async with session.post(am.url + "/api/v2/alerts", json=body) as response:
                assert response.status == status, (body, await response.text())
                assert message in await response.text()
        async with session.post(am.url + "/api/v2/alerts", data="[]") as response:
            assert response.status == 415
        (alert,) = am.alerts.values()
    assert alert.timeout
    assert not alert.resolved
    assert am.delivered == []  # no driftwatch kind annotation
