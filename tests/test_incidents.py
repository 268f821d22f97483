"""Incidents and durable delivery: the SQLite store, the pipeline from drift events to
incidents and queued notifications, and the outbox that retries until a receiver confirms."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import structlog
from structlog.testing import capture_logs

from driftwatch.drift import DriftEvent, EventKind, compare
from driftwatch.incidents import IncidentState, SqliteStore
from driftwatch.notify.model import Notification, Outcome
from driftwatch.notify.outbox import Backoff, Limits, Outbox
from driftwatch.notify.pipeline import Pipeline
from driftwatch.notify.routing import Facts, Matcher, Route, Router, Silence
from driftwatch.notify.testing import ScriptedReceiver
from driftwatch.policy import NetworkPolicy, PolicyKey
from driftwatch.rules import RuleEngine
from tests.aio import async_test
from tests.builders import allow_from, np

ENGINE = RuleEngine()
KEY = PolicyKey("prod", "shop", "web")
GIT = np("web", "shop", spec=allow_from("frontend"))
OPEN_TO_WORLD = np(
    "web",
    "shop",
    spec={
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 8080}]}],
    },
)
PORT_CHANGED = np("web", "shop", spec=allow_from("frontend", port=9090))


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(kind: EventKind, live: NetworkPolicy | None, seq: int = 1) -> DriftEvent:
    drift = compare(KEY, GIT, live if live is not None else OPEN_TO_WORLD, ENGINE)
    return DriftEvent(kind, KEY, drift, None, "why", seq, live)


async def setup(
    tmp_path: Path, *receivers: ScriptedReceiver, router: Router | None = None
) -> tuple[SqliteStore, Pipeline, Outbox, Clock]:
    store = await SqliteStore(tmp_path / "state.db").open()
    clock = Clock()
    names = [r.name for r in receivers]
    log = structlog.get_logger()
    outbox = Outbox(
        store, {r.name: r for r in receivers}, backoff=Backoff(1, 2, 60), clock=clock, log=log
    )
    pipeline = Pipeline(
        store,
        router or Router((), names),
        wake=outbox.wake,
        clock=clock,
        repeat_interval=3600,
        log=log,
    )
    return store, pipeline, outbox, clock


@async_test
async def test_an_incident_opens_updates_and_resolves_with_one_notification_each(
    tmp_path: Path,
) -> None:
    slack = ScriptedReceiver("slack")
    store, pipeline, outbox, clock = await setup(tmp_path, slack)
    opened = await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
    assert opened is not None
    assert opened.id == "prod/shop/web#1"
    assert opened.state is IncidentState.OPEN
    await outbox.drain()
    clock.now += 10
    await pipeline.handle(event(EventKind.UPDATED, PORT_CHANGED))
    clock.now += 10
    await pipeline.handle(event(EventKind.RESOLVED, GIT))
    await outbox.drain()

    kinds = [(n.kind, n.incident_id) for n in slack.delivered]
    assert kinds == [
        ("opened", "prod/shop/web#1"),
        ("updated", "prod/shop/web#1"),
        ("resolved", "prod/shop/web#1"),
    ]
    # The thread the first delivery returned is handed to the later ones.
    assert slack.delivered[1].thread == {"ts": slack.delivered[0].id}
    body = slack.delivered[0].body
    assert body["schema_version"] == 1
    assert body["type"] == "drift.opened"
    assert body["severity"] == "critical"
    assert {f["rule"] for f in body["findings"]} >= {"ingress-from-world"}
    resolved = await store.get("prod/shop/web#1")
    assert resolved is not None
    assert resolved.state is IncidentState.RESOLVED
    # The next drift of the key is a new incident.
    again = await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
    assert again is not None
    assert again.id == "prod/shop/web#2"
    await store.close()


@async_test
async def test_a_restart_neither_realerts_nor_forgets_to_resolve(tmp_path: Path) -> None:
    first = ScriptedReceiver("pd")
    store, pipeline, outbox, _ = await setup(tmp_path, first)
    await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
    await outbox.drain()
    await store.close()

    # Restart: the tracker announces the same drift as opened again; nothing is sent.
    second = ScriptedReceiver("pd")
    store, pipeline, outbox, _ = await setup(tmp_path, second)
    again = await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
    assert again is not None
    assert again.id == "prod/shop/web#1"
    await outbox.drain()
    assert second.attempts == []
    # It was fixed while down: the first full evaluation finds the key in sync.
    resolved = await pipeline.reconcile(open_keys=[])
    assert [i.id for i in resolved] == ["prod/shop/web#1"]
    await outbox.drain()
    assert [(n.kind, n.body["reason"]) for n in second.delivered] == [
        ("resolved", "resolved while driftwatch was not running")
    ]
    await store.close()


@async_test
async def test_the_stores_memory_of_open_incidents_and_numbers_agrees_with_its_file(
    tmp_path: Path,
) -> None:
    # open_incident, next_number and thread are answered from memory (the store is the
    # file's only writer): what they say must be what the file says, before and after a
    # reopen.
    async def from_file(key: PolicyKey) -> tuple[str | None, int]:
        fresh = await SqliteStore(tmp_path / "state.db").open()
        try:
            current = fresh._open_incident(key)
            return (None if current is None else current.id), fresh._next_number(key)
        finally:
            await fresh.close()

    other = PolicyKey("prod", "shop", "other")
    slack = ScriptedReceiver("slack")
    store, pipeline, outbox, clock = await setup(tmp_path, slack)
    assert await store.open_incident(KEY) is None
    assert await store.next_number(KEY) == 1
    for number in (1, 2, 3):
        await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        current = await store.open_incident(KEY)
        assert current is not None
        assert current.id == f"prod/shop/web#{number}"
        assert await store.next_number(KEY) == number + 1
        assert await from_file(KEY) == (current.id, number + 1)
        clock.now += 10
        await pipeline.handle(event(EventKind.RESOLVED, GIT))
        assert await store.open_incident(KEY) is None
        assert await from_file(KEY) == (None, number + 1)
    assert await store.open_incident(other) is None
    assert await store.next_number(other) == 1
    await outbox.drain()
    # Slack keeps threads: they are read back for the later notifications.
    first = [n for n in slack.delivered if n.incident_id == "prod/shop/web#1"]
    assert [n.kind for n in first] == ["opened", "resolved"]
    assert first[1].thread == {"ts": first[0].id}
    await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
    await store.close()

    store = await SqliteStore(tmp_path / "state.db").open()
    reopened = await store.open_incident(KEY)
    assert reopened is not None
    assert reopened.id == "prod/shop/web#4"
    assert reopened == await store.get("prod/shop/web#4")
    assert await store.next_number(KEY) == 5
    assert await store.thread("slack", "prod/shop/web#1") == {"ts": first[0].id}
    assert await store.thread("nobody", "prod/shop/web#1") == {}
    await store.close()


@async_test
async def test_retries_honour_retry_after_and_permanent_failures_are_dead_lettered(
    tmp_path: Path,
) -> None:
    hook = ScriptedReceiver(
        "hook", script=[Outcome.retry("429", after=30.0), Outcome.fail("400 bad request")]
    )
    store, pipeline, outbox, clock = await setup(tmp_path, hook)
    with capture_logs() as logs:
        await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        await outbox.drain()
        assert len(hook.attempts) == 1
        clock.now += 29
        await outbox.drain()
        assert len(hook.attempts) == 1  # Retry-After: 30 s not yet over
        clock.now += 2
        await outbox.drain()
    assert len(hook.attempts) == 2
    assert hook.attempts[0].id == hook.attempts[1].id  # the same notification, retried
    assert hook.attempts[1].attempt == 2
    assert await store.pending_count() == 0
    (dead,) = await store.dead_letters()
    assert (dead.receiver, dead.reason, dead.attempts) == ("hook", "400 bad request", 2)
    events = [e["event"] for e in logs]
    assert "notification will be retried" in events
    assert "notification dead-lettered" in events
    assert not any(hook.secret in str(e) for e in logs)
    await store.close()


@async_test
async def test_one_incidents_notifications_are_delivered_in_order(tmp_path: Path) -> None:
    slow = ScriptedReceiver("slow", script=[Outcome.retry("503")])
    store, pipeline, outbox, clock = await setup(tmp_path, slow)
    await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
    await pipeline.handle(event(EventKind.UPDATED, PORT_CHANGED))
    await pipeline.handle(event(EventKind.RESOLVED, GIT))
    await outbox.drain()
    # The opened notification failed and waits: the later ones wait behind it.
    assert [n.kind for n in slow.attempts] == ["opened"]
    clock.now += 5
    await outbox.drain()
    assert [n.kind for n in slow.delivered] == ["opened", "updated", "resolved"]
    await store.close()


@async_test
async def test_gone_disables_the_receiver(tmp_path: Path) -> None:
    hook = ScriptedReceiver("hook", script=[Outcome.gone("410 Gone")])
    other = ScriptedReceiver("other")
    store, pipeline, outbox, _ = await setup(tmp_path, hook, other)
    await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
    await outbox.drain()
    assert await store.disabled_receivers() == {"hook": "410 Gone"}
    await pipeline.handle(event(EventKind.UPDATED, PORT_CHANGED))
    await outbox.drain()
    assert len(hook.attempts) == 1
    assert [n.kind for n in other.delivered] == ["opened", "updated"]
    await store.close()


@async_test
async def test_reminders_for_incidents_still_open(tmp_path: Path) -> None:
    slack = ScriptedReceiver("slack")
    store, pipeline, outbox, clock = await setup(tmp_path, slack)
    await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
    clock.now += 3599
    assert await pipeline.remind() == []
    clock.now += 1
    assert [i.id for i in await pipeline.remind()] == ["prod/shop/web#1"]
    assert await pipeline.remind() == []  # counted from the reminder now
    await outbox.drain()
    assert [n.kind for n in slack.delivered] == ["opened", "reminder"]
    await store.close()


def test_routes_pick_receivers_in_order_and_continue() -> None:
    router = Router(
        (
            Route(Matcher(min_severity="high", namespaces=("prod-*",)), ("pagerduty",), True),
            Route(Matcher(rules=frozenset({"ingress-from-world"})), ("security",)),
            Route(Matcher(), ("slack",)),
        ),
        ("slack", "pagerduty", "security"),
    )

    def facts(ns: str, severity: str, rules: set[str]) -> Facts:
        return Facts("c", ns, "p", severity, frozenset(rules))

    assert router.receivers_for(facts("prod-eu", "critical", {"ingress-from-world"})) == [
        "pagerduty",
        "security",
    ]
    assert router.receivers_for(facts("prod-eu", "medium", {"ports-widened"})) == ["slack"]
    assert router.receivers_for(facts("dev", "critical", {"traffic-allowed"})) == ["slack"]
    assert Router((), ("a", "b")).receivers_for(facts("x", "low", set())) == ["a", "b"]
    labelled = Matcher(labels={"team": "pay*"})
    assert labelled.matches(Facts("c", "n", "p", None, frozenset(), {"team": "payments"}))
    assert not labelled.matches(Facts("c", "n", "p", None, frozenset(), {}))


@async_test
async def test_silenced_incidents_are_recorded_but_not_sent(tmp_path: Path) -> None:
    slack = ScriptedReceiver("slack")
    clock_now = 1_800_000_000.0
    router = Router(
        (), ("slack",), (Silence(Matcher(namespaces=("shop",)), clock_now - 1, clock_now + 60),)
    )
    store, pipeline, outbox, clock = await setup(tmp_path, slack, router=router)
    await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
    await outbox.drain()
    assert slack.attempts == []
    assert await store.open_incident(KEY) is not None
    clock.now += 120  # the silence is over: the next change is sent
    await pipeline.handle(event(EventKind.UPDATED, PORT_CHANGED))
    await outbox.drain()
    assert [n.kind for n in slack.delivered] == ["updated"]
    await store.close()


def test_undelivered_notifications_survive_kill_9(tmp_path: Path) -> None:
    """A process that queued a notification and was killed before delivering it leaves it
    in the outbox; the next process delivers it."""
    db = tmp_path / "state.db"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from tests.test_incidents import event, setup, EventKind, OPEN_TO_WORLD
        from driftwatch.notify.testing import ScriptedReceiver
        from driftwatch.notify.model import Notification, Outcome
        from pathlib import Path

        async def main():
            down = ScriptedReceiver("hook", script=[Outcome.retry("connection refused")])
            store, pipeline, outbox, _ = await setup(Path({str(tmp_path)!r}), down)
            await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
            await outbox.drain()
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        check=False, capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == -9, done.stderr.decode()
    assert db.exists()

    async def restart() -> ScriptedReceiver:
        up = ScriptedReceiver("hook")
        store, _, outbox, clock = await setup(tmp_path, up)
        clock.now += 3600
        await outbox.drain()
        assert await store.pending_count() == 0
        await store.close()
        return up

    up = asyncio.run(restart())
    assert [(n.kind, n.incident_id, n.attempt) for n in up.delivered] == [
        ("opened", "prod/shop/web#1", 2)
    ]


class SlowReceiver(ScriptedReceiver):
    """Takes a while per delivery and records how many overlap."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.running = 0
        self.most = 0
        self.started: list[float] = []

    async def deliver(self, notification: Notification) -> Outcome:
        self.running += 1
        self.most = max(self.most, self.running)
        self.started.append(time.monotonic())
        try:
            await asyncio.sleep(0.05)
            return await super().deliver(notification)
        finally:
            self.running -= 1


