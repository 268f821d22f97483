"""Batches (``group_wait``): several incidents opened together, announced in one message,
by each receiver that takes them, against its stand-in on loopback."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import time
from typing import Any

from standardwebhooks import Webhook

from driftwatch.notify import (
    Kind,
    Notification,
    Outcome,
    alertmanager,
    console,
    pagerduty,
    slack,
    webhook,
)
from driftwatch.notify.alertmanager import THREAD_LABELS, incident_labels
from driftwatch.notify.console import ConsoleConfig, ConsoleReceiver
from driftwatch.notify.model import Batch
from driftwatch.notify.slack_render import render_batch
from driftwatch.notify.testing import ScriptedReceiver
from driftwatch.notify.webhook import encode_batch
from tests.aio import async_test
from tests.standins.alertmanager import AlertmanagerStandIn
from tests.standins.base import sample_body
from tests.standins.slack import validate_blocks
from tests.standins.webhook import WebhookStandIn, batch_problems
from tests.test_notify_alertmanager import receiver as am_receiver
from tests.test_notify_slack import receiving
from tests.test_notify_webhook import receiver as hook_receiver

SEVERITIES = ["high", "critical", "medium"]


def opened(n: int, receiver: str = "chat", **body: Any) -> Notification:
    """The ``opened`` notification of incident ``prod/shop/policy-<n>#1``."""
    incident = f"prod/shop/policy-{n}#1"
    full = sample_body("opened", incident, **body)
    full.setdefault("occurred_at", "2024-05-01T12:00:00Z")
    return Notification(f"note-{n}", receiver, incident, Kind.OPENED, full)


def batch_of(count: int, receiver: str = "chat", **body: Any) -> Batch:
    """``count`` incidents, severities high, critical, medium, high, ...; opened a second
    apart."""
    notes = tuple(
        opened(
            n,
            receiver,
            severity=SEVERITIES[n % 3],
            occurred_at=f"2024-05-01T12:00:{n % 60:02d}Z",
            **body,
        )
        for n in range(count)
    )
    return Batch(f"batch-{count}", receiver, notes)


def ids(batch: Batch) -> list[str]:
    return [n.incident_id for n in batch.notifications]


def test_the_receivers_that_batch_say_so() -> None:
    for module in (slack, webhook, alertmanager, console):
        assert module.RECEIVER.batches, module.__name__
    assert not pagerduty.RECEIVER.batches  # one dedup_key trigger per incident


# -- slack ----------------------------------------------------------------------------------


@async_test
async def test_slack_batch_posts_one_message_and_shares_its_thread() -> None:
    batch = batch_of(3)
    async with receiving() as (standin, receiver):
        outcome = await receiver.deliver_batch(batch)
    (message,) = standin.messages
    assert [r.path for r in standin.requests] == ["/api/chat.postMessage"]
    assert outcome == Outcome.ok({"channel": "C123", "ts": message.ts, "shared": "1"})
    assert standin.rejected == []
    assert validate_blocks(message.blocks) == []
    assert message.header == ":rotating_light: 3 NetworkPolicy drifts opened · highest CRITICAL"
    content = message.content
    for n in range(3):
        assert f"`shop/policy-{n}`" in content
        assert f"incident `prod/shop/policy-{n}#1`" in content
    # Most severe first, then in the order they opened.
    assert content.index("policy-1`") < content.index("policy-0`") < content.index("policy-2`")
    assert "*CRITICAL* `shop/policy-1` · modified" in content
    assert "`ingress-widened`: ingress now allows 0.0.0.0/0 on 443" in content
    assert "*Git:* <https://git.example/shop/blob/abc123/policies/frontend.yaml#L1|" in content
    assert "in this message's thread" in content
    assert "```" not in content  # no diffs
    assert "\n" not in message.text
    assert message.text.startswith("3 NetworkPolicy drifts opened · highest CRITICAL: ")
    assert message.metadata == {
        "event_type": "driftwatch_incident_batch",
        "event_payload": {
            "batch_id": batch.id,
            "kind": "opened",
            "incidents": [{"incident_id": i} for i in ids(batch)],
        },
    }
    assert [(d.incident_id, d.kind) for d in standin.delivered] == [
        (i, "opened") for i in ids(batch)
    ]


