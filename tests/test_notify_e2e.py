"""End to end with the sandbox and the real kubectl: a change made with ``kubectl edit``
reaches Slack, PagerDuty, Alertmanager and a signed webhook as one incident each; applying
Git again resolves it everywhere (Slack's parent message edited, PagerDuty resolved with
the same dedup key, the webhook's ``drift.resolved``). With ``group_wait``, policies
deleted together reach Slack and the webhook as one message, PagerDuty as one event each."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from driftwatch.daemon.notifications import Notifications
from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import start_until_ready
from driftwatch.settings import Settings
from tests.standins.base import StandIn
from tests.standins.every import every_standin
from tests.test_daemon import EDITOR, EXAMPLES, FAST, kubectl_and_daemon_settings, needs_kubectl

POLICY = "frontend-allow-from-ingress"


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


def kinds(standin: StandIn) -> list[str]:
    return [d.kind for d in standin.delivered]


@pytest.mark.kubectl
@needs_kubectl
def test_a_kubectl_change_reaches_every_receiver_and_reapplying_git_resolves_it(
    tmp_path: Path,
) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    with kubectl_and_daemon_settings(tmp_path) as (kubectl, base):

        async def scenario() -> None:
            async with every_standin() as services:
                data = base.model_dump(mode="json", exclude={"notifiers"})
                data["notifiers"] = [s.receiver_config(n) for n, s in services.items()]
                data["state"] = {"path": str(tmp_path / "state.db")}
                settings = Settings.model_validate(data)
                log = structlog.get_logger("driftwatch")
                notifications = await Notifications.open(settings, log=log)
                daemon = Daemon(settings, notifiers=[], tuning=FAST, notifications=notifications)
                with capture_logs() as logs:
                    task = await start_until_ready(daemon, timeout=20)
                    try:
                        env = kubectl.env(KUBE_EDITOR=f"{sys.executable} {editor}")
                        await asyncio.to_thread(
                            kubectl.run, "-n", "shop", "edit", f"networkpolicy/{POLICY}", env=env
                        )
                        await until(lambda: all(kinds(s) == ["opened"] for s in services.values()))
                        await asyncio.to_thread(
                            kubectl.run, "apply", "-f", str(EXAMPLES / "shop" / "frontend.yaml")
                        )
                        await until(
                            lambda: all(kinds(s)[-1:] == ["resolved"] for s in services.values())
                        )
                    finally:
                        daemon.stop()
                        await asyncio.wait_for(task, timeout=10)
                        await notifications.close()

                incident = "test/shop/frontend-allow-from-ingress#1"
                for name, standin in services.items():
                    assert kinds(standin) == ["opened", "resolved"], name
                    assert {d.incident_id for d in standin.delivered} == {incident}, name
                assert services["pagerduty"].actions_for(incident) == ["trigger", "resolve"]
                slack = services["slack"]
                (parent,) = slack.top_level()
                assert parent.history, "the parent message was edited in place"
                assert "RESOLVED" in parent.text
                assert [r.thread_ts for r in slack.replies(parent.ts)] == [parent.ts]
                opened = services["webhook"].delivered[0].raw["body"]
                assert opened["type"] == "drift.opened"
                assert opened["severity"] == "critical"
                assert opened["live_change"]["manager"] == "kubectl-edit"
                secrets = [s.secret for s in services.values()]
                leaked = [e for e in logs if any(secret in str(e) for secret in secrets)]
                assert leaked == []

        asyncio.run(asyncio.wait_for(scenario(), timeout=90))


@pytest.mark.kubectl
@needs_kubectl
def test_policies_deleted_together_reach_a_grouping_receiver_as_one_message(
    tmp_path: Path,
) -> None:
    deleted = ["backend-allow-from-frontend", "backend-egress", "db-allow-from-backend"]
    with kubectl_and_daemon_settings(tmp_path) as (kubectl, base):

        async def scenario() -> None:
            async with every_standin() as services:
                data = base.model_dump(mode="json", exclude={"notifiers"})
                data["notifiers"] = [s.receiver_config(n) for n, s in services.items()]
                data["group_wait"] = "1s"  # pagerduty: never delayed (not a batching type)
                data["state"] = {"path": str(tmp_path / "state.db")}
                settings = Settings.model_validate(data)
                log = structlog.get_logger("driftwatch")
                notifications = await Notifications.open(settings, log=log)
                daemon = Daemon(settings, notifiers=[], tuning=FAST, notifications=notifications)
                task = await start_until_ready(daemon, timeout=20)
                try:
                    await asyncio.to_thread(
                        kubectl.run, "-n", "shop", "delete", "networkpolicy", *deleted
                    )
                    await until(lambda: all(len(s.delivered) == 3 for s in services.values()))
                    await asyncio.sleep(0.5)  # nothing else follows
                finally:
                    daemon.stop()
                    await asyncio.wait_for(task, timeout=10)
                    await notifications.close()

                ids = {f"test/shop/{name}#1" for name in deleted}
                for name, standin in services.items():
                    assert kinds(standin) == ["opened"] * 3, name
                    assert {d.incident_id for d in standin.delivered} == ids, name
                webhook = services["webhook"]
                (request,) = webhook.requests  # one signed POST for the three
                assert 200 <= request.status < 300
                (batch,) = {d.raw["body"]["batch_id"] for d in webhook.delivered}
                assert request.headers["webhook-id"] == batch
                slack = services["slack"]
                assert len(slack.top_level()) == 1
                pagerduty = services["pagerduty"]
                assert sorted(a for i in ids for a in pagerduty.actions_for(i)) == ["trigger"] * 3

        asyncio.run(asyncio.wait_for(scenario(), timeout=90))