@async_test
async def test_deliveries_overlap_across_incidents_within_limits_and_never_within_one(
    tmp_path: Path,
) -> None:
    slow = SlowReceiver("slow")
    store = await SqliteStore(tmp_path / "state.db").open()
    clock = Clock()
    outbox = Outbox(store, {"slow": slow}, clock=clock, limits={"slow": Limits(3)})
    pipeline = Pipeline(store, Router((), ("slow",)), clock=clock)
    for i in range(6):
        key = PolicyKey("prod", "shop", f"web-{i}")
        drift = compare(key, GIT, OPEN_TO_WORLD, ENGINE)
        await pipeline.handle(DriftEvent(EventKind.OPENED, key, drift, None, "why", i, None))
        drift = compare(key, GIT, PORT_CHANGED, ENGINE)
        await pipeline.handle(DriftEvent(EventKind.UPDATED, key, drift, None, "why", i, None))
    await outbox.drain()
    assert slow.most == 3
    assert len(slow.delivered) == 12
    for i in range(6):
        mine = [n.kind for n in slow.delivered if n.incident_id == f"prod/shop/web-{i}#1"]
        assert mine == ["opened", "updated"]

    paced = SlowReceiver("paced")
    outbox = Outbox(store, {"paced": paced}, clock=clock, limits={"paced": Limits(8, 20.0)})
    pipeline = Pipeline(store, Router((), ("paced",)), clock=clock)
    for i in range(5):
        key = PolicyKey("prod", "pay", f"api-{i}")
        drift = compare(key, GIT, OPEN_TO_WORLD, ENGINE)
        await pipeline.handle(DriftEvent(EventKind.OPENED, key, drift, None, "why", i, None))
    await outbox.drain()
    gaps = [b - a for a, b in itertools.pairwise(paced.started)]
    assert len(gaps) == 4
    assert min(gaps) >= 0.045  # 20 per second: 50 ms apart (timer slack allowed)
    await store.close()


