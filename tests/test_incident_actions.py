"""Approve and snooze (issue #9): the tracker's approvals, ``Pipeline.act`` (approved,
snoozed, reverted), reopening an approved incident, a snooze muting an incident until it
ends, and what PagerDuty is sent for each; on the SQLite and the Kubernetes stores."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from driftwatch.daemon.actions import EngineRequest, IncidentActions
from driftwatch.daemon.notifications import Notifications
from driftwatch.drift import DriftEvent, DriftTracker, EventKind, compare
from driftwatch.incidents import (
    Action,
    IncidentActionError,
    IncidentResolved,
    IncidentState,
    NotLeading,
    SqliteStore,
    UnknownIncident,
)
from driftwatch.notify.actions import pair_digest
from driftwatch.notify.model import Kind, Notification
from driftwatch.notify.pagerduty import event_for
from driftwatch.notify.pipeline import Pipeline
from driftwatch.notify.testing import ScriptedReceiver
from driftwatch.policy import NetworkPolicy
from driftwatch.rules import RuleEngine
from tests.aio import async_test
from tests.builders import np
from tests.test_incidents import ENGINE, GIT, KEY, OPEN_TO_WORLD, PORT_CHANGED, setup
from tests.test_incidents_kubernetes import BACKENDS, backend
from tests.test_incidents_kubernetes import setup as setup_on

NAME = ("shop", "web")
WORLD_9090 = np(
    "web",
    "shop",
    spec={
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 9090}]}],
    },
)
"""Open to the world like OPEN_TO_WORLD, on another port: another pair."""
WORLD_IN_HALVES = np(
    "web",
    "shop",
    spec={
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {
                "from": [{"ipBlock": {"cidr": "0.0.0.0/1"}}, {"ipBlock": {"cidr": "128.0.0.0/1"}}],
                "ports": [{"port": 8080}],
            }
        ],
    },
)
"""OPEN_TO_WORLD written as two halves: another pair, the very same findings."""
HOUR = 3600.0


def tracker_with(live: NetworkPolicy) -> tuple[DriftTracker, list[DriftEvent]]:
    tracker = DriftTracker(ENGINE, cluster="prod")
    tracker.set_desired({NAME: GIT})
    tracker.set_live({NAME: live})
    return tracker, tracker.drain()


# --- the tracker --------------------------------------------------------------------------------


def test_an_approved_drift_is_silent_until_a_side_changes_then_updated() -> None:
    tracker, events = tracker_with(OPEN_TO_WORLD)
    assert [e.kind for e in events] == [EventKind.OPENED]
    assert tracker.approve(KEY)
    assert tracker.is_approved(KEY)
    # A new engine or the same live policy again: nothing to say.
    tracker.replace_engine(RuleEngine())
    tracker.put_live(OPEN_TO_WORLD)
    assert tracker.drain() == []
    assert KEY in tracker.open
    # Another live policy with the same findings: still an update, naming the side.
    tracker.put_live(WORLD_IN_HALVES)
    (event,) = tracker.drain()
    assert event.kind is EventKind.UPDATED
    assert event.reason == "the live policy changed again after the approval"
    assert not tracker.is_approved(KEY)
    # The approval ended: the next change that alters nothing a message says is silent.
    tracker.put_live(OPEN_TO_WORLD)
    assert tracker.drain() == []
    # What else changed is said too.
    assert tracker.approve(KEY)
    tracker.put_live(WORLD_9090)
    (event,) = tracker.drain()
    assert event.reason == "the live policy changed again after the approval; findings changed"


def test_an_approved_drift_reports_git_changes_and_resolves_as_usual() -> None:
    tracker, _ = tracker_with(OPEN_TO_WORLD)
    assert tracker.approve(KEY)
    tracker.set_desired({NAME: PORT_CHANGED})
    (event,) = tracker.drain()
    assert event.kind is EventKind.UPDATED
    assert event.reason.startswith("Git changed after the approval")
    assert tracker.approve(KEY)
    tracker.put_live(PORT_CHANGED)
    (event,) = tracker.drain()
    assert event.kind is EventKind.RESOLVED
    assert not tracker.is_approved(KEY)
    assert not tracker.approve(KEY)  # nothing open to approve


# --- the pipeline -----------------------------------------------------------------------------


def drift_event(kind: EventKind, live: NetworkPolicy, reason: str = "why") -> DriftEvent:
    return DriftEvent(kind, KEY, compare(KEY, GIT, live, ENGINE), None, reason, 1, live)


def said(receiver: ScriptedReceiver) -> list[tuple[str, str]]:
    return [(str(n.kind), str(n.body["reason"])) for n in receiver.delivered]


@async_test
async def test_approve_records_who_and_why_and_keeps_quiet_until_the_pair_changes(
    tmp_path: Path,
) -> None:
    pd = ScriptedReceiver("pd")
    store, pipeline, outbox, clock = await setup(tmp_path, pd)
    opened = await pipeline.handle(drift_event(EventKind.OPENED, OPEN_TO_WORLD))
    assert opened is not None
    clock.now += 60
    approved = await pipeline.act(
        opened.id,
        "approved",
        actor="alice",
        reason="emergency fix, ticket OPS-12",
        drift=compare(KEY, GIT, OPEN_TO_WORLD, ENGINE),
    )
    assert approved.state is IncidentState.APPROVED
    assert approved.is_open
    (action,) = approved.body["actions"]
    assert action["action"] == "approved"
    assert action["actor"] == "alice"
    assert action["reason"] == "emergency fix, ticket OPS-12"
    assert action["until"] is None
    assert action["pair"] == pair_digest(compare(KEY, GIT, OPEN_TO_WORLD, ENGINE))
    assert approved.body["state"] == "approved"
    await outbox.drain()
    assert said(pd)[-1] == ("updated", "approved by alice: emergency fix, ticket OPS-12")
    # PagerDuty: the approval resolves the alert.
    assert event_for(pd.delivered[-1], "key")["event_action"] == "resolve"

    # The same pair again (a restart's "opened", a rules change): nothing sent, still approved.
    clock.now += 60
    same = await pipeline.handle(drift_event(EventKind.OPENED, OPEN_TO_WORLD))
    assert same is not None
    assert same.state is IncidentState.APPROVED
    assert same.body["actions"] == approved.body["actions"]
    assert await store.pending_count() == 0
    # Not reminded either.
    clock.now += 10 * HOUR
    assert await pipeline.remind() == []

    # The live policy changes again: reopened, announced, PagerDuty triggered again.
    reopened = await pipeline.handle(
        drift_event(EventKind.UPDATED, WORLD_9090, "the live policy changed again")
    )
    assert reopened is not None
    assert reopened.state is IncidentState.UPDATED
    await outbox.drain()
    kind, reason = said(pd)[-1]
    assert kind == "updated"
    assert reason.startswith("reopened: the live policy changed again (approved by alice at ")
    assert [a["action"] for a in reopened.body["actions"]] == ["approved", "reopened"]
    assert event_for(pd.delivered[-1], "key")["event_action"] == "trigger"
    await store.close()


@async_test
async def test_a_snooze_mutes_the_incident_until_it_ends_then_it_is_announced(
    tmp_path: Path,
) -> None:
    slack = ScriptedReceiver("slack")
    store, pipeline, outbox, clock = await setup(tmp_path, slack)
    opened = await pipeline.handle(drift_event(EventKind.OPENED, OPEN_TO_WORLD))
    assert opened is not None
    await outbox.drain()
    snoozed = await pipeline.act(
        opened.id, "snoozed", actor="bob", reason="maintenance", until=clock.now + 4 * HOUR
    )
    assert snoozed.state is IncidentState.OPEN
    assert snoozed.body["actions"][0]["until"] is not None
    await outbox.drain()
    kind, reason = said(slack)[-1]
    assert (kind, reason.split(" until ")[0]) == ("updated", "snoozed by bob")
    assert reason.endswith(": maintenance")
    assert event_for(slack.delivered[-1], "key")["event_action"] == "acknowledge"
    sent = len(slack.delivered)

    # While snoozed: the update is recorded, not sent; no reminder.
    clock.now += HOUR
    updated = await pipeline.handle(drift_event(EventKind.UPDATED, PORT_CHANGED, "port moved"))
    assert updated is not None
    stored = await store.get(opened.id)
    assert stored is not None
    assert stored.body["reason"] == "port moved"
    assert stored.body["actions"] == snoozed.body["actions"]
    clock.now += 2 * HOUR
    assert await pipeline.remind() == []
    await outbox.drain()
    assert len(slack.delivered) == sent
    assert await store.pending_count() == 0

    # The snooze ends: one reminder says so (repeat_interval not reached yet), then
    # notifications flow again.
    clock.now += HOUR + 1
    assert len(await pipeline.remind()) == 1
    assert await pipeline.remind() == []
    await outbox.drain()
    assert said(slack)[-1][0] == "reminder"
    assert said(slack)[-1][1].startswith("still open: the snooze ended (snoozed by bob until ")
    await pipeline.handle(drift_event(EventKind.UPDATED, WORLD_9090, "again"))
    await outbox.drain()
    assert said(slack)[-1] == ("updated", "again")
    await store.close()


@async_test
async def test_a_snoozed_incident_still_sends_its_resolve(tmp_path: Path) -> None:
    slack = ScriptedReceiver("slack")
    store, pipeline, outbox, clock = await setup(tmp_path, slack)
    opened = await pipeline.handle(drift_event(EventKind.OPENED, OPEN_TO_WORLD))
    assert opened is not None
    await pipeline.act(opened.id, "snoozed", actor="bob", until=clock.now + HOUR)
    clock.now += 60
    await pipeline.handle(drift_event(EventKind.RESOLVED, GIT, "live matches Git again"))
    await outbox.drain()
    assert [k for k, _ in said(slack)] == ["opened", "updated", "resolved"]
    assert slack.delivered[-1].body["actions"][0]["action"] == "snoozed"
    await store.close()


@async_test
async def test_actions_refused_and_a_revert_after_the_resolve(tmp_path: Path) -> None:
    slack = ScriptedReceiver("slack")
    store, pipeline, outbox, clock = await setup(tmp_path, slack)
    with pytest.raises(UnknownIncident):
        await pipeline.act("prod/shop/web#9", "approved", actor="alice")
    opened = await pipeline.handle(drift_event(EventKind.OPENED, OPEN_TO_WORLD))
    assert opened is not None
    with pytest.raises(ValueError, match="future"):
        await pipeline.act(opened.id, "snoozed", actor="bob", until=clock.now - 1)
    with pytest.raises(ValueError, match="actor"):
        await pipeline.act(opened.id, "approved", actor="  ")
    with pytest.raises(ValueError, match="deleted"):
        await pipeline.act(opened.id, "deleted", actor="eve")
    reverted = await pipeline.act(opened.id, Action.REVERTED, actor="driftwatch")
    await outbox.drain()
    assert said(slack)[-1][1].startswith("reverted by driftwatch at ")
    assert reverted.state is IncidentState.OPEN
    await pipeline.handle(drift_event(EventKind.RESOLVED, GIT, "live matches Git again"))
    with pytest.raises(IncidentResolved):
        await pipeline.act(opened.id, "approved", actor="alice")
    # The remediation's record may come after the watch resolved it: kept, not sent.
    sent = len(slack.delivered) + await store.pending_count()
    again = await pipeline.act(opened.id, "revert-loop", actor="driftwatch", reason="3 reverts")
    assert again.state is IncidentState.RESOLVED
    assert [a["action"] for a in again.body["actions"]] == ["reverted", "revert-loop"]
    await outbox.drain()
    assert len(slack.delivered) == sent
    await store.close()


@async_test
async def test_an_approval_outlives_a_restart_only_while_the_pair_is_unchanged(
    tmp_path: Path,
) -> None:
    store, pipeline, outbox, _ = await setup(tmp_path, ScriptedReceiver("pd"))
    opened = await pipeline.handle(drift_event(EventKind.OPENED, OPEN_TO_WORLD))
    assert opened is not None
    drift = compare(KEY, GIT, OPEN_TO_WORLD, ENGINE)
    await pipeline.act(opened.id, "approved", actor="alice", drift=drift)
    await outbox.drain()
    await store.close()

    pd = ScriptedReceiver("pd")
    store = await SqliteStore(tmp_path / "state.db").open()
    pipeline = Pipeline(store, pipeline.router.__class__((), ["pd"]), clock=pipeline._clock)
    kept = await pipeline.handle(drift_event(EventKind.OPENED, OPEN_TO_WORLD))
    assert kept is not None
    assert kept.state is IncidentState.APPROVED
    assert await store.pending_count() == 0
    # Changed while driftwatch was down: the restart's "opened" reopens it.
    moved = await pipeline.handle(drift_event(EventKind.OPENED, WORLD_9090, "modified"))
    assert moved is not None
    assert moved.state is IncidentState.UPDATED
    assert moved.body["reason"].startswith("reopened: modified (approved by alice")
    assert await store.pending_count() == 1
    await store.close()
    del pd


def test_pagerduty_triggers_ordinary_updates_with_the_actions_in_its_details() -> None:
    body = {
        "type": "drift.updated",
        "state": "updated",
        "severity": "high",
        "occurred_at": "2026-11-27T11:00:00.000Z",
        "actions": [
            {"action": "reverted", "actor": "driftwatch", "at": "2026-11-27T11:00:00.000Z"}
        ],
    }
    note = Notification("n1", "pd", "prod/shop/web#1", Kind.UPDATED, body)
    event = event_for(note, "key")
    assert event["event_action"] == "trigger"
    assert event["payload"]["custom_details"]["actions"] == body["actions"]
    assert event["payload"]["custom_details"]["state"] == "updated"


# --- both stores ---------------------------------------------------------------------------------


@BACKENDS
@async_test(timeout=60)
async def test_approved_is_an_open_state_in_both_stores(kind: str, tmp_path: Path) -> None:
    async with backend(kind, tmp_path) as open_store:
        store = await open_store()
        pipeline, outbox, clock = await setup_on(store, ScriptedReceiver("pd"))
        opened = await pipeline.handle(drift_event(EventKind.OPENED, OPEN_TO_WORLD))
        assert opened is not None
        drift = compare(KEY, GIT, OPEN_TO_WORLD, ENGINE)
        await pipeline.act(opened.id, "approved", actor="alice", reason="ok", drift=drift)
        await outbox.drain()
        await store.close()

        store = await open_store()  # a restart, or a new leader
        (found,) = await store.open_incidents()
        assert found.state is IncidentState.APPROVED
        assert (await store.open_incident(KEY)) == found
        assert found.body["actions"][0]["actor"] == "alice"
        assert await store.next_number(KEY) == 2
        pipeline, outbox, clock = await setup_on(store, ScriptedReceiver("pd"))
        # Still the key's one open incident: a drift event moves it, opens no second one.
        clock.now += 60
        moved = await pipeline.handle(drift_event(EventKind.UPDATED, WORLD_9090, "moved"))
        assert moved is not None
        assert moved.id == opened.id
        assert moved.state is IncidentState.UPDATED
        await pipeline.handle(drift_event(EventKind.RESOLVED, GIT, "fixed"))
        assert await store.open_incidents() == []
        await store.close()


# --- the daemon's side ------------------------------------------------------------------------


@async_test
async def test_the_daemon_approves_through_the_engine_and_rearms_after_a_takeover(
    tmp_path: Path,
) -> None:
    store, pipeline, outbox, clock = await setup(tmp_path, ScriptedReceiver("pd"))
    notifications = Notifications(store, {}, pipeline, outbox, None)
    tracker, events = tracker_with(OPEN_TO_WORLD)
    for e in events:
        await pipeline.handle(e)
    queued: list[EngineRequest] = []
    actions = IncidentActions(tracker, notifications, queued.append)

    # An approval is queued for the engine; applying it approves in the tracker too.
    asked = asyncio.ensure_future(actions.act("prod/shop/web#1", "approved", actor="alice"))
    await asyncio.sleep(0)
    (request,) = queued
    await actions.apply(request)
    approved = await asked
    assert approved.state is IncidentState.APPROVED
    assert tracker.is_approved(KEY)
    # A snooze goes to the pipeline directly.
    snoozed = await actions.act("prod/shop/web#1", "snoozed", actor="bob", until=clock.now + 60)
    assert [a["action"] for a in snoozed.body["actions"]] == ["approved", "snoozed"]
    assert queued == [request]

    # A new leader's tracker knows no approval: re-armed while the pair is the same...
    fresh, _ = tracker_with(OPEN_TO_WORLD)
    assert await IncidentActions(fresh, notifications, queued.append).rearm() == 1
    assert fresh.is_approved(KEY)
    # ... and reopened when it changed meanwhile (a catch-up skips equal fingerprints).
    moved, _ = tracker_with(WORLD_IN_HALVES)
    assert await IncidentActions(moved, notifications, queued.append).rearm() == 0
    assert not moved.is_approved(KEY)
    reopened = await store.get("prod/shop/web#1")
    assert reopened is not None
    assert reopened.state is IncidentState.UPDATED
    assert str(reopened.body["reason"]).startswith(
        "reopened: Git or the live policy changed after the approval"
    )

    # A follower refuses; so does a daemon without a store.
    notifications.notifier.active = False
    with pytest.raises(NotLeading):
        await actions.act("prod/shop/web#1", "snoozed", actor="bob", until=clock.now + 60)
    with pytest.raises(IncidentActionError, match="not stored"):
        await IncidentActions(tracker, None, queued.append).act("x", "approved", actor="a")
    await store.close()
