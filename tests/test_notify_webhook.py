"""The ``webhook`` receiver against a loopback consumer that verifies Standard Webhooks
signatures with the ``standardwebhooks`` library."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from driftwatch.notify.model import Kind, Notification, Outcome, ReceiverContext
from driftwatch.notify.webhook import (
    RECEIVER,
    WebhookConfig,
    WebhookReceiver,
    encode,
    public_url,
    signature,
    signing_key,
)
from driftwatch.values.secrets import LoadContext
from tests.aio import async_test
from tests.standins.webhook import WebhookStandIn, body_problems, new_secret

__all__: list[str] = []


def notification(kind: Kind = Kind.OPENED) -> Notification:
    """A notification whose body follows ``Notification.body``'s documentation."""
    incident = "prod/shop/allow-web#1"
    body = {
        "schema_version": 1,
        "type": f"drift.{kind}",
        "incident_id": incident,
        "cluster": "prod",
        "namespace": "shop",
        "name": "allow-web",
        "status": "modified",
        "severity": "high",
        "findings": [{"rule": "ingress-widened", "severity": "high", "message": "opens 22"}],
        "diff": "--- git\n+++ live\n-  port: 80\n+  port: 22\n",
        "desired_source": {"path": "policies/web.yaml", "line": 1, "commit": "abc123"},
        "live_change": {"manager": "kubectl", "operation": "Update", "time": "2024-05-01T10:00Z"},
        "occurred_at": "2024-05-01T10:00:01+00:00",
        "reason": "ingress now allows port 22 — from anywhere",
        "link": "https://git.example/policies/web.yaml#L1",
        "opened_at": "2024-05-01T10:00:01+00:00",
        "resolved_at": None,
    }
    return Notification(str(uuid.uuid4()), "hook", incident, kind, body)


def config(**values: Any) -> WebhookConfig:
    return WebhookConfig.model_validate(values)


@asynccontextmanager
async def receiver(
    url: str, *, ctx_timeout: float = 5.0, clock: Any = time.time, **values: Any
) -> AsyncIterator[WebhookReceiver]:
    values.setdefault("secret", new_secret())
    async with aiohttp.ClientSession() as session:
        ctx = ReceiverContext(session=session, timeout=ctx_timeout)
        yield WebhookReceiver("hook", config(url=url, **values), ctx, clock=clock)


async def send(hook: WebhookStandIn, n: Notification | None = None, **values: Any) -> Outcome:
    values = {"url": f"{hook.url}/hook", "secret": hook.secret, **values}
    async with receiver(**values) as r:
        return await r.deliver(n or notification())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- signing -------------------------------------------------------------------------


def test_signature_matches_the_reference_library() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    payload = b'{"test": 2432232314}'
    when = datetime.fromtimestamp(1614265330, tz=UTC)
    expected = Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", when, payload.decode())
    got = signature(signing_key(secret), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, payload)
    assert got == expected
    assert expected == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="  # the spec's example


@async_test
async def test_delivers_the_body_signed_and_verified() -> None:
    n = notification()
    async with WebhookStandIn() as hook:
        outcome = await send(hook, n)
        assert outcome == Outcome.ok()
        [got] = hook.delivered
    assert (got.incident_id, got.kind) == (n.incident_id, "opened")
    headers = got.raw["headers"]
    assert headers["webhook-id"] == n.id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]
    assert headers["Content-Type"] == "application/json"
    assert got.raw["raw"] == json.dumps(n.body, separators=(",", ":"))
    assert Webhook(hook.secret).verify(got.raw["raw"], headers) == n.body


@async_test
async def test_rotation_signs_with_every_secret() -> None:
    old, new = new_secret(), new_secret(24)
    for consumer_secret in (old, new):
        async with WebhookStandIn(consumer_secret) as hook:
            assert await send(hook, secret=old, secrets=[new]) == Outcome.ok()
            [got] = hook.delivered
            assert len(got.raw["headers"]["webhook-signature"].split(" ")) == 2
    async with WebhookStandIn() as stranger:
        outcome = await send(stranger, secret=old, secrets=[new])
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert "answered 401" in outcome.reason
    assert old not in outcome.reason
    assert new not in outcome.reason


