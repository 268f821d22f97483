"""Receivers that misbehave lose no notification and repeat none (issue #7, receivers).

Each scenario runs the daemon's notification side in process (store, pipeline, outbox, the
real receivers built from configuration) against a loopback stand-in speaking the real
protocol, next to a reference receiver (``truth``, a :class:`ScriptedReceiver` that never
fails). Real drift events, from a :class:`DriftTracker` fed edits of the example policies,
open, update, resolve and re-open incidents while the receiver is failing. After recovery
the faulted receiver must hold, per incident, exactly what the reference holds: the same
kinds, in the same order, none missing (``lost``) and none twice (``duplicates``).

The outbox's backoff is shortened (``BACKOFF``, at most 2 s between attempts) so that a
recovery is noticed within seconds; the mechanism does not depend on how long the receiver
was down (the outbox retries forever, backing off up to ``Backoff.maximum``, 300 s by
default).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from driftwatch.daemon.notifications import Notifications, build_receivers
from driftwatch.desired import load_path
from driftwatch.drift import DriftTracker
from driftwatch.incidents import SqliteStore
from driftwatch.notify.outbox import Backoff
from driftwatch.notify.testing import ScriptedReceiver
from driftwatch.policy import NetworkPolicy, parse_policy
from driftwatch.rules import RuleEngine
from driftwatch.settings import Settings
from tests.faults_support import Figures, bounded, compare_deliveries, poll_until, quiet_log
from tests.standins.base import StandIn
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn
from tests.standins.webhook import WebhookStandIn

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "config" / "examples" / "policies"

PAGERDUTY_DOWN = 60.0
"""How long PagerDuty is down: the first half answering 503 to everything, the second
half refusing connections."""
SLACK_429S = 150
"""429 ``ratelimited`` answers (``Retry-After: 1``) in a row, before Slack accepts again."""
WEBHOOK_TIMEOUT = 0.5
"""The webhook notifier's request timeout in this test."""
WEBHOOK_SLOW = 8.0
"""How long the webhook consumer answers only after ``2 * WEBHOOK_TIMEOUT``."""
BACKOFF = Backoff(initial=0.05, factor=2.0, maximum=2.0)
RECOVERY = 15.0
"""Longest wait for everything to be delivered once the receiver is back."""

Key = tuple[str, str]


def git_manifests() -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc
    return out


def broadened(manifest: dict[str, Any]) -> NetworkPolicy:
    """``manifest`` edited by hand: it now selects every pod of its namespace."""
    body = copy.deepcopy(manifest)
    body["spec"]["podSelector"] = {}
    body["metadata"].setdefault("labels", {})["edited-by"] = "oncall"
    return parse_policy(body)


class Drifts:
    """Real drift events: a tracker holding the examples as Git and as the cluster."""

    def __init__(self) -> None:
        self.desired = load_path(EXAMPLES).policies
        self.git = git_manifests()
        self.tracker = DriftTracker(RuleEngine(Settings().rules.to_options()), cluster="test")
        self.tracker.set_desired(self.desired)
        self.tracker.set_live(dict(self.desired))
        assert self.tracker.drain() == [], "the examples are in sync with themselves"
        self.keys = sorted(self.git)

    async def broaden(self, notifications: Notifications, key: Key) -> int:
        """Edit ``key`` (opens an incident, or re-opens one); returns the events sent."""
        self.tracker.put_live(broadened(self.git[key]))
        return await self._send(notifications)

    async def delete(self, notifications: Notifications, key: Key) -> int:
        """Delete ``key`` from the cluster (an open incident is updated: now missing)."""
        self.tracker.delete_live(*key)
        return await self._send(notifications)

    async def restore(self, notifications: Notifications, key: Key) -> int:
        """Re-apply Git's version (resolves the incident)."""
        self.tracker.put_live(self.desired[key])
        return await self._send(notifications)

    async def _send(self, notifications: Notifications) -> int:
        events = self.tracker.drain()
        for event in events:
            await notifications.notifier.send(event)
        return len(events)

    async def life_cycles(self, notifications: Notifications, keys: list[Key]) -> int:
        """Per key: opened, updated (deleted), resolved (restored), opened again (#2)."""
        sent = 0
        for key in keys:
            sent += await self.broaden(notifications, key)
            sent += await self.delete(notifications, key)
        for key in keys:
            sent += await self.restore(notifications, key)
            sent += await self.broaden(notifications, key)
        return sent


