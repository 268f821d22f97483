"""Approve and snooze through the running daemon (issue #9): the sandbox as the cluster, the
Slack stand-in as Slack, the API and ``POST /hooks/slack`` over loopback HTTP, and the
``driftwatch incidents`` / ``export`` commands against it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import structlog
import yaml

from driftwatch.cli import main
from driftwatch.daemon.notifications import Notifications
from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import start_until_ready
from driftwatch.incidents import Incident, IncidentState, SqliteStore
from driftwatch.notify import ReceiverContext
from driftwatch.notify.slack import SlackConfig, SlackReceiver
from driftwatch.sandbox import Sandbox
from tests.aio import async_test
from tests.standins.slack import Message, SlackStandIn
from tests.test_daemon import EXAMPLES, FAST, settings_for, shop_policy
from tests.test_metrics import world_open

ALICE = "token-of-alice-123"
ANON = "anonymous-token-456"
INCIDENT = "test/shop/frontend-allow-from-ingress#1"
URL_ID = quote(INCIDENT, safe="")


@dataclass
class World:
    sandbox: Sandbox
    daemon: Daemon
    slack: SlackStandIn
    url: str

    async def incident(self) -> Incident:
        assert self.daemon.notifications is not None
        found = await self.daemon.notifications.store.get(INCIDENT)
        assert found is not None
        return found

    def parent(self) -> Message:
        (message,) = self.slack.top_level()
        return message


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("not in time")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with (
        Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox,
        SlackStandIn() as slack,
        aiohttp.ClientSession() as session,
    ):
        entry = {**slack.receiver_config("slack"), "signing_secret": slack.signing_secret}
        server = {
            "listen": "127.0.0.1:0",
            "api_token": ANON,
            "api_tokens": [{"name": "alice", "token": ALICE}],
        }
        settings = settings_for(
            sandbox.kubeconfig_path(tmp_path),
            {"path": str(EXAMPLES)},
            server=server,
            notifiers=[entry],
        )
        raw = {k: v for k, v in entry.items() if k not in ("name", "type")}
        receiver = SlackReceiver(
            "slack",
            SlackConfig.model_validate(raw),
            ReceiverContext(session, 5.0),
            min_interval=0.0,
        )
        store = await SqliteStore(tmp_path / "state.db").open()
        notifications = await Notifications.open(
            settings, log=structlog.get_logger(), receivers={"slack": receiver}, store=store
        )
        daemon = Daemon(settings, notifiers=[], tuning=FAST, notifications=notifications)
        task = await start_until_ready(daemon, timeout=20)  # its outbox task delivers
        assert daemon.server is not None
        try:
            yield World(sandbox, daemon, slack, daemon.server.url)
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=10)
            await notifications.close()


async def post(
    w: World, action: str, body: dict[str, Any] | None = None, token: str = ALICE
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(base_url=w.url, headers=headers) as client,
        client.post(f"/api/v1/incidents/{URL_ID}/{action}", json=body) as answer,
    ):
        return answer.status, await answer.json()


async def opened(w: World) -> Message:
    w.sandbox.put_object(world_open(), manager="kubectl-edit")
    await until(lambda: len(w.slack.top_level()) == 1)
    return w.parent()


def buttons(message: Message) -> list[str]:
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


@async_test(timeout=90)
async def test_approve_over_the_api_quiets_the_incident_until_the_live_policy_changes(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        parent = await opened(w)
        assert buttons(parent) == [
            "driftwatch_revert",
            "driftwatch_approve",
            "driftwatch_snooze_4h",
        ]
        assert w.slack.rejected == []

        status, answer = await post(w, "approve", {"reason": "emergency fix, ticket OPS-12"})
        assert status == 200, answer
        assert answer["state"] == "approved"
        assert answer["body"]["reason"] == "approved by alice: emergency fix, ticket OPS-12"
        assert answer["body"]["actions"][0]["actor"] == "alice"
        await until(lambda: len(w.parent().history) == 1)  # the parent was edited
        assert "approved by alice" in w.parent().content
        assert buttons(w.parent()) == ["driftwatch_revert", "driftwatch_snooze_4h"]
        (reply,) = w.slack.replies(parent.ts)
        assert "approved by alice: emergency fix, ticket OPS-12" in reply.content
        posted = len(w.slack.messages)

        # The same live policy written again, other metadata only: nothing sent.
        again = world_open()
        again["metadata"]["annotations"] = {
            "kubectl.kubernetes.io/last-applied-configuration": "{}"
        }
        w.sandbox.put_object(again, manager="kubectl-client-side-apply")
        await asyncio.sleep(1.0)
        assert len(w.slack.messages) == posted
        assert (await w.incident()).state is IncidentState.APPROVED

        # The live policy changes again: reopened, and the message says so.
        changed = world_open()
        changed["spec"]["ingress"][-1]["ports"] = [{"port": 8443}]
        w.sandbox.put_object(changed, manager="kubectl-edit")
        await until(lambda: len(w.slack.messages) > posted)
        incident = await w.incident()
        assert incident.state is IncidentState.UPDATED
        assert str(incident.body["reason"]).startswith(
            "reopened: the live policy changed again after the approval"
        )
        await until(lambda: "reopened" in w.parent().content)
        assert "driftwatch_approve" in buttons(w.parent())


@async_test(timeout=90)
async def test_the_api_snoozes_exports_and_answers_json_errors(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await opened(w)
        status, answer = await post(
            w, "snooze", {"for": "4h", "actor": "bob", "reason": "maint"}, token=ANON
        )
        assert status == 200, answer
        (action,) = answer["body"]["actions"]
        assert (action["action"], action["actor"]) == ("snoozed", "bob (via API token)")
        assert answer["body"]["reason"].startswith("snoozed by bob (via API token) until ")

        headers = {"Authorization": f"Bearer {ALICE}"}
        async with aiohttp.ClientSession(base_url=w.url, headers=headers) as client:
            async with client.get(f"/api/v1/incidents/{URL_ID}/live") as r:
                live = await r.json()
            assert r.status == 200
            meta = live["manifest"]["metadata"]
            assert (meta["name"], meta["namespace"]) == ("frontend-allow-from-ingress", "shop")
            assert set(meta) <= {"name", "namespace", "labels", "annotations"}
            assert live["manifest"]["spec"]["ingress"][-1] == {
                "from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
            }
            assert live["path"]

            cases = [
                ("approve", "prod%2Fnone%231", None, 404, "no such incident"),
                ("approve", URL_ID, [1], 400, "JSON object"),
                ("approve", URL_ID, {"until": 1}, 400, "unknown field"),
                ("snooze", URL_ID, {}, 400, '"for"'),
                ("snooze", URL_ID, {"for": "40d"}, 400, "30 days"),
                ("snooze", URL_ID, {"until": "2020-01-01T00:00:00Z"}, 400, "future"),
                ("revert", "prod%2Fnone%231", None, 404, "no such incident"),
            ]
            for action, iid, body, code, words in cases:
                async with client.post(f"/api/v1/incidents/{iid}/{action}", json=body) as r:
                    error = await r.json()
                assert (r.status, words in error["error"]) == (code, True), (action, error)
            async with (
                aiohttp.ClientSession(base_url=w.url) as anonymous,
                anonymous.post(f"/api/v1/incidents/{URL_ID}/approve") as r,
            ):
                assert r.status == 401
                assert (await r.json())["error"] == "missing bearer token"

            w.sandbox.put_object(shop_policy("frontend-allow-from-ingress"), manager="kubectl")
            await until(lambda: resolved(w))
            async with client.post(f"/api/v1/incidents/{URL_ID}/approve") as r:
                assert r.status == 409
                assert "resolved" in (await r.json())["error"]


async def resolved(w: World) -> bool:
    return not (await w.incident()).is_open


# --- Slack ------------------------------------------------------------------------------------


async def deliver(w: World, body: bytes, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as client,
        client.post(w.url + "/hooks/slack", data=body, headers=headers) as answer,
    ):
        return answer.status


@async_test(timeout=90)
async def test_slack_signature_failures_are_refused_and_change_nothing(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        parent = await opened(w)
        body, headers = w.slack.click(parent, "driftwatch_approve")
        # A wrong signature; the body altered after signing; a timestamp 6 minutes old.
        wrong = {**headers, "X-Slack-Signature": "v0=" + "0" * 64}
        altered = body.replace(b"driftwatch_approve", b"driftwatch_snooze_4h")
        old_body, old_headers = w.slack.click(
            parent, "driftwatch_approve", timestamp=int(time.time()) - 360
        )
        missing = {"Content-Type": headers["Content-Type"]}
        for data, sent in (
            (body, wrong),
            (altered, headers),
            (old_body, old_headers),
            (body, missing),
        ):
            assert await deliver(w, data, sent) == 401
        await asyncio.sleep(0.5)
        incident = await w.incident()
        assert incident.state is IncidentState.OPEN
        assert incident.body["actions"] == []
        assert w.parent().history == []


@async_test(timeout=90)
async def test_a_signed_click_approves_and_updates_the_message(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        parent = await opened(w)
        body, headers = w.slack.click(
            parent, "driftwatch_approve", user={"id": "U042", "username": "carol"}
        )
        started = time.monotonic()
        assert await deliver(w, body, headers) == 200
        assert time.monotonic() - started < 3
        await until(lambda: "approved by carol" in w.parent().content)
        incident = await w.incident()
        assert incident.state is IncidentState.APPROVED
        assert incident.body["actions"][0]["actor"] == "carol (via Slack, U042)"
        # Snooze 4h.
        body, headers = w.slack.click(w.parent(), "driftwatch_snooze_4h")
        assert await deliver(w, body, headers) == 200
        await until(lambda: "snoozed by alice" in w.parent().content)
        # Revert: Git's version goes back, the incident records who and resolves.
        body, headers = w.slack.click(
            w.parent(), "driftwatch_revert", user={"id": "U042", "username": "carol"}
        )
        assert await deliver(w, body, headers) == 200
        await until(lambda: "reverted by carol" in w.parent().content)
        reverted = [a for a in (await w.incident()).body["actions"] if a["action"] == "reverted"]
        assert [a["actor"] for a in reverted] == ["carol (via Slack, U042)"]
        # Resolved: the message shows it and offers no more buttons.
        await until(lambda: "resolved" in w.parent().content.lower())
        await until(lambda: buttons(w.parent()) == [])


# --- the command line ---------------------------------------------------------------------------

_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def _without_logs(text: str) -> str:
    """What the command printed, without the daemon's log lines (the same process)."""
    return "".join(line for line in text.splitlines(True) if not _LOG_LINE.match(line))