@async_test
async def test_slack_batch_of_fifty_stays_within_slacks_limits() -> None:
    long = {
        "name": "n" * 120,
        "findings": [{"rule": "r", "severity": "high", "message": "m" * 900}],
    }
    batch = batch_of(50, **long)
    async with receiving() as (standin, receiver):
        assert (await receiver.deliver_batch(batch)).delivered
    assert standin.rejected == []
    (message,) = standin.messages
    assert len(message.blocks) <= 50
    assert validate_blocks(message.blocks) == []
    assert all(f"incident `{i}`" in message.content for i in ids(batch))  # none left out
    assert len(standin.delivered) == 50


def test_slack_batch_past_the_block_limit_says_how_many_more() -> None:
    findings = [{"rule": "r" * 200, "severity": "high", "message": "m" * 900}] * 3
    message = render_batch(batch_of(400, name="x" * 200, findings=findings))
    assert validate_blocks(message.blocks) == []
    assert len(message.blocks) == 50
    (more,) = [b for b in message.blocks if ":scissors:" in json.dumps(b)]
    shown = sum(json.dumps(b).count("incident `") for b in message.blocks)
    assert f"… and {400 - shown} more" in more["elements"][0]["text"]
    assert len(message.text) <= 300
    assert len(message.metadata["event_payload"]["incidents"]) == 400


@async_test
async def test_slack_updates_in_a_shared_thread_only_reply() -> None:
    batch = batch_of(3)
    async with receiving() as (standin, receiver):
        thread = (await receiver.deliver_batch(batch)).thread
        assert thread is not None
        first, second, _ = batch.notifications
        updated = dataclasses.replace(
            second,
            id="u",
            kind=Kind.UPDATED,
            thread=thread,
            body={**second.body, "type": "drift.updated", "reason": "egress opened too"},
        )
        assert await receiver.deliver(updated) == Outcome.ok(thread)
        resolved = dataclasses.replace(
            first,
            id="r",
            kind=Kind.RESOLVED,
            thread=thread,
            body={**first.body, "type": "drift.resolved", "reason": "live matches Git again"},
        )
        assert await receiver.deliver(resolved) == Outcome.ok(thread)
    assert "/api/chat.update" not in [r.path for r in standin.requests]
    parent = standin.message(thread["ts"])
    assert parent.history == []  # it sums up three incidents: never edited for one
    update, resolve = standin.replies(thread["ts"])
    assert "Updated: CRITICAL drift: shop/policy-1" in update.header
    assert "incident `prod/shop/policy-1#1`" in update.content
    assert "egress opened too" in update.content
    assert "RESOLVED: shop/policy-0 (was HIGH)" in resolve.header
    assert "incident `prod/shop/policy-0#1`" in resolve.content
    assert standin.top_level() == [parent]
    assert [(d.incident_id, d.kind) for d in standin.delivered][3:] == [
        ("prod/shop/policy-1#1", "updated"),
        ("prod/shop/policy-0#1", "resolved"),
    ]


@async_test
async def test_slack_a_shared_thread_that_is_gone_starts_the_incidents_own() -> None:
    async with receiving() as (standin, receiver):
        thread = (await receiver.deliver_batch(batch_of(2))).thread
        assert thread is not None
        standin.error_next("is_archived")  # the reply: the thread's channel was archived
        note = dataclasses.replace(opened(0), kind=Kind.REMINDER, thread=thread)
        outcome = await receiver.deliver(note)
    assert outcome.delivered
    assert outcome.thread is not None
    assert "shared" not in outcome.thread  # its own message from now on: edited in place
    assert outcome.thread["ts"] != thread["ts"]
    assert len(standin.top_level()) == 2


@async_test
async def test_slack_a_batch_of_one_is_the_incidents_own_message() -> None:
    async with receiving() as (standin, receiver):
        outcome = await receiver.deliver_batch(batch_of(1))
    (message,) = standin.messages
    assert outcome == Outcome.ok({"channel": "C123", "ts": message.ts})
    assert "HIGH drift: shop/policy-0" in message.header
    assert "```" in message.content  # the full message, diff and all


