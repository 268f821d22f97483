"""One conformance suite every receiver passes, against its local stand-in speaking the
real protocol on loopback: delivery through the outbox, retries on 429 (``Retry-After``
honoured) and 5xx, permanent errors dead-lettered, one incident's notifications in order,
and no secret in any log line."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from structlog.testing import capture_logs

from driftwatch.daemon.notifications import build_receivers
from driftwatch.drift import EventKind
from driftwatch.incidents import SqliteStore
from driftwatch.notify.outbox import Backoff, Outbox
from driftwatch.notify.pipeline import Pipeline
from driftwatch.notify.routing import Router
from driftwatch.settings import Settings
from tests.aio import async_test
from tests.standins.alertmanager import AlertmanagerStandIn
from tests.standins.base import StandIn
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn
from tests.standins.webhook import WebhookStandIn
from tests.test_incidents import GIT, OPEN_TO_WORLD, PORT_CHANGED, Clock, event

STANDINS: dict[str, Callable[[], Any]] = {
    "slack": SlackStandIn,
    "pagerduty": PagerDutyStandIn,
    "alertmanager": AlertmanagerStandIn,
    "webhook": WebhookStandIn,
}


class Rig:
    """A stand-in, its receiver built from configuration, a store, a pipeline, an outbox."""

    def __init__(self, standin: StandIn, pipeline: Pipeline, outbox: Outbox, clock: Clock,
                 store: SqliteStore) -> None:  # fmt: skip
        self.standin, self.pipeline, self.outbox = standin, pipeline, outbox
        self.clock, self.store = clock, store

    async def send(self, kind: EventKind, live: Any) -> None:
        await self.pipeline.handle(event(kind, live))
        await self.outbox.drain()

    async def later(self, seconds: float) -> None:
        self.clock.now += seconds
        await self.outbox.drain()


@contextlib.asynccontextmanager
async def rig(kind: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with STANDINS[kind]() as standin, aiohttp.ClientSession() as session:
        settings = Settings.model_validate({"notifiers": [standin.receiver_config("r")]})
        receivers = build_receivers(settings, session, timeout=5.0)
        if kind == "slack":
            receivers["r"].min_interval = 0.0  # type: ignore[attr-defined]  # 1 msg/s: tested on its own
        store = await SqliteStore(tmp_path / "state.db").open()
        clock = Clock()
        log = structlog.get_logger()
        outbox = Outbox(store, receivers, backoff=Backoff(1, 2, 60), clock=clock, log=log)
        pipeline = Pipeline(store, Router((), ("r",)), wake=outbox.wake, clock=clock, log=log)
        try:
            yield Rig(standin, pipeline, outbox, clock, store)
        finally:
            await receivers["r"].close()
            await store.close()


def kinds(standin: StandIn) -> list[str]:
    return [d.kind for d in standin.delivered]


@pytest.mark.parametrize("kind", sorted(STANDINS))
@async_test
async def test_open_update_resolve_are_delivered_in_order(kind: str, tmp_path: Path) -> None:
    async with rig(kind, tmp_path) as r:
        await r.send(EventKind.OPENED, OPEN_TO_WORLD)
        await r.send(EventKind.UPDATED, PORT_CHANGED)
        await r.send(EventKind.RESOLVED, GIT)
        assert kinds(r.standin) == ["opened", "updated", "resolved"]
        assert {d.incident_id for d in r.standin.delivered} == {"prod/shop/web#1"}
        assert await r.store.pending_count() == 0


@pytest.mark.parametrize("kind", sorted(STANDINS))
@async_test
async def test_429_waits_for_retry_after_and_5xx_is_retried(kind: str, tmp_path: Path) -> None:
    async with rig(kind, tmp_path) as r:
        r.standin.fail_next(429, retry_after=30)
        await r.send(EventKind.OPENED, OPEN_TO_WORLD)
        assert kinds(r.standin) == []
        await r.later(25)
        assert kinds(r.standin) == []  # Retry-After: 30 s is not over
        r.standin.fail_next(503)
        await r.later(6)  # the retry meets a 503, and backs off again
        assert kinds(r.standin) == []
        await r.later(120)
        assert kinds(r.standin) == ["opened"]
        assert await r.store.dead_letters() == []


@pytest.mark.parametrize("kind", sorted(STANDINS))
@async_test
async def test_a_permanent_error_is_dead_lettered_and_the_next_goes_on(
    kind: str, tmp_path: Path
) -> None:
    async with rig(kind, tmp_path) as r:
        r.standin.fail_next(400)
        with capture_logs() as logs:
            await r.send(EventKind.OPENED, OPEN_TO_WORLD)
        (dead,) = await r.store.dead_letters()
        assert dead.kind == "opened"
        assert "400" in dead.reason
        assert any(e["event"] == "notification dead-lettered" for e in logs)
        await r.send(EventKind.UPDATED, PORT_CHANGED)
        assert kinds(r.standin) == ["updated"]


@pytest.mark.parametrize("kind", sorted(STANDINS))
@async_test
async def test_one_incident_stays_in_order_behind_a_failed_delivery(
    kind: str, tmp_path: Path
) -> None:
    async with rig(kind, tmp_path) as r:
        r.standin.fail_next(500)
        await r.send(EventKind.OPENED, OPEN_TO_WORLD)
        await r.send(EventKind.UPDATED, PORT_CHANGED)
        await r.send(EventKind.RESOLVED, GIT)
        assert kinds(r.standin) == []  # everything waits behind the failed "opened"
        await r.later(5)
        assert kinds(r.standin) == ["opened", "updated", "resolved"]


@pytest.mark.parametrize("kind", sorted(STANDINS))
@async_test
async def test_no_secret_in_any_log_line(kind: str, tmp_path: Path) -> None:
    async with rig(kind, tmp_path) as r:
        with capture_logs() as logs:
            r.standin.fail_next(429, retry_after=1)
            await r.send(EventKind.OPENED, OPEN_TO_WORLD)
            r.standin.fail_next(401)
            await r.later(5)
            await r.send(EventKind.UPDATED, PORT_CHANGED)
            r.standin.fail_next(500)
            await r.send(EventKind.RESOLVED, GIT)
            await r.later(10)
        assert logs, "the outbox logs every outcome"
        leaked = [e for e in logs if r.standin.secret in repr(e)]
        assert leaked == []
        dead = await r.store.dead_letters()
        assert all(r.standin.secret not in d.reason for d in dead)