@async_test(timeout=90)
async def test_the_cli_lists_shows_acts_and_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text(ALICE + "\n")
    async with world(tmp_path) as w:
        await opened(w)
        base = ["--server", w.url, "--token-file", str(token)]

        async def cli(*args: str) -> tuple[int, str, str]:
            capsys.readouterr()
            status = await asyncio.to_thread(main, list(args))
            out, err = capsys.readouterr()
            return status, _without_logs(out), _without_logs(err)

        status, out, _ = await cli("incidents", "list", *base)
        assert status == 0
        header, row = out.splitlines()
        assert header.split() == ["ID", "STATE", "SEVERITY", "STATUS", "UPDATED"]
        assert row.split()[:4] == [INCIDENT, "open", "critical", "modified"]
        status, out, _ = await cli("incidents", "show", *base, INCIDENT)
        assert status == 0
        assert out.startswith(f"{INCIDENT}: open, critical severity, modified")
        assert "ingress-from-world" in out

        status, out, _ = await cli("incidents", "approve", *base, INCIDENT, "--reason", "ok")
        assert (status, out) == (0, f"{INCIDENT}: approved: approved by alice: ok\n")
        status, out, _ = await cli("incidents", "snooze", *base, INCIDENT, "--for", "4h")
        assert status == 0
        assert "snoozed by alice until" in out
        status, out, _ = await cli("incidents", "list", *base, "--state", "approved", "--json")
        assert [i["id"] for i in json.loads(out)["incidents"]] == [INCIDENT]

        status, out, _ = await cli("export", *base, INCIDENT)
        assert status == 0
        first, rest = out.split("\n", 1)
        assert first.startswith("# ")
        assert first.endswith(".yaml")
        manifest = yaml.safe_load(rest)
        assert manifest["kind"] == "NetworkPolicy"
        assert "managedFields" not in manifest["metadata"]
        assert manifest["spec"]["ingress"][-1] == {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}

        # Errors: one line, exit 2.
        status, out, err = await cli("incidents", "revert", *base, INCIDENT, "--reason", "back")
        assert status == 0, err
        assert "reverted by alice" in out
        status, _, err = await cli("incidents", "show", *base, "test/shop/none#1")
        assert (status, err) == (2, "driftwatch: error: 404: no such incident\n")
        monkeypatch.delenv("DRIFTWATCH_API_TOKEN", raising=False)
        status, _, err = await cli("incidents", "list", "--server", w.url)
        assert status == 2
        assert "no API token" in err
        monkeypatch.setenv("DRIFTWATCH_API_TOKEN", "wrong")
        status, _, err = await cli("incidents", "list", "--server", w.url)
        assert (status, err) == (2, "driftwatch: error: 401: invalid bearer token\n")
        status, _, err = await cli("incidents", "list", "--server", "http://127.0.0.1:9")
        assert status == 2
        assert err.startswith("driftwatch: error: cannot reach http://127.0.0.1:9: ")