@async_test
async def test_slack_batch_failures_map_and_redact_as_for_one_message() -> None:
    async with receiving() as (standin, receiver):
        standin.fail_next(429, retry_after=7)
        limited = await receiver.deliver_batch(batch_of(2))
        standin.error_next("invalid_blocks")
        refused = await receiver.deliver_batch(batch_of(2))
    assert (limited.retryable, limited.retry_after) == (True, 7.0)
    assert limited.reason == "Slack chat.postMessage answered 429: ratelimited"
    assert refused == Outcome.fail("Slack chat.postMessage: invalid_blocks")
    async with receiving(token="xoxb-wrong-token-123") as (_, receiver):
        wrong = await receiver.deliver_batch(batch_of(2))
    assert wrong == Outcome.fail("Slack chat.postMessage: invalid_auth")
    assert "xoxb" not in repr((limited, refused, wrong))


@async_test
async def test_slack_a_batch_waits_its_turn_in_the_channel() -> None:
    async with receiving(interval=0.3) as (standin, receiver):
        first = await receiver.deliver_batch(batch_of(2))
        assert first.thread is not None
        note = dataclasses.replace(opened(0), kind=Kind.UPDATED, thread=first.thread)
        assert (await receiver.deliver(note)).delivered
    gaps = [b.at - a.at for a, b in itertools.pairwise(standin.requests)]
    assert len(gaps) == 1
    assert gaps[0] >= 0.3


@async_test
async def test_slack_webhook_mode_posts_the_batch_message() -> None:
    batch = batch_of(3)
    async with receiving(webhook=True) as (standin, receiver):
        assert await receiver.deliver_batch(batch) == Outcome.ok()
    (message,) = standin.messages
    assert message.webhook
    assert validate_blocks(message.blocks) == []
    assert "3 NetworkPolicy drifts opened" in message.header
    assert "messages of their own" in message.content  # no threads with a webhook
    assert sorted(d.incident_id for d in standin.delivered) == sorted(ids(batch))


# -- webhook --------------------------------------------------------------------------------


@async_test
async def test_webhook_batch_is_one_signed_drift_batch() -> None:
    batch = batch_of(3, "hook")
    async with WebhookStandIn() as hook:
        async with hook_receiver(f"{hook.url}/hook", secret=hook.secret) as r:
            assert await r.deliver_batch(batch) == Outcome.ok()
        (request,) = hook.requests
        delivered = hook.delivered
    assert request.headers["webhook-id"] == batch.id
    assert request.headers["Content-Type"] == "application/json"
    body = Webhook(hook.secret).verify(request.body, request.headers)  # the reference library
    assert body == {
        "schema_version": 1,
        "type": "drift.batch",
        "batch_id": batch.id,
        "occurred_at": "2024-05-01T12:00:02Z",  # the latest of the incidents'
        "incidents": [dict(n.body) for n in batch.notifications],  # in the order they opened
    }
    assert batch_problems(body) == []
    assert request.body == encode_batch(batch)[0]
    assert [(d.incident_id, d.kind) for d in delivered] == [(i, "opened") for i in ids(batch)]


@async_test
async def test_webhook_batch_id_is_stable_across_a_retry() -> None:
    batch = batch_of(2, "hook")
    now = [time.time()]
    async with WebhookStandIn() as hook:
        hook.fail_next(503, retry_after=5)
        url = f"{hook.url}/hook"
        async with hook_receiver(url, secret=hook.secret, clock=lambda: now[0]) as r:
            first = await r.deliver_batch(batch)
            now[0] += 9
            second = await r.deliver_batch(dataclasses.replace(batch, attempt=2))
        a, b = hook.requests
    assert (first.retryable, first.retry_after) == (True, 5.0)
    assert second == Outcome.ok()
    assert a.headers["webhook-id"] == b.headers["webhook-id"] == batch.id
    assert int(b.headers["webhook-timestamp"]) == int(a.headers["webhook-timestamp"]) + 9
    assert a.body == b.body


@async_test
async def test_webhook_batch_as_a_cloudevent() -> None:
    batch = batch_of(2, "hook")
    async with WebhookStandIn() as hook:
        async with hook_receiver(f"{hook.url}/hook", secret=hook.secret, cloudevents=True) as r:
            assert await r.deliver_batch(batch) == Outcome.ok()
        (got, _) = hook.delivered
    assert got.raw["headers"]["Content-Type"] == "application/cloudevents+json"
    event = got.raw["body"]
    data = event.pop("data")
    assert event == {
        "specversion": "1.0",
        "id": batch.id,
        "source": "driftwatch/prod",
        "type": "io.driftwatch.drift.batch",
        "datacontenttype": "application/json",
        "time": "2024-05-01T12:00:01Z",
    }
    assert data["type"] == "drift.batch"
    assert [b["incident_id"] for b in data["incidents"]] == ids(batch)


