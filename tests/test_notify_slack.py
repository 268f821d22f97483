"""The ``slack`` receiver against the Slack stand-in on loopback (real HTTP, real slack_sdk)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError
from structlog.testing import capture_logs

from driftwatch.notify import Kind, Notification, Outcome, ReceiverContext
from driftwatch.notify.slack import (
    RECEIVER,
    RETRYABLE_ERRORS,
    SlackConfig,
    SlackReceiver,
    render,
)
from tests.aio import async_test
from tests.standins.base import Server, sample_body
from tests.standins.slack import SlackStandIn, validate_blocks

INCIDENT = "prod/shop/frontend#1"
LINK = "https://git.example/shop/blob/abc123/policies/frontend.yaml#L1"


def note(
    kind: Kind = Kind.OPENED,
    *,
    thread: Mapping[str, str] | None = None,
    incident: str = INCIDENT,
    **body: Any,
) -> Notification:
    full = sample_body(str(kind), incident, **body)
    return Notification(f"note-{kind}", "chat", incident, kind, full, thread=thread or {})


def config(raw: dict[str, Any], **overrides: Any) -> SlackConfig:
    raw = dict(raw)
    assert raw.pop("name") == "chat"
    assert raw.pop("type") == RECEIVER.name == "slack"
    return SlackConfig.model_validate({**raw, **overrides})


@asynccontextmanager
async def receiving(
    *, webhook: bool = False, interval: float = 0.0, timeout: float = 5.0, **overrides: Any
) -> AsyncIterator[tuple[SlackStandIn, SlackReceiver]]:
    async with SlackStandIn() as slack, aiohttp.ClientSession() as session:
        raw = slack.webhook_config("chat") if webhook else slack.receiver_config("chat")
        ctx = ReceiverContext(session, timeout)
        receiver = SlackReceiver("chat", config(raw, **overrides), ctx, min_interval=interval)
        try:
            yield slack, receiver
        finally:
            await receiver.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- the lifecycle --------------------------------------------------------------------------


@async_test
async def test_open_posts_one_block_kit_message_and_returns_its_thread() -> None:
    async with receiving() as (slack, receiver):
        outcome = await receiver.deliver(note())
    (message,) = slack.messages
    assert outcome == Outcome.ok({"channel": "C123", "ts": message.ts})
    assert message.channel == "C123"  # "#drift" answered with its id
    assert message.thread_ts is None
    assert "HIGH drift: shop/frontend" in message.header
    content = message.content
    assert "*Reason:* ingress widened to the world" in content
    assert "`ingress-widened`: ingress now allows 0.0.0.0/0 on 443" in content
    assert "```\n--- git\n+++ live\n-  - 10.0.0.0/8\n+  - 0.0.0.0/0\n```" in content
    assert f"*Git:* <{LINK}|policies/frontend.yaml:1@abc123>" in content
    assert "*Changed by:* `kubectl-edit` (Update) at <!date^1714564740^" in content
    assert f"incident `{INCIDENT}`" in content
    assert "\n" not in message.text
    assert message.text.endswith("HIGH drift: shop/frontend: ingress widened to the world")
    assert "attachments" not in str(slack.requests)
    assert message.metadata == {
        "event_type": "driftwatch_incident",
        "event_payload": {"incident_id": INCIDENT, "kind": "opened"},
    }
    assert [(d.incident_id, d.kind) for d in slack.delivered] == [(INCIDENT, "opened")]
    assert slack.rejected == []


@async_test
async def test_update_and_reminder_reply_in_the_thread_and_edit_the_parent() -> None:
    async with receiving() as (slack, receiver):
        thread = (await receiver.deliver(note())).thread
        assert thread is not None
        updated = note(Kind.UPDATED, thread=thread, severity="critical", reason="egress opened too")
        assert await receiver.deliver(updated) == Outcome.ok(thread)
        reminder = note(Kind.REMINDER, thread=thread, severity="critical", reason="still open")
        assert await receiver.deliver(reminder) == Outcome.ok(thread)
    parent = slack.message(thread["ts"])
    assert len(parent.history) == 2  # edited twice
    assert "HIGH drift" in parent.history[0]["blocks"][0]["text"]["text"]
    assert "CRITICAL drift: shop/frontend" in parent.header  # the current state
    assert "*Reason:* still open" in parent.content
    update, remind = slack.replies(thread["ts"])
    assert "Updated: CRITICAL drift: shop/frontend" in update.header
    assert "egress opened too" in update.content
    assert "```" in update.content  # the new diff
    assert "Still open: CRITICAL drift: shop/frontend" in remind.header
    assert "```" not in remind.content  # nothing new to show
    assert slack.top_level() == [parent]
    assert [d.kind for d in slack.delivered] == ["opened", "updated", "reminder"]


@async_test
async def test_resolve_edits_the_parent_to_resolved_and_when() -> None:
    async with receiving() as (slack, receiver):
        thread = (await receiver.deliver(note())).thread
        assert thread is not None
        resolved = note(
            Kind.RESOLVED,
            thread=thread,
            reason="live matches Git again",
            resolved_at="2024-05-01T13:00:00Z",
            live_change={"manager": "argocd", "operation": "Apply", "time": None},
        )
        assert await receiver.deliver(resolved) == Outcome.ok(thread)
    parent = slack.message(thread["ts"])
    assert "RESOLVED: shop/frontend (was HIGH)" in parent.header
    assert "*Resolved:* <!date^1714568400^" in parent.content
    assert "2024-05-01T13:00:00Z" in parent.content
    assert "*Fixed by:* `argocd` (Apply)" in parent.content
    (reply,) = slack.replies(thread["ts"])
    assert "RESOLVED" in reply.header
    assert "live matches Git again" in reply.content
    assert [d.kind for d in slack.delivered] == ["opened", "resolved"]
    assert parent.metadata is not None
    assert parent.metadata["event_payload"]["kind"] == "resolved"


@async_test
async def test_without_a_thread_or_with_its_parent_gone_a_new_message_starts_one() -> None:
    async with receiving() as (slack, receiver):
        first = await receiver.deliver(note(Kind.UPDATED))  # opened was dead-lettered
        assert first.delivered
        assert first.thread is not None
        slack.delete(first.thread["ts"])
        second = await receiver.deliver(note(Kind.RESOLVED, thread=first.thread))
        assert second.delivered
        assert second.thread is not None
        assert second.thread["ts"] != first.thread["ts"]
    (message,) = slack.top_level()
    assert "RESOLVED" in message.header
    assert [d.kind for d in slack.delivered] == ["updated", "resolved"]


@async_test
async def test_a_parent_that_cannot_be_edited_still_gets_the_reply() -> None:
    async with receiving() as (slack, receiver):
        thread = (await receiver.deliver(note())).thread
        assert thread is not None
        slack.error_next("cant_update_message")
        assert await receiver.deliver(note(Kind.UPDATED, thread=thread)) == Outcome.ok(thread)
    assert slack.message(thread["ts"]).history == []
    assert len(slack.replies(thread["ts"])) == 1


@async_test
async def test_a_test_message_is_clearly_labelled() -> None:
    async with receiving() as (slack, receiver):
        outcome = await receiver.deliver(note(Kind.TEST, incident="prod/driftwatch/test#0"))
    assert outcome.delivered
    (message,) = slack.messages
    assert message.header.startswith(":test_tube: TEST: ")
    assert "*This is a test message*" in message.content
    assert "no real incident" in message.content
    assert slack.delivered[0].kind == "test"


# -- outcomes -------------------------------------------------------------------------------


@async_test
async def test_429_is_retried_after_what_retry_after_says() -> None:
    async with receiving() as (slack, receiver):
        slack.fail_next(429, retry_after=7)
        outcome = await receiver.deliver(note())
        assert not outcome.delivered
        assert outcome.retryable
        assert outcome.retry_after == 7.0
        assert outcome.reason == "Slack chat.postMessage answered 429: ratelimited"
        assert slack.messages == []
        assert (await receiver.deliver(note())).delivered  # slack_sdk did not retry on its own
    assert len(slack.requests) == 2


@pytest.mark.parametrize(("status", "body"), [(500, None), (502, "Bad Gateway"), (503, "")])
@async_test
async def test_5xx_is_retried(status: int, body: str | None) -> None:
    async with receiving() as (slack, receiver):
        slack.fail_next(status, body=body)
        outcome = await receiver.deliver(note())
    assert outcome.retryable
    assert outcome.retry_after is None
    assert f"answered {status}" in outcome.reason
    assert len(slack.requests) == 1


@pytest.mark.parametrize("error", sorted(RETRYABLE_ERRORS))
@async_test
async def test_slacks_transient_errors_are_retried(error: str) -> None:
    async with receiving() as (slack, receiver):
        slack.error_next(error)
        outcome = await receiver.deliver(note())
    assert outcome.retryable
    assert outcome.reason == f"Slack chat.postMessage: {error}"


@pytest.mark.parametrize("error", ["not_in_channel", "invalid_blocks", "msg_too_long"])
@async_test
async def test_other_slack_errors_are_permanent(error: str) -> None:
    async with receiving() as (slack, receiver):
        slack.error_next(error)
        outcome = await receiver.deliver(note())
    assert outcome == Outcome.fail(f"Slack chat.postMessage: {error}")


@async_test
async def test_a_wrong_token_or_channel_is_permanent_and_the_token_is_in_no_reason() -> None:
    async with receiving(token="xoxb-wrong-token") as (slack, receiver):
        outcome = await receiver.deliver(note())
    assert not outcome.delivered
    assert not outcome.retryable
    assert outcome.reason == "Slack chat.postMessage: invalid_auth"
    async with receiving(channel="#nowhere") as (slack, receiver):
        outcome = await receiver.deliver(note())
    assert outcome == Outcome.fail("Slack chat.postMessage: channel_not_found")
    assert slack.messages == []


@pytest.mark.parametrize("status", [400, 403, 404])
@async_test
async def test_other_4xx_are_permanent(status: int) -> None:
    async with receiving() as (slack, receiver):
        slack.fail_next(status, body="nope")
        outcome = await receiver.deliver(note())
    assert outcome == Outcome.fail(f"Slack chat.postMessage answered {status}: nope")


@async_test
async def test_a_failed_edit_fails_the_notification_and_the_retry_replies_once() -> None:
    async with receiving() as (slack, receiver):
        thread = (await receiver.deliver(note())).thread
        assert thread is not None
        slack.fail_next(503)
        assert (await receiver.deliver(note(Kind.UPDATED, thread=thread))).retryable
        assert slack.replies(thread["ts"]) == []
        assert (await receiver.deliver(note(Kind.UPDATED, thread=thread))).delivered
    assert len(slack.replies(thread["ts"])) == 1


@async_test
async def test_unreachable_and_slow_slack_are_retried() -> None:
    async with receiving(base_url=f"{closed_port_url()}/api/") as (_, receiver):
        outcome = await receiver.deliver(note())
    assert outcome.retryable
    assert outcome.reason.startswith("Slack chat.postMessage unreachable: ClientConnectorError")

    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/api/chat.postMessage", slow)
    async with (
        Server(app) as server,
        receiving(base_url=f"{server.url}/api/", timeout=0.3) as (_, receiver),
    ):
        outcome = await receiver.deliver(note())
        release.set()
    assert outcome == Outcome.retry("Slack chat.postMessage did not answer within 0.3 s")


@async_test
async def test_a_proxy_in_the_environment_does_not_take_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", closed_port_url())  # slack_sdk would read this itself
    async with receiving() as (_, receiver):
        assert (await receiver.deliver(note())).delivered


@async_test
async def test_a_closed_shared_session_is_a_programming_error() -> None:
    async with SlackStandIn() as slack:
        session = aiohttp.ClientSession()
        ctx = ReceiverContext(session)
        receiver = RECEIVER.build("chat", config(slack.receiver_config("chat")), ctx)
        await session.close()
        with pytest.raises(RuntimeError, match="the shared HTTP session is closed"):
            await receiver.deliver(note())
    assert slack.requests == []  # slack_sdk did not open a session of its own


# -- Slack's limits -------------------------------------------------------------------------


@async_test
async def test_a_huge_diff_and_many_findings_are_cut_to_slacks_limits() -> None:
    diff = "".join(f"+  - 10.{n // 256}.{n % 256}.0/24  # <tag> & ```\n" for n in range(600))
    findings = [
        {"rule": f"rule-{n}", "severity": "low", "direction": "ingress", "message": "x" * 400}
        for n in range(25)
    ]
    long = note(name="a" * 200, diff=diff, findings=findings)
    async with receiving() as (slack, receiver):
        assert (await receiver.deliver(long)).delivered
    assert slack.rejected == []
    (message,) = slack.messages
    assert len(message.header) <= 150
    assert message.header.endswith("…")
    assert validate_blocks(message.blocks) == []
    sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    assert all(len(text) <= 3000 for text in sections)
    (code,) = [text for text in sections if text.startswith("```")]
    assert code.endswith("\n```")
    assert code.count("```") == 2  # the diff's own backticks cannot end the block
    assert "&lt;tag&gt; &amp;" in code
    assert "The diff was cut to fit Slack's limits:" in message.content
    assert " of 600 lines shown in full" in message.content
    assert "… and " in message.content
    assert "more" in message.content


def test_the_stand_in_enforces_block_kit_limits() -> None:
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}
    divider = {"type": "divider"}
    assert validate_blocks([header]) == [
        "must be less than 151 characters [json-pointer:/blocks/0/text/text]"
    ]
    assert validate_blocks([section]) == [
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]
    assert validate_blocks([divider] * 51) == [
        "no more than 50 items allowed [json-pointer:/blocks]"
    ]
    assert validate_blocks([{"type": "attachment"}])
    assert validate_blocks([divider] * 50) == []


@async_test
async def test_the_stand_in_answers_invalid_blocks_and_takes_form_encoded_calls() -> None:
    async with SlackStandIn() as slack, aiohttp.ClientSession() as session:
        url = f"{slack.url}/api/chat.postMessage"
        blocks = '[{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]'
        form = {"token": slack.token, "channel": "drift", "text": "hi", "blocks": blocks}
        async with session.post(url, data=form) as response:
            assert (await response.json())["ok"] is True
        bad = {**form, "blocks": '[{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]'}
        async with session.post(url, data=bad) as response:
            answer = await response.json()
        assert response.status == 200
        assert answer["error"] == "invalid_blocks"
        assert answer["errors"] == ["must be plain_text [json-pointer:/blocks/0/text]"]
        headers = {"Authorization": f"Bearer {slack.token}"}
        edit = {"channel": "#drift", "ts": slack.messages[0].ts, "text": "x"}
        async with session.post(f"{slack.url}/api/chat.update", json=edit, headers=headers) as r:
            assert (await r.json())["error"] == "channel_not_found"  # edits need the id
        async with session.post(url, json={"channel": "C123", "text": "x", "token": slack.token}):
            pass
    errors = [r.error for r in slack.requests]
    # JSON calls authenticate with the header only: "not_authed".
    assert errors == [None, "invalid_blocks", "channel_not_found", "not_authed"]


# -- pacing ---------------------------------------------------------------------------------


@async_test
async def test_requests_to_one_channel_are_spaced_by_the_interval() -> None:
    async with receiving(interval=0.3) as (slack, receiver):
        first, second = await asyncio.gather(
            receiver.deliver(note(incident="prod/shop/a#1")),
            receiver.deliver(note(incident="prod/shop/b#1")),
        )
        assert first.thread is not None
        assert second.delivered
        # "#drift" and its id "C123" are one channel: the edit and reply wait their turn too.
        assert (await receiver.deliver(note(Kind.UPDATED, thread=first.thread))).delivered
    arrivals = [r.at for r in slack.requests]
    assert len(arrivals) == 4
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.3


# -- incoming webhook mode ------------------------------------------------------------------


@async_test
async def test_webhook_mode_posts_messages_without_threads_or_edits() -> None:
    async with receiving(webhook=True) as (slack, receiver):
        assert await receiver.deliver(note()) == Outcome.ok()
        assert await receiver.deliver(note(Kind.RESOLVED, thread={"ts": "1.2"})) == Outcome.ok()
    opened, resolved = slack.messages
    assert opened.webhook
    assert "HIGH drift: shop/frontend" in opened.header
    assert "RESOLVED" in resolved.header
    assert all(m.thread_ts is None and m.history == [] for m in slack.messages)
    assert [(d.incident_id, d.kind) for d in slack.delivered] == [
        (INCIDENT, "opened"),
        (INCIDENT, "resolved"),
    ]


@async_test
async def test_webhook_failures_and_the_url_in_no_reason() -> None:
    async with receiving(webhook=True) as (slack, receiver):
        secrets = list(receiver.secrets())
        assert secrets == [slack.webhook_url, slack.webhook_key]
        slack.fail_next(429, retry_after=3)
        limited = await receiver.deliver(note())
        slack.fail_next(500)
        broken = await receiver.deliver(note())
        slack.webhook_key = "rotated-key-0123"
        revoked = await receiver.deliver(note())
    assert (limited.retryable, limited.retry_after) == (True, 3.0)
    assert limited.reason == "Slack incoming webhook answered 429: rate_limited"
    assert broken.retryable
    assert revoked == Outcome.fail("Slack incoming webhook answered 404: no_service")
    url = f"{closed_port_url()}/services/T000/B000/secret-key-0123456789"
    async with aiohttp.ClientSession() as session:
        ctx = ReceiverContext(session, 5.0)
        down = RECEIVER.build("chat", SlackConfig.model_validate({"webhook_url": url}), ctx)
        unreachable = await down.deliver(note())
    assert unreachable.retryable
    for outcome in (limited, broken, revoked, unreachable):
        assert not any(s in outcome.reason for s in [*secrets, url, "secret-key"])


# -- configuration and secrets --------------------------------------------------------------


def test_config_takes_exactly_one_mode(tmp_path: Path) -> None:
    api = SlackConfig.model_validate({"token": "xoxb-1", "channel": "#drift"})
    assert api.base_url is None
    hook = SlackConfig.model_validate({"webhook_url": "https://hooks.slack.com/services/T/B/k"})
    assert hook.token is None
    problems = {
        "give token and channel": {},
        "not both": {"token": "xoxb-1", "channel": "#d", "webhook_url": "https://h/x"},
        "channel needs token": {"channel": "#drift"},
        "token needs channel": {"token": "xoxb-1"},
        "base_url is for the Web API": {"webhook_url": "https://h/x", "base_url": "https://s/"},
        "Extra inputs are not permitted": {"token": "xoxb-1", "channel": "#d", "icon": ":x:"},
        "must be an http:// or https:// URL": {"webhook_url": "hooks.slack.com/services/x"},
        "must be a Slack token": {"token": " ", "channel": "#drift"},
        "must be a channel id": {"token": "xoxb-1", "channel": "#"},
    }
    for expected, data in problems.items():
        with pytest.raises(ValidationError) as info:
            SlackConfig.model_validate(data)
        assert expected in str(info.value), (expected, str(info.value))
        assert "hooks.slack.com" not in str(info.value)
    token_file = tmp_path / "token"
    token_file.write_text("xoxb-from-file\n")
    read = SlackConfig.model_validate({"token_file": str(token_file), "channel": "C1"})
    assert read.token is not None
    assert read.token.get_secret_value() == "xoxb-from-file"
    with pytest.raises(ValidationError, match="give either token or token_file, not both"):
        SlackConfig.model_validate({"token": "x", "token_file": str(token_file), "channel": "C"})
    (tmp_path / "hook").write_text("https://hooks.example/services/T/B/key\n")
    hook_file = SlackConfig.model_validate({"webhook_url_file": str(tmp_path / "hook")})
    assert hook_file.webhook_url is not None
    assert hook_file.webhook_url.get_secret_value().endswith("/key")


@async_test
async def test_the_token_is_in_no_reason_and_no_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # slack_sdk logs requests and answers at DEBUG
    # driftwatch's own logging keeps slack_sdk at INFO: open it up here, whatever ran before.
    caplog.set_level(logging.DEBUG, logger="slack_sdk")
    reasons: list[str] = []
    with capture_logs() as logs:
        async with receiving() as (slack, receiver):
            assert list(receiver.secrets()) == [slack.token]
            thread = (await receiver.deliver(note())).thread
            for failure in (429, 500, 400):
                slack.fail_next(failure, retry_after=1)
                reasons.append((await receiver.deliver(note(Kind.UPDATED, thread=thread))).reason)
            for error in ("invalid_blocks", "ratelimited"):
                slack.error_next(error)
                reasons.append((await receiver.deliver(note())).reason)
            token = slack.token
        async with receiving(token="xoxb-not-the-one") as (_, receiver):
            reasons.append((await receiver.deliver(note())).reason)
    assert all(reasons)
    assert "DEBUG" in {r.levelname for r in caplog.records}  # slack_sdk did log
    for text in (caplog.text, str(logs), *reasons):
        assert token not in text
        assert "xoxb-not-the-one" not in text


def test_render_keeps_every_message_within_slacks_limits() -> None:
    for kind in Kind:
        for reply in (False, True):
            message = render(note(kind, namespace="n" * 100, reason="r" * 5000), reply=reply)
            assert validate_blocks(message.blocks) == []
            assert len(message.text) <= 300
            assert "\n" not in message.text