@async_test
async def test_webhook_id_is_stable_across_a_retry_and_the_timestamp_is_not() -> None:
    n = notification()
    now = [time.time()]
    async with WebhookStandIn() as hook:
        hook.fail_next(503)
        async with receiver(f"{hook.url}/hook", secret=hook.secret, clock=lambda: now[0]) as r:
            first = await r.deliver(n)
            now[0] += 7
            second = await r.deliver(dataclasses.replace(n, attempt=2))
        assert first.retryable
        assert second == Outcome.ok()
        a, b = hook.requests
    assert a.headers["webhook-id"] == b.headers["webhook-id"] == n.id
    assert int(b.headers["webhook-timestamp"]) == int(a.headers["webhook-timestamp"]) + 7
    assert a.headers["webhook-signature"] != b.headers["webhook-signature"]
    assert a.body == b.body


@async_test
async def test_cloudevents_structured_mode() -> None:
    n = notification(Kind.RESOLVED)
    async with WebhookStandIn() as hook:
        assert await send(hook, n, cloudevents=True) == Outcome.ok()
        [got] = hook.delivered
    assert got.kind == "resolved"
    assert got.raw["headers"]["Content-Type"] == "application/cloudevents+json"
    event = got.raw["body"]
    assert event == {
        "specversion": "1.0",
        "id": n.id,
        "source": "driftwatch/prod",
        "type": "io.driftwatch.drift.resolved",
        "datacontenttype": "application/json",
        "subject": "shop/allow-web",
        "time": n.body["occurred_at"],
        "data": n.body,
    }
    assert got.raw["headers"]["webhook-id"] == n.id
    assert encode(n, cloudevents=True)[0] == got.raw["raw"].encode()


@async_test
async def test_custom_headers_are_sent() -> None:
    async with WebhookStandIn() as hook:
        headers = {"X-Team": "platform", "Authorization": "Bearer gateway-token"}
        assert await send(hook, headers=headers) == Outcome.ok()
        [got] = hook.delivered
    assert got.raw["headers"]["X-Team"] == "platform"
    assert got.raw["headers"]["Authorization"] == "Bearer gateway-token"


@async_test
async def test_the_body_sent_is_the_documented_schema() -> None:
    for kind in Kind:
        n = notification(kind)
        assert body_problems(n.body) == []
        assert json.loads(encode(n)[0]) == n.body
    assert body_problems({**notification().body, "extra": 1}) == ["undocumented extra"]
    assert body_problems({**notification().body, "schema_version": 2}) == [
        "schema_version is not 1"
    ]
    odd = notification()
    odd = dataclasses.replace(odd, body={k: v for k, v in odd.body.items() if k != "diff"})
    async with WebhookStandIn() as hook:
        for kind in Kind:
            assert await send(hook, notification(kind)) == Outcome.ok()
        outcome = await send(hook, odd)
        assert [d.kind for d in hook.delivered] == [str(k) for k in Kind]
    assert not outcome.retryable
    assert "answered 400: not the documented body: missing diff" in outcome.reason


# --- outcomes ------------------------------------------------------------------------


@async_test
async def test_redirect_is_not_followed_and_is_permanent() -> None:
    async with WebhookStandIn() as hook:
        hook.redirect_to = f"{hook.url}/elsewhere?token=location-secret"
        outcome = await send(hook)
        assert [r.path for r in hook.requests] == ["/hook"]
    assert not outcome.delivered
    assert not outcome.retryable
    assert "302" in outcome.reason
    assert "127.0.0.1" in outcome.reason
    assert "location-secret" not in outcome.reason
    assert "not followed" in outcome.reason


