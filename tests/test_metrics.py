"""Every metric moves when it should: a daemon against the sandbox API server, scraped over
loopback and parsed with prometheus_client's own parser.

- watch events by type, detection latency, open drifts by severity and the oldest one's
  age (from the drift events without a store), watch restarts (a cut: ``closed``; a
  compaction: ``expired``; a failing list: ``server_error``);
- with notifications (a scripted receiver and a SQLite store): outcomes per receiver,
  the outbox's pending notifications and dead letters, open drifts from the store;
- Git: the last sync time, and sync errors after a failing fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import structlog
import yaml
from prometheus_client.parser import text_string_to_metric_families

from driftwatch.daemon.notifications import Notifications
from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import RecordingNotifier, start_until_ready
from driftwatch.drift import EventKind
from driftwatch.incidents import SqliteStore
from driftwatch.notify.model import Outcome
from driftwatch.notify.testing import ScriptedReceiver
from driftwatch.sandbox import Sandbox
from driftwatch.settings import Settings
from tests.aio import async_test
from tests.test_daemon import (
    BROKEN,
    EXAMPLES,
    FAST,
    NP,
    _git,
    needs_git,
    settings_for,
    shop_policy,
    without_topology,
)

SERVER = {"server": {"listen": "127.0.0.1:0"}}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(daemon: Daemon) -> Samples:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    assert daemon.server is not None
    async with (
        aiohttp.ClientSession() as client,
        client.get(daemon.server.url + "/metrics") as answer,
    ):
        assert answer.status == 200
        text = await answer.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


async def eventually(
    daemon: Daemon, check: Callable[[Samples], bool], timeout: float = 10.0
) -> Samples:
    """Scrape until ``check`` holds; the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(daemon)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never satisfied the check: {samples}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def daemon_for(settings: Settings, **kw: Any) -> AsyncIterator[Daemon]:
    daemon = Daemon(settings, tuning=FAST, **kw)
    task = await start_until_ready(daemon, timeout=20)
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, timeout=10)


def world_open(name: str = "frontend-allow-from-ingress") -> dict[str, Any]:
    policy = shop_policy(name)
    policy["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    return policy


@async_test(timeout=60)
async def test_watch_drift_and_restart_metrics_move(tmp_path: Path) -> None:
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        settings = without_topology(  # the cuts below count the open watches
            settings_for(sandbox.kubeconfig_path(tmp_path), {"path": str(EXAMPLES)}, **SERVER)
        )
        rec = RecordingNotifier()
        async with daemon_for(settings, notifiers=[rec]) as daemon:
            start = await scrape(daemon)
            assert value(start, "driftwatch_leader") == 1  # a single replica does the work
            assert value(start, "driftwatch_detection_latency_seconds_count") == 0
            assert value(start, "driftwatch_drifts_open") == 0
            assert value(start, "driftwatch_git_last_sync_timestamp_seconds") == 0  # no Git

            sandbox.put_object(world_open(), manager="kubectl-edit")
            await rec.wait_for(EventKind.OPENED, "frontend-allow-from-ingress")
            sandbox.delete_object(*NP, "default-deny", "shop")
            await rec.wait_for(EventKind.OPENED, "default-deny")
            after = await eventually(
                daemon,
                lambda s: value(s, "driftwatch_watch_events_total", type="BOOKMARK") > 0,
            )
            assert value(after, "driftwatch_watch_events_total", type="MODIFIED") >= 1
            assert value(after, "driftwatch_watch_events_total", type="DELETED") == 1
            assert value(after, "driftwatch_detection_latency_seconds_count") == 2
            assert 0 < value(after, "driftwatch_detection_latency_seconds_sum") < 5
            assert value(after, "driftwatch_drifts_open", severity="critical") == 2
            assert value(after, "driftwatch_drifts_open", severity="high") == 0
            assert value(after, "driftwatch_drift_oldest_open_seconds") > 0

            # A clean cut ends the watch ("closed"), and it resumes.
            assert sandbox.faults.cut_watches() == 1
            await eventually(
                daemon,
                lambda s: value(s, "driftwatch_watch_restarts_total", reason="closed") >= 1,
            )
            # Cut off while Git is re-applied to one policy, and the history compacted: the
            # resume gets 410 ("expired") and the watcher relists.
            await sandbox.wait_for_watchers(1, resource="networkpolicies")
            sandbox.faults.refuse(match="networkpolicies")
            assert sandbox.faults.cut_watches(abrupt=True) == 1
            sandbox.put_object(shop_policy("frontend-allow-from-ingress"))
            sandbox.faults.compact()
            sandbox.faults.clear()
            await eventually(
                daemon,
                lambda s: value(s, "driftwatch_watch_restarts_total", reason="expired") >= 1,
            )
            await rec.wait_for(EventKind.RESOLVED, "frontend-allow-from-ingress")
            (deny,) = [
                doc
                for doc in yaml.safe_load_all(
                    (EXAMPLES / "shop" / "00-default-deny.yaml").read_text()
                )
                if doc["metadata"]["name"] == "default-deny"
            ]
            sandbox.put_object(deny)
            await rec.wait_for(EventKind.RESOLVED, "default-deny")
            done = await scrape(daemon)
            assert value(done, "driftwatch_drifts_open") == 0
            assert value(done, "driftwatch_drift_oldest_open_seconds") == 0
            assert value(done, "driftwatch_detection_latency_seconds_count") == 4


@async_test(timeout=60)
async def test_a_failing_list_counts_as_restarts_and_keeps_the_replica_unready(
    tmp_path: Path,
) -> None:
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        settings = settings_for(
            sandbox.kubeconfig_path(tmp_path), {"path": str(EXAMPLES)}, **SERVER
        )
        sandbox.faults.fail(status=500, match="networkpolicies")
        daemon = Daemon(settings, notifiers=[], tuning=FAST)
        assert daemon.server is not None
        task = asyncio.create_task(daemon.run())
        try:
            await asyncio.wait_for(daemon.server.listening.wait(), timeout=10)
            async with aiohttp.ClientSession(base_url=daemon.server.url) as client:
                async with client.get("/healthz") as r:
                    assert r.status == 200
                samples = await eventually(
                    daemon,
                    lambda s: (
                        value(s, "driftwatch_watch_restarts_total", reason="server_error") >= 2
                    ),
                )
                async with client.get("/readyz") as r:
                    assert r.status == 503
                    body = await r.json()
                assert body["status"] == "not ready"
                assert "live state not listed and compared yet" in body["reasons"]
                assert body["role"] == "single"
                assert value(samples, "driftwatch_watch_events_total") == 0

                sandbox.faults.clear()
                await asyncio.wait_for(daemon.ready.wait(), timeout=10)
                async with client.get("/readyz") as r:
                    assert r.status == 200
                    assert await r.json() == {"status": "ready", "reasons": [], "role": "single"}
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=10)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