@async_test
async def test_webhook_batch_outcomes_are_those_of_one_notification() -> None:
    async with (
        WebhookStandIn() as hook,
        hook_receiver(f"{hook.url}/hook", secret=hook.secret) as r,
    ):
        hook.fail_next(400)
        refused = await r.deliver_batch(batch_of(2, "hook"))
        hook.redirect_to = "https://elsewhere.example/hook"
        moved = await r.deliver_batch(batch_of(2, "hook"))
        hook.redirect_to, hook.gone = None, True
        gone = await r.deliver_batch(batch_of(2, "hook"))
    assert refused == Outcome.fail(refused.reason)
    assert "answered 400" in refused.reason
    assert "redirects are not followed" in moved.reason
    assert not moved.retryable
    assert gone.disable
    assert "receiver 'hook' is disabled" in gone.reason


# -- alertmanager ---------------------------------------------------------------------------


@async_test
async def test_alertmanager_batch_posts_every_alert_at_once() -> None:
    batch = batch_of(3, "am")
    async with AlertmanagerStandIn() as am, am_receiver(am.receiver_config("am")) as r:
        outcome = await r.deliver_batch(batch)
        assert outcome.delivered, outcome.reason
        (request,) = am.requests
        alerts = {i: am.alert_for(i) for i in ids(batch)}
        assert outcome.threads is not None
        first = batch.notifications[0]
        resolve = dataclasses.replace(
            first,
            kind=Kind.RESOLVED,
            thread=outcome.threads[first.incident_id],
            body={**first.body, "resolved_at": "2024-05-01T12:30:00Z"},
        )
        assert (await r.deliver(resolve)).delivered
        assert am.alert_for(first.incident_id).resolved
    assert [a["labels"]["incident_id"] for a in request["body"]] == ids(batch)
    assert outcome.thread is None
    assert set(outcome.threads) == set(ids(batch))
    for n in batch.notifications:
        kept = json.loads(outcome.threads[n.incident_id][THREAD_LABELS])
        assert kept == incident_labels(n) == alerts[n.incident_id].labels
        assert not alerts[n.incident_id].resolved
    assert [d.kind for d in am.delivered] == ["opened"] * 3 + ["resolved"]


@async_test
async def test_alertmanager_batch_failure_is_one_outcome() -> None:
    async with AlertmanagerStandIn() as am, am_receiver(am.receiver_config("am")) as r:
        am.fail_next(503, retry_after=4)
        outcome = await r.deliver_batch(batch_of(2, "am"))
    assert (outcome.retryable, outcome.retry_after, outcome.threads) == (True, 4.0, None)
    assert am.alerts == {}


# -- console and the scripted fake ----------------------------------------------------------


@async_test
async def test_console_writes_a_batch_at_once() -> None:
    batch = batch_of(2, "out")
    text, lines = io.StringIO(), io.StringIO()
    assert await ConsoleReceiver("out", ConsoleConfig(), text).deliver_batch(batch) == Outcome.ok()
    json_config = ConsoleConfig(format="json")
    assert await ConsoleReceiver("out", json_config, lines).deliver_batch(batch) == Outcome.ok()
    assert text.getvalue().splitlines()[0] == "== 2 incidents opened =="
    assert "[HIGH] drift.opened shop/policy-0 (prod/shop/policy-0#1)" in text.getvalue()
    assert "[CRITICAL] drift.opened shop/policy-1 (prod/shop/policy-1#1)" in text.getvalue()
    assert [json.loads(line) for line in lines.getvalue().splitlines()] == [
        dict(n.body) for n in batch.notifications
    ]


@async_test
async def test_scripted_receiver_retries_a_batch_then_delivers_it() -> None:
    fake = ScriptedReceiver("chat", script=[Outcome.retry("503", after=2)])
    batch = batch_of(2)
    assert await fake.deliver_batch(batch) == Outcome.retry("503", after=2)
    assert fake.delivered == []
    again = dataclasses.replace(batch, attempt=2)
    assert await fake.deliver_batch(again) == Outcome.ok(thread={"ts": batch.id})
    assert fake.batches == [batch, again]
    assert fake.delivered == list(batch.notifications)
    assert fake.attempts == []  # single notifications' attempts only