@pytest.mark.parametrize(
    ("status", "retry_after", "retryable", "disable"),
    [
        (429, 7, True, False),
        (503, 30, True, False),
        (500, None, True, False),
        (502, None, True, False),
        (408, None, True, False),
        (400, None, False, False),
        (401, None, False, False),
        (404, None, False, False),
        (410, None, False, True),
    ],
)
@async_test
async def test_status_outcomes(
    status: int, retry_after: int | None, retryable: bool, disable: bool
) -> None:
    async with WebhookStandIn() as hook:
        hook.fail_next(status, retry_after=retry_after)
        outcome = await send(hook)
        assert await send(hook) == Outcome.ok()  # only the next request failed
    assert (outcome.delivered, outcome.retryable, outcome.disable) == (False, retryable, disable)
    assert outcome.retry_after == retry_after
    assert f"answered {status}" in outcome.reason
    assert ("disabled" in outcome.reason) is disable


@async_test
async def test_gone_says_the_receiver_is_disabled() -> None:
    async with WebhookStandIn() as hook:
        hook.gone = True
        outcome = await send(hook)
    assert outcome == Outcome.gone(outcome.reason)
    assert "410 Gone" in outcome.reason
    assert "receiver 'hook' is disabled" in outcome.reason


@async_test
async def test_closed_port_is_retried() -> None:
    port = closed_port()
    async with receiver(f"http://127.0.0.1:{port}/hook") as r:
        outcome = await r.deliver(notification())
    assert outcome.retryable
    assert f"127.0.0.1:{port}" in outcome.reason


@pytest.mark.parametrize(("ctx_timeout", "timeout"), [(0.2, None), (30.0, 0.2)])
@async_test
async def test_timeout_is_retried(ctx_timeout: float, timeout: float | None) -> None:
    async with WebhookStandIn() as hook:
        hook.delay = 1.0
        started = time.monotonic()
        outcome = await send(hook, ctx_timeout=ctx_timeout, timeout=timeout)
        elapsed = time.monotonic() - started
    assert outcome.retryable
    assert "did not answer within 0.2 s" in outcome.reason
    assert elapsed < 0.9


@async_test
async def test_no_secret_in_any_reason() -> None:
    signing = new_secret()
    async with WebhookStandIn(signing) as hook:
        url = f"http://user:url-password@{hook.url.removeprefix('http://')}/hook?token=q-token"
        reasons = []
        for status in (500, 404, 410):
            hook.fail_next(status)
            reasons.append((await send(hook, url=url, secret=signing)).reason)
        hook.redirect_to = "https://other.example/x?token=q-token"
        reasons.append((await send(hook, url=url, secret=signing)).reason)
        async with receiver(url, secret=signing) as r:
            listed = set(r.secrets())
    port = closed_port()
    async with receiver(f"http://u:url-password@127.0.0.1:{port}/h?token=q-token") as r:
        reasons.append((await r.deliver(notification())).reason)
    assert len(reasons) == 5
    for reason in reasons:
        assert reason
        for secret in (signing, "url-password", "q-token", signing.removeprefix("whsec_")):
            assert secret not in reason
    assert "/hook" in reasons[0]
    assert {signing, url, "url-password", "token=q-token"} <= listed


def test_secrets_lists_signing_secrets_url_credentials_and_credential_headers() -> None:
    a, b = new_secret(), new_secret()
    cfg = config(
        url="https://h.example/hook",
        secret=a,
        secrets=[b],
        headers={"Authorization": "Bearer t0k", "X-Api-Key": "k3y", "X-Team": "platform"},
    )
    ctx = ReceiverContext(session=None)  # type: ignore[arg-type]  # never used: no delivery
    assert list(RECEIVER.build("hook", cfg, ctx).secrets()) == [a, b, "Bearer t0k", "k3y"]
    url = "https://tok3n@h.example/hook?x=1"
    assert list(RECEIVER.build("h", config(url=url, secret=a), ctx).secrets()) == [
        a,
        url,
        "tok3n",
        "x=1",
    ]
    url = "https://name:pw@h.example/hook"
    assert list(RECEIVER.build("h", config(url=url, secret=a), ctx).secrets()) == [a, url, "pw"]
    assert public_url("https://u:p@h.example:8443/a/b?token=x#f") == "https://h.example:8443/a/b"