@async_test(timeout=60)
async def test_notification_outcomes_outbox_and_store_backed_gauges(tmp_path: Path) -> None:
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        settings = settings_for(
            sandbox.kubeconfig_path(tmp_path), {"path": str(EXAMPLES)}, **SERVER
        )
        # First attempt: busy for 2 s; the retry is delivered.
        fake = ScriptedReceiver("fake", script=[Outcome.retry("busy", after=2.0)])
        store = await SqliteStore(tmp_path / "state.db").open()
        notifications = await Notifications.open(
            settings, log=structlog.get_logger(), receivers={"fake": fake}, store=store
        )
        try:
            async with daemon_for(settings, notifiers=[], notifications=notifications) as daemon:
                start = await scrape(daemon)
                for outcome in ("delivered", "retry", "dead_letter", "disabled"):
                    key = (
                        "driftwatch_notifications_total",
                        (("outcome", outcome), ("receiver", "fake")),
                    )
                    assert start[key] == 0, outcome
                assert value(start, "driftwatch_outbox_pending") == 0

                sandbox.put_object(world_open(), manager="kubectl-edit")
                await until(lambda: len(fake.attempts) == 1)
                waiting = await eventually(
                    daemon,
                    lambda s: value(s, "driftwatch_notifications_total", outcome="retry") == 1,
                )
                assert value(waiting, "driftwatch_outbox_pending") == 1
                assert value(waiting, "driftwatch_drifts_open", severity="critical") == 1
                assert value(waiting, "driftwatch_drift_oldest_open_seconds") >= 0

                # (a scrape reads the store before it renders the counters: a delivery that
                # lands in between shows in the counter before the gauge, so wait for both)
                delivered = await eventually(
                    daemon,
                    lambda s: (
                        value(s, "driftwatch_notifications_total", outcome="delivered") == 1
                        and value(s, "driftwatch_outbox_pending") == 0
                    ),
                )
                assert value(delivered, "driftwatch_dead_letters") == 0

                # A permanent refusal: dead-lettered.
                fake.script.append(Outcome.fail("rejected"))
                sandbox.delete_object(*NP, "default-deny", "shop")
                dead = await eventually(
                    daemon,
                    lambda s: (
                        value(s, "driftwatch_notifications_total", outcome="dead_letter") == 1
                        and value(s, "driftwatch_dead_letters") == 1
                    ),
                )
                assert value(dead, "driftwatch_drifts_open", severity="critical") == 2
        finally:
            await notifications.close()


@needs_git
@async_test(timeout=60)
async def test_git_last_sync_and_sync_errors(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "policies")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "initial")
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        desired = {
            "git": {"url": str(repo), "ref": "main", "path": "policies", "poll_interval": "1h"}
        }
        settings = settings_for(sandbox.kubeconfig_path(tmp_path), desired, **SERVER)
        before = time.time()
        async with daemon_for(settings, notifiers=[], git_cache=tmp_path / "cache") as daemon:
            first = await scrape(daemon)
            synced = value(first, "driftwatch_git_last_sync_timestamp_seconds")
            assert before <= synced <= time.time()
            assert value(first, "driftwatch_git_sync_errors_total") == 0

            repo.rename(tmp_path / "moved")  # the remote is gone: the fetch fails
            daemon.refresh.set()
            failed = await eventually(
                daemon, lambda s: value(s, "driftwatch_git_sync_errors_total") == 1
            )
            assert value(failed, "driftwatch_git_last_sync_timestamp_seconds") == synced

            (tmp_path / "moved").rename(repo)
            daemon.refresh.set()
            again = await eventually(
                daemon, lambda s: value(s, "driftwatch_git_last_sync_timestamp_seconds") > synced
            )
            assert value(again, "driftwatch_git_sync_errors_total") == 1
            assert daemon.git_fetches == 2

            # A commit that cannot be read: fetched (a sync), not loaded (a load error).
            (repo / "policies" / "broken.yaml").write_text(BROKEN)
            _git(repo, "add", ".")
            _git(repo, "commit", "-q", "-m", "broken")
            daemon.refresh.set()
            broken = await eventually(
                daemon, lambda s: value(s, "driftwatch_desired_load_errors_total") == 1
            )
            assert value(broken, "driftwatch_git_sync_errors_total") == 1
