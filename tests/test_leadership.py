"""What a leader's term does when the world fails around it: a store that cannot be
reloaded does not end the daemon (the term starts over while it leads), and nothing is
delivered once the Lease is lost, even by an outbox that is still running."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from driftwatch.daemon.leadership import Leadership
from driftwatch.daemon.notifications import Notifications
from driftwatch.drift import EventKind
from driftwatch.incidents import SqliteStore
from driftwatch.notify.outbox import Outbox
from driftwatch.notify.pipeline import Pipeline
from driftwatch.notify.routing import Router
from driftwatch.notify.testing import ScriptedReceiver
from tests.aio import async_test
from tests.test_incidents import OPEN_TO_WORLD, event


class FlakyStore(SqliteStore):
    """A store whose first ``failures`` reloads fail as an unreachable API server would."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures
        self.reloads = 0

    async def reload(self) -> None:
        self.reloads += 1
        if self.reloads <= self.failures:
            raise OSError("DriftIncident objects: the API server answered 503")


class OneTerm:
    """An elector that leads once, for as long as the test wants."""

    identity = "test"
    is_leader = True

    async def while_leading(self, work: Callable[[], Awaitable[None]]) -> None:
        await work()


async def notifications_on(store: SqliteStore, receiver: ScriptedReceiver) -> Notifications:
    log = structlog.get_logger()
    outbox = Outbox(store, {receiver.name: receiver}, log=log)
    pipeline = Pipeline(store, Router((), [receiver.name]), wake=outbox.wake, log=log)
    return Notifications(store, {receiver.name: receiver}, pipeline, outbox, None)


@async_test
async def test_a_store_that_fails_at_takeover_is_retried_not_fatal(tmp_path: Path) -> None:
    store = await FlakyStore(tmp_path / "s.db", failures=2).open()
    receiver = ScriptedReceiver("hook")
    notifications = await notifications_on(store, receiver)
    caught_up = asyncio.Event()

    async def catch_up() -> None:
        notifications.notifier.active = True
        await notifications.notifier.send(event(EventKind.OPENED, OPEN_TO_WORLD))
        caught_up.set()

    leadership = Leadership(OneTerm(), log=structlog.get_logger())  # type: ignore[arg-type]
    in_sync = asyncio.Event()
    in_sync.set()
    term = asyncio.create_task(
        leadership.lead(notifications, in_sync=in_sync, catch_up=catch_up, retry=0.05)
    )
    try:
        await asyncio.wait_for(caught_up.wait(), 5)
        while not receiver.delivered:
            assert not term.done(), term
            await asyncio.sleep(0.01)
    finally:
        term.cancel()
        await asyncio.gather(term, return_exceptions=True)
    assert store.reloads == 3  # two failures, then the term went on
    assert [n.kind for n in receiver.delivered] == ["opened"]
    assert not notifications.notifier.active  # closed when the term ended
    await store.close()


@async_test
async def test_an_outbox_delivers_nothing_once_its_gate_closes(tmp_path: Path) -> None:
    store = await SqliteStore(tmp_path / "s.db").open()
    receiver = ScriptedReceiver("hook")
    notifications = await notifications_on(store, receiver)
    leading = {"now": False}
    notifications.outbox.gate = lambda: leading["now"]
    await notifications.pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
    await notifications.outbox.drain()
    assert receiver.attempts == []  # a paused ex-leader's outbox sends nothing
    assert await store.pending_count() == 1  # kept for the leader
    leading["now"] = True
    await notifications.outbox.drain()
    assert [n.kind for n in receiver.delivered] == ["opened"]
    await store.close()