class Rig:
    """The stand-in's receiver and the reference one, their store, pipeline and outbox."""

    def __init__(self, notifications: Notifications, truth: ScriptedReceiver) -> None:
        self.notifications = notifications
        self.truth = truth
        self.outcomes: dict[str, int] = {}

    def count(self, receiver: str, outcome: str) -> None:
        self.outcomes[f"{receiver}:{outcome}"] = self.outcomes.get(f"{receiver}:{outcome}", 0) + 1

    def reference(self) -> list[tuple[str, str]]:
        """What the reference receiver got: (incident, kind), in order."""
        return [(n.incident_id, str(n.kind)) for n in self.truth.delivered]

    async def outbox_empty(self) -> bool:
        """Nothing left to deliver (and nothing dead-lettered: asserted by the tests)."""
        return await self.notifications.store.pending_count() == 0


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, standin: StandIn, name: str, *, timeout: float) -> AsyncIterator[Rig]:
    """Notifications to ``standin`` (as receiver ``name``) and ``truth``, outbox running."""
    async with aiohttp.ClientSession() as session:
        settings = Settings.model_validate({"notifiers": [standin.receiver_config(name)]})
        receivers = build_receivers(settings, session, timeout=timeout)
        if hasattr(receivers[name], "min_interval"):
            # Slack's 1 message/s per channel pacing is tested on its own; here it would
            # only stretch the run.
            receivers[name].min_interval = 0.0  # type: ignore[attr-defined]
        truth = ScriptedReceiver("truth")
        receivers["truth"] = truth
        store = await SqliteStore(tmp_path / "state.db").open()
        notifications = await Notifications.open(
            settings, log=quiet_log(), receivers=receivers, store=store
        )
        notifications.outbox.backoff = BACKOFF
        the_rig = Rig(notifications, truth)
        notifications.observe(the_rig.count)
        task = asyncio.create_task(notifications.outbox_task())
        try:
            yield the_rig
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await notifications.close()


async def check_reference(the_rig: Rig, keys: int) -> list[tuple[str, str]]:
    """The reference receiver got every life cycle: 2 openings, 1 resolution per key."""
    await poll_until(
        lambda: (
            sum(k == "resolved" for _, k in the_rig.reference()) == keys
            and sum(k == "opened" for _, k in the_rig.reference()) == 2 * keys
        ),
        lambda: f"the reference receiver's deliveries ({len(the_rig.reference())})",
        RECOVERY,
    )
    reference = the_rig.reference()
    assert len({i for i, _ in reference}) == 2 * keys
    return reference


