"""Git faults (issue #7): an unreachable remote, a force-pushed history and a commit with
malformed YAML, against a daemon that watches the sandbox and polls a bare repository on
the local disk.

What a user relies on: the last good desired state is kept (drifts are still evaluated
against it), the desired state's own incident (``test//desired-state#1``, rule
``desired-state-unreadable``) opens once, names ``file:line`` for malformed YAML or
``cannot fetch <url>`` for a remote that stays unreachable (not for a blip), reaches the
receivers, and resolves once Git is readable again; a force-push is followed to the new
head even though it does not descend from the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from driftwatch.daemon.desired_health import (
    DESIRED_STATE_UNREADABLE,
    DesiredHealth,
    desired_state_key,
)
from driftwatch.daemon.notifications import Notifications
from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import start_until_ready
from driftwatch.desired import DesiredStateError
from driftwatch.incidents import SqliteStore
from driftwatch.notify.pipeline import Pipeline
from driftwatch.notify.routing import Router
from driftwatch.sandbox import Sandbox
from driftwatch.settings import Settings
from tests.aio import async_test
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.webhook import WebhookStandIn
from tests.test_daemon import EXAMPLES, FAST, NP, _git, needs_git, shop_policy
from tests.test_notify_restart import DaemonProcess

pytestmark = [pytest.mark.faults, pytest.mark.git, needs_git]

PROBLEM = "test//desired-state#1"
"""The desired state's first incident in cluster ``test``."""
MALFORMED = """\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: broken, namespace: shop
spec: {podSelector: {}}
"""
"""A flow mapping left open: a YAML syntax error, reported at the file's last line."""


@dataclass
class Rig:
    """A daemon polling ``remote`` (a bare repository), pushed to from ``work``."""

    work: Path
    remote: Path
    sandbox: Sandbox
    daemon: Daemon
    health: DesiredHealth
    webhook: WebhookStandIn
    pagerduty: PagerDutyStandIn
    polls: list[tuple[str | None, DesiredStateError | None]] = field(default_factory=list)

    def push(self, message: str, *, force: bool = False) -> str:
        _git(self.work, "commit", "-qam", message)
        _git(self.work, "push", "-q", *(["--force"] if force else []), "origin", "main")
        return _git(self.work, "rev-parse", "HEAD")

    async def poll(self, timeout: float = 15) -> tuple[str | None, DesiredStateError | None]:
        """Fetch Git now; the outcome the daemon reported (``on_desired``'s arguments)."""
        seen = len(self.polls)
        self.daemon.refresh.set()
        await until(lambda: len(self.polls) > seen, "a Git fetch", timeout)
        return self.polls[-1]

    def deliveries(self, incident: str) -> dict[str, list[str]]:
        """Receiver -> the kinds of its notifications about ``incident``, in order."""
        return {
            name: [d.kind for d in standin.delivered if d.incident_id == incident]
            for name, standin in (("webhook", self.webhook), ("pagerduty", self.pagerduty))
        }

    def count(self, incident: str) -> int:
        return sum(len(kinds) for kinds in self.deliveries(incident).values())


async def until(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, *, failures: int = 3) -> AsyncIterator[Rig]:
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    shutil.copytree(EXAMPLES, work / "policies")
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "initial")
    _git(work, "remote", "add", "origin", str(remote))
    _git(work, "push", "-q", "origin", "main")
    async with (
        Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox,
        WebhookStandIn() as webhook,
        PagerDutyStandIn() as pagerduty,
    ):
        settings = Settings.model_validate(
            {
                "cluster": {"name": "test", "kubeconfig": str(sandbox.kubeconfig_path(tmp_path))},
                "desired": {"git": {"url": str(remote), "path": "policies", "poll_interval": 60}},
                "state": {"path": str(tmp_path / "state.db")},
                "notifiers": [
                    webhook.receiver_config("webhook"),
                    pagerduty.receiver_config("pagerduty"),
                ],
            }
        )
        log = structlog.get_logger("test")
        notifications = await Notifications.open(settings, log=log)
        daemon = Daemon(
            settings,
            notifiers=[],
            tuning=FAST,
            git_cache=tmp_path / "cache",
            notifications=notifications,
            log=log,
        )
        health = DesiredHealth(
            notifications.pipeline, cluster="test", url=str(remote), failures=failures, log=log
        )
        the_rig = Rig(work, remote, sandbox, daemon, health, webhook, pagerduty)

        async def on_desired(commit: str | None, error: DesiredStateError | None) -> None:
            await health(commit, error)
            the_rig.polls.append((commit, error))

        daemon.on_desired = on_desired
        task = await start_until_ready(daemon, timeout=20)
        try:
            yield the_rig
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=10)
            await notifications.close()