# --- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"secret": "sekret_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "must start with 'whsec_'"),
        ({"secret": "whsec_not*base64!!"}, "followed by base64"),
        ({"secret": "whsec_" + "QUJD"}, "24 to 64 random bytes, not 3"),
        ({"secrets": ["whsec_bad!"]}, "secrets.0"),
        ({"secret": None}, "give a signing secret"),
        ({"secrets": []}, "give a signing secret"),
        ({"url": "ftp://h.example/x"}, "http:// or https://"),
        ({"url": "/just/a/path"}, "http:// or https://"),
        ({"headers": {"webhook-id": "x"}}, "set by the receiver"),
        ({"headers": {"Webhook-Signature": "x"}}, "set by the receiver"),
        ({"headers": {"content-type": "text/plain"}}, "set by the receiver"),
        ({"headers": {"X-A": "1\r\nX-B: 2"}}, "line break"),
        ({"headers": {"bad name": "1"}}, "not a valid header name"),
        ({"headers": {"X-A": "1", "x-a": "2"}}, "given twice"),
        ({"url": "https://u:p@h.example/", "headers": {"authorization": "x"}}, "not both"),
        ({"timeout": 0}, "greater than 0"),
        ({"retries": 3}, "Extra inputs are not permitted"),
    ],
)
def test_config_rejects(values: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"url": "https://h.example/hook"}
    if "secret" not in values and "secrets" not in values:
        base["secret"] = new_secret()
    with pytest.raises(ValidationError) as caught:
        WebhookConfig.model_validate({**base, **values})
    assert message in str(caught.value)


def test_config_errors_never_show_the_secret() -> None:
    secret = "whsec_" + "c2hvcnQ="  # valid base64, too short
    url = "ftp://u:pw-in-url@h.example/?token=url-token"
    with pytest.raises(ValidationError) as caught:
        config(url=url, secret=secret, secrets=["whsec_wrong!secret"])
    text = str(caught.value)
    for leaked in ("c2hvcnQ", "pw-in-url", "url-token", "wrong!secret"):
        assert leaked not in text


def test_secret_file(tmp_path: Path) -> None:
    s = new_secret()
    (tmp_path / "hook.secret").write_text(s + "\n")
    cfg = WebhookConfig.model_validate(
        {"url": "https://h.example/hook", "secret_file": "hook.secret"},
        context=LoadContext(base_dir=tmp_path),
    )
    assert cfg.signing_secrets() == [s]
    with pytest.raises(ValidationError, match="either secret or secret_file"):
        config(url="https://h.example/hook", secret=s, secret_file=str(tmp_path / "hook.secret"))
    (tmp_path / "bad.secret").write_text("not-a-whsec\n")
    with pytest.raises(ValidationError, match="must start with 'whsec_'"):
        config(url="https://h.example/hook", secret_file=str(tmp_path / "bad.secret"))
    with pytest.raises(ValidationError, match="cannot read"):
        config(url="https://h.example/hook", secret_file=str(tmp_path / "missing"))


def test_a_minimal_receiver_is_what_the_standin_configures() -> None:
    hook = WebhookStandIn()
    hook.url = "http://127.0.0.1:1"
    entry = hook.receiver_config("hook")
    assert entry == {
        "name": "hook",
        "type": "webhook",
        "url": f"{hook.url}/hook",
        "secret": hook.secret,
    }
    cfg = config(**{k: v for k, v in entry.items() if k not in ("name", "type")})
    assert cfg.signing_secrets() == [hook.secret]
    assert (cfg.cloudevents, cfg.headers, cfg.timeout) == (False, {}, None)
    assert (RECEIVER.name, RECEIVER.config) == ("webhook", WebhookConfig)