def dedup_webhook(standin: WebhookStandIn) -> tuple[list[tuple[str, str]], int]:
    """The consumer's view: each ``webhook-id`` once (first arrival), and the late copies."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    copies = 0
    for delivered in standin.delivered:
        webhook_id = str(delivered.raw["headers"].get("webhook-id"))
        if webhook_id in seen:
            copies += 1
            continue
        seen.add(webhook_id)
        out.append((delivered.incident_id, delivered.kind))
    return out, copies


async def until(moment: float) -> None:
    """Let the fault last until ``moment`` (``time.monotonic()``): scheduling, not a check."""
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


def pairs(standin: StandIn) -> list[tuple[str, str]]:
    return [(d.incident_id, d.kind) for d in standin.delivered]


@bounded(60)
async def test_slack_429_storm_delivers_everything_in_order_once(tmp_path: Path) -> None:
    """Slack answers ``SLACK_429S`` requests in a row with 429 ``ratelimited`` and
    ``Retry-After: 1`` while incidents open, update, resolve and re-open: once the storm is
    over every notification is in Slack, once, in order per incident."""
    drifts = Drifts()
    async with SlackStandIn() as slack, rig(tmp_path, slack, "slack", timeout=5.0) as the_rig:
        slack.fail_next(429, times=SLACK_429S, retry_after=1)
        started = time.monotonic()
        sent = await drifts.life_cycles(the_rig.notifications, drifts.keys)
        reference = await check_reference(the_rig, len(drifts.keys))
        await poll_until(
            lambda: sum(r.status == 429 for r in slack.requests) >= SLACK_429S,
            "the 429 storm to be used up",
            RECOVERY + SLACK_429S,
        )
        storm = time.monotonic() - started
        recover = await poll_until(
            lambda: len(slack.delivered) >= len(reference),
            lambda: f"Slack to get {len(reference)} messages (has {len(slack.delivered)})",
            RECOVERY,
        )
        await poll_until(the_rig.outbox_empty, "an empty outbox", RECOVERY)
        result = compare_deliveries(pairs(slack), reference)
        assert result.exact, result.problems
        assert the_rig.notifications.outbox.failed == 0
        Figures("slack-429-storm").add(
            faults=f"{SLACK_429S}x429",
            events=sent,
            incidents=len({i for i, _ in reference}),
            expected=result.expected,
            delivered=result.delivered,
            lost=result.lost,
            duplicates=result.duplicates,
            storm_s=storm,
            recover_s=recover,
        ).show()


@bounded(PAGERDUTY_DOWN + 40)
async def test_pagerduty_down_delivers_everything_after_recovery(tmp_path: Path) -> None:
    """PagerDuty is down for ``PAGERDUTY_DOWN`` seconds (503 to every request, then no
    connection at all) while incidents open, update, resolve and re-open: once it is back,
    every event reaches it once, in order per incident (trigger, trigger, resolve under the
    incident id as dedup key), within a few seconds."""
    drifts = Drifts()
    half = len(drifts.keys) // 2
    async with PagerDutyStandIn() as pd, rig(tmp_path, pd, "pd", timeout=5.0) as the_rig:
        pd.fail_next(503, times=1_000_000)
        started = time.monotonic()
        sent = await drifts.life_cycles(the_rig.notifications, drifts.keys[:half])
        await until(started + PAGERDUTY_DOWN / 2)
        answered_503 = pd.requests
        pd.recover()
        await pd.server.go_down()
        refused_from = the_rig.outcomes.get("pd:retry", 0)
        sent += await drifts.life_cycles(the_rig.notifications, drifts.keys[half:])
        reference = await check_reference(the_rig, len(drifts.keys))
        await until(started + PAGERDUTY_DOWN)
        refused = the_rig.outcomes.get("pd:retry", 0) - refused_from
        assert pd.events == [], "nothing can have reached PagerDuty while it was down"
        await pd.server.come_back()
        back = time.monotonic()
        recover = await poll_until(
            lambda: len(pd.delivered) >= len(reference),
            lambda: f"PagerDuty to get {len(reference)} events (has {len(pd.delivered)})",
            RECOVERY,
        )
        await poll_until(the_rig.outbox_empty, "an empty outbox", RECOVERY)
        result = compare_deliveries(pairs(pd), reference)
        assert result.exact, result.problems
        assert the_rig.notifications.outbox.failed == 0
        for incident in {i for i, _ in reference}:
            kinds = [k for i, k in reference if i == incident]
            want = ["resolve" if k == "resolved" else "trigger" for k in kinds]
            assert pd.actions_for(incident) == want
        assert answered_503 > 0, "PagerDuty answered 503s"
        assert refused > 0, "PagerDuty refused connections"
        Figures("pagerduty-down").add(
            down_s=PAGERDUTY_DOWN,
            faults=f"{answered_503}x503+{refused}xrefused",
            events=sent,
            incidents=len({i for i, _ in reference}),
            expected=result.expected,
            delivered=result.delivered,
            lost=result.lost,
            duplicates=result.duplicates,
            recover_s=recover,
            since_back_s=time.monotonic() - back,
        ).show()


@bounded(60)
async def test_webhook_timeouts_deliver_everything_in_order_once(tmp_path: Path) -> None:
    """The webhook consumer answers only after twice the notifier's timeout for
    ``WEBHOOK_SLOW`` seconds: every attempt times out (the consumer may still have taken
    it: at least once, as Standard Webhooks says), and afterwards every notification is
    there, in order per incident, once per ``webhook-id`` (the consumer's deduplication
    key, the same on every retry)."""
    drifts = Drifts()
    async with (
        WebhookStandIn() as hook,
        rig(tmp_path, hook, "hook", timeout=WEBHOOK_TIMEOUT) as the_rig,
    ):
        hook.delay = 2 * WEBHOOK_TIMEOUT
        started = time.monotonic()
        sent = await drifts.life_cycles(the_rig.notifications, drifts.keys)
        reference = await check_reference(the_rig, len(drifts.keys))
        await until(started + WEBHOOK_SLOW)
        timeouts = the_rig.outcomes.get("hook:retry", 0)
        hook.delay = 0.0
        recover = await poll_until(
            lambda: len(dedup_webhook(hook)[0]) >= len(reference),
            lambda: f"the webhook to get {len(reference)} ids (has {len(dedup_webhook(hook)[0])})",
            RECOVERY,
        )
        await poll_until(the_rig.outbox_empty, "an empty outbox", RECOVERY)
        unique, copies = dedup_webhook(hook)
        result = compare_deliveries(unique, reference)
        assert result.exact, result.problems
        assert the_rig.notifications.outbox.failed == 0
        assert timeouts > 0, "requests must have timed out"
        Figures("webhook-timeouts").add(
            slow_s=WEBHOOK_SLOW,
            faults=f"{timeouts}xtimeout",
            events=sent,
            incidents=len({i for i, _ in reference}),
            expected=result.expected,
            delivered=result.delivered,
            late_copies=copies,
            lost=result.lost,
            duplicates=result.duplicates,
            recover_s=recover,
        ).show()