def widen_frontend(sandbox: Sandbox) -> dict[str, Any]:
    """A live change Git does not have: ``frontend-allow-from-ingress`` also from 10/8."""
    wider = shop_policy("frontend-allow-from-ingress")
    wider["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]})
    sandbox.put_object(wider, manager="kubectl-edit")
    return wider


@async_test(timeout=90)
async def test_malformed_yaml_keeps_the_last_good_state_opens_one_incident_and_resolves(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        started = time.monotonic()
        good = r.daemon.desired_commit
        frontend = r.work / "policies" / "shop" / "frontend.yaml"
        good_text = frontend.read_text()
        frontend.write_text(good_text + MALFORMED)
        last_line = len(frontend.read_text().splitlines())
        broken = r.push("malformed YAML")

        commit, error = await r.poll()
        assert (commit, type(error)) == (broken, DesiredStateError)
        assert r.daemon.desired_commit == good, "the last good desired state is kept"
        await until(lambda: r.count(PROBLEM) == 2, "the incident at both receivers")
        assert r.deliveries(PROBLEM) == {"webhook": ["opened"], "pagerduty": ["opened"]}
        (body,) = [d.raw["body"] for d in r.webhook.delivered if d.incident_id == PROBLEM]
        assert body["status"] == "unreadable"
        assert body["severity"] == "high"
        assert (body["namespace"], body["name"]) == ("", "desired-state")
        assert (body["diff"], body["desired_source"], body["live_change"]) == ("", None, None)
        (finding,) = body["findings"]
        assert finding["rule"] == DESIRED_STATE_UNREADABLE
        assert f"policies/shop/frontend.yaml:{last_line}:" in finding["message"], finding
        assert broken in body["reason"]
        opened_after = time.monotonic() - started

        # Drifts are still evaluated, against the last good state.
        sandbox = r.sandbox
        sandbox.delete_object(*NP, "default-deny", "shop")
        widen_frontend(sandbox)
        await until(
            lambda: (
                {d.incident_id for d in r.webhook.delivered}
                >= {
                    "test/shop/default-deny#1",
                    "test/shop/frontend-allow-from-ingress#1",
                }
            ),
            "the drifts against the last good state",
        )
        # Polling again (the same broken commit) reports nothing new.
        for _ in range(3):
            r.daemon.refresh.set()
            fetches = r.daemon.git_fetches
            await until(lambda: r.daemon.git_fetches > fetches, "another fetch")  # noqa: B023
        await asyncio.sleep(0.3)
        assert r.deliveries(PROBLEM) == {"webhook": ["opened"], "pagerduty": ["opened"]}

        # Fixed (the live change adopted, too): resolved; Git's head is the desired state.
        frontend.write_text(good_text)
        fixed = r.push("fix the YAML")
        fixed_at = time.monotonic()
        assert await r.poll() == (fixed, None)
        assert r.daemon.desired_commit == fixed
        await until(lambda: r.count(PROBLEM) == 4, "the resolve at both receivers")
        recovered = time.monotonic() - fixed_at
        assert r.deliveries(PROBLEM) == {
            "webhook": ["opened", "resolved"],
            "pagerduty": ["opened", "resolved"],
        }
        assert r.pagerduty.actions_for(PROBLEM) == ["trigger", "resolve"]
        assert r.pagerduty.rejected == []
        store = r.daemon.notifications.store if r.daemon.notifications else None
        assert store is not None
        assert await store.open_incident(desired_state_key("test")) is None
        print(
            f"git malformed YAML: faults 1, incident opened {opened_after:.2f} s after the "
            f"push, opened 1x over 5 polls, lost 0, duplicates 0, resolved {recovered:.2f} s "
            "after the fix"
        )


@async_test(timeout=90)
async def test_an_unreachable_remote_opens_an_incident_on_the_third_failed_fetch(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, failures=3) as r:
        good = r.daemon.desired_commit
        gone = r.remote.with_name("moved-away.git")
        r.remote.rename(gone)
        started = time.monotonic()
        # A blip: two failed fetches open nothing.
        for n in (1, 2):
            commit, error = await r.poll()
            assert commit is None
            assert isinstance(error, DesiredStateError)
            assert r.health.failed_fetches == n
        await asyncio.sleep(0.3)
        assert r.count(PROBLEM) == 0
        # The third opens it, naming the remote; later failures add nothing.
        await r.poll()
        await until(lambda: r.count(PROBLEM) == 2, "the incident at both receivers")
        opened_after = time.monotonic() - started
        (body,) = [d.raw["body"] for d in r.webhook.delivered if d.incident_id == PROBLEM]
        assert body["status"] == "unreachable"
        (finding,) = body["findings"]
        assert finding["rule"] == DESIRED_STATE_UNREADABLE
        assert finding["message"] == f"cannot fetch {r.remote}"
        assert "git fetch failed" in finding["evidence"]["error"], finding
        for _ in range(2):
            await r.poll()
        assert r.health.failed_fetches == 5
        assert r.daemon.desired_commit == good
        widen_frontend(r.sandbox)
        await until(
            lambda: any(
                d.incident_id == "test/shop/frontend-allow-from-ingress#1"
                for d in r.webhook.delivered
            ),
            "a drift evaluated against the last good state",
        )
        assert r.deliveries(PROBLEM) == {"webhook": ["opened"], "pagerduty": ["opened"]}

        # Reachable again: the next fetch resolves it.
        gone.rename(r.remote)
        back = time.monotonic()
        assert await r.poll() == (good, None)
        await until(lambda: r.count(PROBLEM) == 4, "the resolve at both receivers")
        assert r.pagerduty.actions_for(PROBLEM) == ["trigger", "resolve"]
        print(
            f"git unreachable remote: faults 5 failed fetches, incident opened on the 3rd "
            f"({opened_after:.2f} s, polls forced), lost 0, duplicates 0, resolved "
            f"{time.monotonic() - back:.2f} s after the remote came back"
        )


@async_test(timeout=90)
async def test_a_force_pushed_history_is_followed_to_the_new_head(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        old = r.daemon.desired_commit
        assert old is not None
        wider = widen_frontend(r.sandbox)
        await until(lambda: bool(r.webhook.delivered), "the drift")
        # Rewrite the only commit (amend: the new head does not descend from the old one),
        # adopting the live change, and force-push it.
        frontend = r.work / "policies" / "shop" / "frontend.yaml"
        docs = [
            wider if d["metadata"]["name"] == wider["metadata"]["name"] else d
            for d in yaml.safe_load_all(frontend.read_text())
        ]
        frontend.write_text(yaml.safe_dump_all(docs))
        _git(r.work, "commit", "-q", "--amend", "-am", "rewritten")
        _git(r.work, "push", "-q", "--force", "origin", "main")
        new = _git(r.work, "rev-parse", "HEAD")
        with pytest.raises(Exception, match="exit status 1"):
            _git(r.work, "merge-base", "--is-ancestor", old, new)
        started = time.monotonic()
        assert await r.poll() == (new, None)
        assert r.daemon.desired_commit == new
        incident = "test/shop/frontend-allow-from-ingress#1"
        await until(
            lambda: (
                [d.kind for d in r.webhook.delivered if d.incident_id == incident]
                == ["opened", "resolved"]
            ),
            "the drift resolved by the rewritten history",
        )
        (resolve,) = [d for d in r.webhook.delivered if d.kind == "resolved"]
        assert resolve.raw["body"]["reason"] == "Git changed to match the live policy"
        assert r.count(PROBLEM) == 0
        print(
            f"git force-push: faults 1, new head picked up and the drift resolved "
            f"{time.monotonic() - started:.2f} s after the poll, lost 0, duplicates 0"
        )


# --- the watcher on its own ----------------------------------------------------------------


@async_test
async def test_fetch_failures_open_after_the_grace_even_below_the_count(tmp_path: Path) -> None:
    """With a long poll interval, 5 minutes of failing fetches open the incident before the
    third failure; the URL's credentials never appear; a broken commit opens at once and a
    fetch failing after it updates the same incident; a success resolves it once."""
    store = await SqliteStore(tmp_path / "state.db").open()
    try:
        pipeline = Pipeline(store, Router((), ("r",), ()))
        now = [1000.0]
        url = "https://driftwatch:s3cret-token@git.example.com/team/policies.git?x=y"
        health = DesiredHealth(pipeline, cluster="c", url=url, clock=lambda: now[0])
        key = desired_state_key("c")
        failure = DesiredStateError("https://git.example.com/team/policies.git@HEAD: git fetch")
        await health(None, failure)
        assert await store.open_incident(key) is None
        now[0] += 301
        await health(None, failure)
        incident = await store.open_incident(key)
        assert incident is not None
        assert incident.status == "unreachable"
        assert incident.body["findings"][0]["message"] == (
            "cannot fetch https://git.example.com/team/policies.git"
        )
        assert "s3cret" not in str(incident.body)
        # The same problem again: no new notification (the fingerprint is unchanged).
        await health(None, failure)
        assert await store.pending_count() == 1  # the opened notification
        # A commit that cannot be read: the same incident, updated.
        await health("abc123", DesiredStateError("x@HEAD: policies/a.yaml:3: bad"))
        updated = await store.open_incident(key)
        assert updated is not None
        assert (updated.id, updated.status) == (incident.id, "unreadable")
        assert updated.body["findings"][0]["message"] == "x@HEAD: policies/a.yaml:3: bad"
        await health("abc124", None)
        await health("abc124", None)
        assert await store.open_incident(key) is None
        assert await store.pending_count() == 3  # opened, updated, resolved
    finally:
        await store.close()


@async_test
async def test_the_desired_state_incident_survives_a_restart_without_a_second_alert(
    tmp_path: Path,
) -> None:
    """After a restart, the same problem reported again sends nothing (the stored
    fingerprint matches); the first full evaluation's reconcile leaves an incident this
    process confirmed open, and resolves one carried over but not seen again (the daemon
    only gets there after reading its desired state)."""
    key = desired_state_key("c")
    broken = DesiredStateError("x@HEAD: policies/a.yaml:3: bad")

    async def process(*, report: bool) -> tuple[int, bool]:
        store = await SqliteStore(tmp_path / "state.db").open()
        try:
            pipeline = Pipeline(store, Router((), ("r",), ()))
            if report:
                await DesiredHealth(pipeline, cluster="c", url="x")("abc", broken)
            await pipeline.reconcile([])
            return await store.pending_count(), await store.open_incident(key) is not None
        finally:
            await store.close()

    assert await process(report=True) == (1, True)  # opened
    assert await process(report=True) == (1, True)  # restarted, same problem: nothing new
    assert await process(report=False) == (2, False)  # restarted, Git readable: resolved


@async_test(timeout=90)
async def test_driftwatch_run_wires_the_desired_state_incident(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real command (``cli/run.py`` sets ``on_desired``): a malformed commit polled
    every second reaches the webhook once as ``opened``, naming the file; the fix resolves
    it."""
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    shutil.copytree(EXAMPLES, work / "policies")
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "initial")
    _git(work, "remote", "add", "origin", str(remote))
    _git(work, "push", "-q", "origin", "main")
    async with (
        Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox,
        WebhookStandIn() as webhook,
    ):
        config = tmp_path / "driftwatch.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "cluster": {
                        "name": "test",
                        "kubeconfig": str(sandbox.kubeconfig_path(tmp_path)),
                    },
                    "desired": {
                        "git": {"url": str(remote), "path": "policies", "poll_interval": 1}
                    },
                    "state": {"path": str(tmp_path / "state.db")},
                    "notifiers": [webhook.receiver_config("webhook")],
                    "log": {"format": "json"},
                }
            )
        )
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the Git mirror
        daemon = await DaemonProcess.start(config)
        try:
            await daemon.ready()
            frontend = work / "policies" / "shop" / "frontend.yaml"
            good_text = frontend.read_text()
            frontend.write_text(good_text + MALFORMED)
            _git(work, "commit", "-qam", "malformed")
            _git(work, "push", "-q", "origin", "main")

            def kinds() -> list[str]:
                return [d.kind for d in webhook.delivered if d.incident_id == PROBLEM]

            await daemon.until(lambda: kinds() == ["opened"], "the incident", 15)
            await asyncio.sleep(2.5)  # two more polls of the same broken commit
            assert kinds() == ["opened"]
            (opened,) = [d for d in webhook.delivered if d.incident_id == PROBLEM]
            assert "policies/shop/frontend.yaml:" in opened.raw["body"]["findings"][0]["message"]
            frontend.write_text(good_text)
            _git(work, "commit", "-qam", "fixed")
            _git(work, "push", "-q", "origin", "main")
            await daemon.until(lambda: kinds() == ["opened", "resolved"], "the resolve", 15)
        finally:
            assert await daemon.stop() == 0, daemon.log_text