class HeldReceiver(ScriptedReceiver):
    """Holds the delivery of one incident until released."""

    def __init__(self, name: str, hold: str) -> None:
        super().__init__(name)
        self.hold = hold
        self.release = asyncio.Event()
        self.started: list[str] = []
        self.changed = asyncio.Event()

    async def deliver(self, notification: Notification) -> Outcome:
        self.started.append(notification.incident_id)
        self.changed.set()
        if notification.incident_id == self.hold:
            await self.release.wait()
        return await super().deliver(notification)

    async def wait_started(self, count: int) -> None:
        while len(self.started) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout=2)


@async_test
async def test_a_notification_enqueued_during_a_slow_delivery_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    """Deliveries are a pipeline, not rounds: a notification enqueued while another is in
    flight starts at once (with rounds it would wait for the slow one, and a receiver's
    round-trip time would cap the delivery rate)."""
    held = HeldReceiver("held", hold="prod/shop/web-0#1")
    store = await SqliteStore(tmp_path / "state.db").open()
    clock = Clock()
    outbox = Outbox(store, {"held": held}, clock=clock, limits={"held": Limits(4)})
    pipeline = Pipeline(store, Router((), ("held",)), wake=outbox.wake, clock=clock)

    async def opened(i: int) -> None:
        key = PolicyKey("prod", "shop", f"web-{i}")
        drift = compare(key, GIT, OPEN_TO_WORLD, ENGINE)
        await pipeline.handle(DriftEvent(EventKind.OPENED, key, drift, None, "why", i, None))

    worker = asyncio.create_task(outbox.run())
    try:
        await opened(0)
        await held.wait_started(1)
        await opened(1)
        await held.wait_started(2)  # while web-0 is still held
        await opened(2)
        await held.wait_started(3)
        assert [n.incident_id for n in held.delivered] == ["prod/shop/web-1#1", "prod/shop/web-2#1"]
        held.release.set()
        for _ in range(100):
            if len(held.delivered) == 3:
                break
            await asyncio.sleep(0.01)
        assert len(held.delivered) == 3
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    await store.close()


