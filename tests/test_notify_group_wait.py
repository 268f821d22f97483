"""``group_wait``: incidents that open within a window go to a receiver as one message.

The window starts when the first incident opens; everything that opens before it ends goes
in the same batch; the batch is stored, retried and confirmed as a whole, survives a
restart, and holds back its incidents' later notifications so each incident stays in
order. A lone incident is still the usual rich message.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import structlog
from pydantic import ValidationError

from driftwatch.drift import DriftEvent, EventKind, compare
from driftwatch.incidents import SqliteStore
from driftwatch.notify.model import Kind, Outcome
from driftwatch.notify.outbox import Backoff, Outbox
from driftwatch.notify.pipeline import Pipeline
from driftwatch.notify.routing import Router
from driftwatch.notify.testing import ScriptedReceiver
from driftwatch.policy import PolicyKey
from driftwatch.rules import RuleEngine
from driftwatch.settings import Settings
from tests.aio import async_test
from tests.builders import allow_from, np
from tests.test_incidents import Clock

ENGINE = RuleEngine()
WAIT = 30.0


def opened(name: str) -> DriftEvent:
    key = PolicyKey("prod", "shop", name)
    git = np(name, "shop", spec=allow_from("frontend"))
    live = np(name, "shop", spec=allow_from("frontend", port=9090))
    return DriftEvent(EventKind.OPENED, key, compare(key, git, live, ENGINE), None, "why", 1, live)


def updated(name: str) -> DriftEvent:
    key = PolicyKey("prod", "shop", name)
    git = np(name, "shop", spec=allow_from("frontend"))
    live = np(name, "shop", spec=allow_from("other", port=7070))
    return DriftEvent(EventKind.UPDATED, key, compare(key, git, live, ENGINE), None, "why", 2, live)


def resolved(name: str) -> DriftEvent:
    key = PolicyKey("prod", "shop", name)
    git = np(name, "shop", spec=allow_from("frontend"))
    return DriftEvent(EventKind.RESOLVED, key, compare(key, git, git, ENGINE), None, "why", 3, git)


async def setup(
    path: Path, *receivers: ScriptedReceiver, waits: dict[str, float]
) -> tuple[SqliteStore, Pipeline, Outbox, Clock]:
    store = await SqliteStore(path).open()
    clock = Clock()
    log = structlog.get_logger()
    outbox = Outbox(
        store,
        {r.name: r for r in receivers},
        backoff=Backoff(1, 2, 60),
        clock=clock,
        log=log,
        group_wait=waits,
    )
    pipeline = Pipeline(
        store,
        Router((), [r.name for r in receivers]),
        wake=outbox.wake,
        clock=clock,
        group_wait=waits,
        log=log,
    )
    return store, pipeline, outbox, clock


def names(batch_notifications: object) -> list[str]:
    return [n.body["name"] for n in batch_notifications]  # type: ignore[attr-defined]


@async_test
async def test_incidents_opening_within_the_window_go_as_one_message(tmp_path: Path) -> None:
    slack, pager = ScriptedReceiver("slack"), ScriptedReceiver("pager")
    store, pipeline, outbox, clock = await setup(
        tmp_path / "s.db", slack, pager, waits={"slack": WAIT}
    )
    await pipeline.handle(opened("a"))
    clock.now += 10
    await pipeline.handle(opened("b"))
    clock.now += 15
    await pipeline.handle(opened("c"))
    await outbox.drain()
    # The receiver without a wait hears at once, one message each; the other waits.
    assert [n.body["name"] for n in pager.delivered] == ["a", "b", "c"]
    assert slack.attempts == []
    assert slack.batches == []
    clock.now += 5  # the first incident's window is over: b and c opened within it
    await outbox.drain()
    assert len(slack.batches) == 1
    assert names(slack.batches[0].notifications) == ["a", "b", "c"]
    assert all(n.kind is Kind.OPENED for n in slack.batches[0].notifications)
    assert await store.pending_count() == 0
    # After the batch, each incident goes on in its own thread (the batch's, kept).
    await pipeline.handle(updated("b"))
    await outbox.drain()
    (update,) = slack.attempts
    assert update.kind is Kind.UPDATED
    assert update.body["name"] == "b"
    assert update.thread == {"ts": slack.batches[0].id}
    # A later opening starts a new window.
    clock.now += 100
    await pipeline.handle(opened("d"))
    await outbox.drain()
    assert len(slack.batches) == 1
    await store.close()


@async_test
async def test_a_lone_incident_is_the_usual_single_message(tmp_path: Path) -> None:
    slack = ScriptedReceiver("slack")
    store, pipeline, outbox, clock = await setup(tmp_path / "s.db", slack, waits={"slack": WAIT})
    await pipeline.handle(opened("a"))
    clock.now += WAIT - 1
    await outbox.drain()
    assert slack.attempts == []
    clock.now += 1
    await outbox.drain()
    assert slack.batches == []
    assert [(n.kind, n.body["name"]) for n in slack.delivered] == [(Kind.OPENED, "a")]
    await store.close()


@async_test
async def test_updates_and_resolves_inside_the_window_follow_the_batch_in_order(
    tmp_path: Path,
) -> None:
    slack = ScriptedReceiver("slack")
    store, pipeline, outbox, clock = await setup(tmp_path / "s.db", slack, waits={"slack": WAIT})
    await pipeline.handle(opened("a"))
    await pipeline.handle(opened("b"))
    await pipeline.handle(updated("a"))
    await pipeline.handle(resolved("b"))
    await outbox.drain()
    assert slack.attempts == []  # nothing jumps the batch, not even a's update
    clock.now += WAIT
    await outbox.drain()
    assert names(slack.batches[0].notifications) == ["a", "b"]
    assert [(n.kind, n.body["name"]) for n in slack.attempts] == [
        (Kind.UPDATED, "a"),
        (Kind.RESOLVED, "b"),
    ]
    await store.close()


@async_test
async def test_a_batch_is_retried_whole_under_one_id_and_dead_lettered_whole(
    tmp_path: Path,
) -> None:
    slack = ScriptedReceiver(
        "slack", script=[Outcome.retry("503", after=20), Outcome.fail("400 invalid_blocks")]
    )
    store, pipeline, outbox, clock = await setup(tmp_path / "s.db", slack, waits={"slack": WAIT})
    await pipeline.handle(opened("a"))
    await pipeline.handle(opened("b"))
    clock.now += WAIT
    await outbox.drain()
    assert len(slack.batches) == 1
    clock.now += 5
    await pipeline.handle(opened("c"))  # opens during the retry: not in the formed batch
    await outbox.drain()
    assert len(slack.batches) == 1  # Retry-After 20 s not over
    clock.now += 15
    await outbox.drain()
    first, second = slack.batches
    assert second.id == first.id
    assert second.attempt == 2
    assert names(second.notifications) == ["a", "b"]
    dead = await store.dead_letters()
    assert sorted(d.incident_id for d in dead) == ["prod/shop/a#1", "prod/shop/b#1"]
    assert {d.reason for d in dead} == {"400 invalid_blocks"}
    assert {d.attempts for d in dead} == {2}
    clock.now += WAIT
    await outbox.drain()
    assert [n.body["name"] for n in slack.delivered] == ["c"]  # c on its own, delivered
    assert await store.pending_count() == 0
    await store.close()


@async_test
async def test_a_waiting_batch_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    slack = ScriptedReceiver("slack")
    store, pipeline, outbox, clock = await setup(path, slack, waits={"slack": WAIT})
    await pipeline.handle(opened("a"))
    await pipeline.handle(opened("b"))
    await store.close()  # the daemon stops inside the window
    again = ScriptedReceiver("slack")
    store, _, outbox, clock = await setup(path, again, waits={"slack": WAIT})
    assert await store.due_now(clock()) == 2  # what run() does first
    await outbox.drain()
    assert names(again.batches[0].notifications) == ["a", "b"]
    assert await store.pending_count() == 0
    await store.close()


class Plain:
    """A receiver that cannot batch (like PagerDuty)."""

    def __init__(self) -> None:
        self.name = "slack"
        self.got: list[str] = []

    async def deliver(self, notification: object) -> Outcome:
        self.got.append(notification.body["name"])  # type: ignore[attr-defined]
        return Outcome.ok()

    async def close(self) -> None:
        return None

    def secrets(self) -> list[str]:
        return []


@async_test
async def test_grouped_notifications_left_by_another_configuration_still_go(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store, pipeline, _, clock = await setup(path, ScriptedReceiver("slack"), waits={"slack": WAIT})
    await pipeline.handle(opened("a"))
    await pipeline.handle(opened("b"))
    await store.close()
    # Restarted with the receiver now a type that cannot batch, and no group_wait.
    store = await SqliteStore(path).open()
    plain = Plain()
    outbox = Outbox(store, {"slack": plain}, clock=clock, log=structlog.get_logger())  # type: ignore[dict-item]
    await store.due_now(clock())
    await outbox.drain()
    assert plain.got == ["a", "b"]
    assert await store.pending_count() == 0
    await store.close()


@async_test
async def test_an_older_state_file_gains_the_batch_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
            " receiver TEXT NOT NULL, incident_id TEXT NOT NULL, kind TEXT NOT NULL,"
            " body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,"
            " last_error TEXT, created_at REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO outbox (id, receiver, incident_id, kind, body, next_at, created_at)"
            " VALUES ('n1', 'slack', 'prod/shop/a#1', 'opened', '{\"name\": \"a\"}', 0, 0)"
        )
    store = await SqliteStore(path).open()
    (pending,) = await store.due("slack", 1.0)
    assert pending.id == "n1"
    assert pending.batch is None
    await store.close()


def test_group_wait_applies_to_receivers_that_batch_and_is_refused_where_it_cannot() -> None:
    notifiers = [
        {"name": "slack", "type": "slack", "webhook_url": "https://hooks.example/T/B/secret123"},
        {"name": "page", "type": "pagerduty", "routing_key": "r" * 32},
        {
            "name": "hook",
            "type": "webhook",
            "url": "https://example.com/h",
            "group_wait": "0s",
            "secret": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        },
    ]
    settings = Settings.model_validate({"group_wait": "30s", "notifiers": notifiers})
    assert settings.group_waits() == {"slack": 30.0, "page": 0.0, "hook": 0.0}
    bad = [{**notifiers[1], "group_wait": "1m"}]
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({"notifiers": bad})
    (error,) = caught.value.errors()
    assert error["loc"] == ("notifiers", 0, "group_wait")
    assert "pagerduty receivers announce each incident on its own" in error["msg"]
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({"group_wait": "2h"})
    assert caught.value.errors()[0]["msg"].endswith("must be at most 1h")