@async_test
async def test_a_restarted_outbox_retries_at_once_not_after_the_last_backoff(
    tmp_path: Path,
) -> None:
    down = ScriptedReceiver("hook", script=[Outcome.retry("503", after=3000.0)])
    store, pipeline, outbox, _ = await setup(tmp_path, down)
    await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
    await outbox.drain()
    assert await store.pending_count() == 1
    await store.close()

    up = ScriptedReceiver("hook")
    store, _, outbox, _ = await setup(tmp_path, up)
    task = asyncio.create_task(outbox.run())
    try:
        deadline = time.monotonic() + 5
        while not up.delivered and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [n.kind for n in up.delivered] == ["opened"]
    await store.close()


@async_test
async def test_a_route_on_policy_labels_gets_the_reminder_and_the_resolve(
    tmp_path: Path,
) -> None:
    team = ScriptedReceiver("team")
    others = ScriptedReceiver("others")
    router = Router(
        (
            Route(Matcher(labels={"team": "pay*"}), ("team",)),
            Route(Matcher(), ("others",)),
        ),
        ("team", "others"),
    )
    store, pipeline, outbox, clock = await setup(tmp_path, team, others, router=router)
    labelled = replace(OPEN_TO_WORLD, labels=(("team", "payments"),))
    await pipeline.handle(event(EventKind.OPENED, labelled))
    clock.now += 3600
    await pipeline.remind()
    await pipeline.handle(event(EventKind.RESOLVED, GIT))
    await outbox.drain()
    assert [n.kind for n in team.delivered] == ["opened", "reminder", "resolved"]
    assert others.attempts == []
    await store.close()
