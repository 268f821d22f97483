"""Process faults (issue #7): ``kill -9`` of a real ``driftwatch run`` at random points of a
burst of 500 NetworkPolicy changes, restarted 20 times with the same state file.

What a user relies on: every incident's final state reaches every receiver (a resolved
incident's last notification is its resolve; an open one's last says what the store says),
no receiver misses a resolve, and PagerDuty is never paged twice for one incident.

What counts as a duplicate. The outbox delivers at least once: a notification whose
delivery succeeded just before the kill, but whose confirmation was not committed yet, is
sent again after the restart, with the *same* notification id. So:

* webhook: a *redelivery* is the same ``webhook-id`` twice (Standard Webhooks consumers
  drop it by that id) and is counted, not failed; a *duplicate* is a second ``opened`` or
  ``resolved`` of one incident under a *different* id (a re-announcement) and must be 0.
* PagerDuty: the events carry no notification id, only the dedup key (the incident id). A
  second trigger while the alert is open is idempotent in PagerDuty (it updates the same
  alert); it is counted as a redelivery when it repeats ``opened``. A *duplicate trigger*
  is one that would page again: a trigger for a dedup key after its resolve. It must be 0.

The seed is printed; ``DRIFTWATCH_FAULT_SEED=<n>`` replays a run.
"""

from __future__ import annotations

import asyncio
import copy
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from driftwatch.sandbox import Sandbox, SandboxThread
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.webhook import WebhookStandIn
from tests.test_daemon import EXAMPLES
from tests.test_notify_restart import DaemonProcess, outbox, read_db

pytestmark = [pytest.mark.faults, pytest.mark.slow]

CHANGES = 500
CYCLES = 20
BUDGET = 150.0
"""Seconds the whole scenario may take (the test fails beyond)."""
UNMANAGED = [f"extra-{n}" for n in range(8)]
"""Policies in namespace ``shop`` that Git does not have, created and deleted."""
NP_API = "/apis/networking.k8s.io/v1"


def git_policies() -> dict[tuple[str, str], dict[str, Any]]:
    """(namespace, name) -> the NetworkPolicy as Git has it."""
    found = {}
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "NetworkPolicy":
                meta = doc["metadata"]
                found[(meta.get("namespace", "default"), meta["name"])] = doc
    return found


@dataclass
class World:
    """The cluster as the test changed it, and which keys should end up drifted."""

    git: dict[tuple[str, str], dict[str, Any]]
    state: dict[tuple[str, str], str]
    """``sync``, ``drift`` or ``gone`` for Git's policies; ``present`` or ``gone`` for the
    unmanaged ones."""

    @classmethod
    def start(cls) -> World:
        git = git_policies()
        state = dict.fromkeys(git, "sync") | {("shop", n): "gone" for n in UNMANAGED}
        return cls(git, state)

    def drifted(self) -> set[str]:
        """``cluster/namespace/name`` of every key that should have an open incident."""
        return {
            f"test/{ns}/{name}"
            for (ns, name), state in self.state.items()
            if state in ("drift", "present") or (state == "gone" and (ns, name) in self.git)
        }

    def change(self, rng: random.Random) -> tuple[str, str, dict[str, Any] | None]:
        """One random change: (method, path, body), and the model updated."""
        key = rng.choice(sorted(self.state))
        ns, name = key
        base = f"{NP_API}/namespaces/{ns}/networkpolicies"
        state = self.state[key]
        if key not in self.git:  # unmanaged: create or delete
            if state == "gone":
                self.state[key] = "present"
                body = {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"podSelector": {"matchLabels": {"app": name}}},
                }
                return "POST", base, body
            self.state[key] = "gone"
            return "DELETE", f"{base}/{name}", None
        roll = rng.random()
        if state == "gone":  # re-created from Git
            self.state[key] = "sync"
            return "POST", base, self.git[key]
        if state == "drift" and roll < 0.6:  # re-applied from Git
            self.state[key] = "sync"
            return "PUT", f"{base}/{name}", self.git[key]
        if roll < 0.85:  # edited: one more ingress rule (drifted, or drifted differently)
            self.state[key] = "drift"
            body = copy.deepcopy(self.git[key])
            cidr = f"10.{rng.randrange(256)}.0.0/16"
            rules = body["spec"].setdefault("ingress", [])
            rules.append({"from": [{"ipBlock": {"cidr": cidr}}]})
            body["spec"]["policyTypes"] = sorted({*body["spec"].get("policyTypes", []), "Ingress"})
            return "PUT", f"{base}/{name}", body
        self.state[key] = "gone"  # deleted
        return "DELETE", f"{base}/{name}", None


async def apply(session: aiohttp.ClientSession, sandbox: Sandbox, change: Any) -> None:
    method, path, body = change
    async with session.request(method, f"{sandbox.url}{path}", json=body) as answer:
        assert answer.status in (200, 201), (method, path, answer.status, await answer.text())


def seed() -> int:
    given = os.environ.get("DRIFTWATCH_FAULT_SEED")
    return int(given) if given else random.SystemRandom().randrange(2**32)


def incidents(state: Path) -> dict[str, dict[str, Any]]:
    """Incident id -> its row (state, status, severity)."""
    rows = read_db(state, "SELECT id, state, status, severity FROM incidents")
    return {i: {"state": s, "status": st, "severity": sv} for i, s, st, sv in rows}


def open_keys(state: Path) -> set[str]:
    return {
        i.rsplit("#", 1)[0] for i, row in incidents(state).items() if row["state"] != "resolved"
    }


def pagerduty_report(pd: PagerDutyStandIn) -> tuple[dict[str, list[dict[str, Any]]], int, int]:
    """Events by dedup key, duplicate triggers (a trigger after the key's resolve: a second
    page) and redelivered ``opened`` triggers (idempotent)."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for event in pd.events:
        by_key.setdefault(event["dedup_key"], []).append(event)
    duplicates = redelivered = 0
    for events in by_key.values():
        resolved = opened = False
        for event in events:
            if event["event_action"] == "resolve":
                resolved = True
                continue
            if resolved:
                duplicates += 1
            if event["payload"]["custom_details"]["kind"] == "opened":
                redelivered += opened
                opened = True
    return by_key, duplicates, redelivered


def webhook_report(hook: WebhookStandIn) -> tuple[dict[str, list[Any]], int, int]:
    """Deliveries by incident, redeliveries (the same webhook-id again) and duplicates (a
    second ``opened`` or ``resolved`` of one incident under another id)."""
    by_incident: dict[str, list[Any]] = {}
    for d in hook.delivered:
        by_incident.setdefault(d.incident_id, []).append(d)
    ids = Counter(d.raw["headers"]["webhook-id"] for d in hook.delivered)
    redelivered = sum(n - 1 for n in ids.values())
    duplicates = 0
    for delivered in by_incident.values():
        for kind in ("opened", "resolved"):
            duplicates += max(
                0, len({d.raw["headers"]["webhook-id"] for d in delivered if d.kind == kind}) - 1
            )
    return by_incident, redelivered, duplicates


def split(total: int, parts: int) -> Iterator[int]:
    for n in range(parts):
        yield total * (n + 1) // parts - total * n // parts


def test_kill_9_at_random_points_of_500_changes_loses_no_final_state(tmp_path: Path) -> None:
    rng_seed = seed()
    print(f"seed {rng_seed} (DRIFTWATCH_FAULT_SEED={rng_seed} replays it)")
    rng = random.Random(rng_seed)  # noqa: S311 - seeded, to replay a run
    state = tmp_path / "state.db"
    world = World.start()
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as thread:
        sandbox = thread.sandbox
        kubeconfig = sandbox.kubeconfig_path(tmp_path)

        async def scenario() -> None:
            async with (
                PagerDutyStandIn() as pagerduty,
                WebhookStandIn() as webhook,
                aiohttp.ClientSession(
                    headers={"Authorization": f"Bearer {sandbox.token}"}
                ) as session,
            ):
                config = tmp_path / "driftwatch.yaml"
                config.write_text(
                    yaml.safe_dump(
                        {
                            "cluster": {"name": "test", "kubeconfig": str(kubeconfig)},
                            "desired": {"path": str(EXAMPLES)},
                            "state": {"path": str(state)},
                            "notifiers": [
                                pagerduty.receiver_config("pagerduty"),
                                webhook.receiver_config("webhook"),
                            ],
                            "log": {"format": "json"},
                        }
                    )
                )
                started = time.monotonic()
                kills, killed_during, recoveries = 0, 0, []
                for cycle, count in enumerate(split(CHANGES, CYCLES)):
                    daemon = await DaemonProcess.start(config)
                    try:
                        t0 = time.monotonic()
                        await daemon.ready()
                        recoveries.append(time.monotonic() - t0)
                        # Kill after a random number of this cycle's changes, a random
                        # moment later (detection, the store's commit, a delivery); the rest
                        # are made while it is down (found by the next start's list).
                        kill_at = rng.randrange(count + 1)
                        for n in range(count):
                            if n == kill_at:
                                await asyncio.sleep(rng.uniform(0, 0.15))
                                await daemon.kill()
                                kills += 1
                                killed_during += n > 0
                            await apply(session, sandbox, world.change(rng))
                            await asyncio.sleep(rng.uniform(0, 0.01))
                        if daemon.proc.returncode is None:
                            await asyncio.sleep(rng.uniform(0, 0.15))
                            await daemon.kill()
                            kills += 1
                    finally:
                        await daemon.stop()
                    assert daemon.proc.returncode == -signal.SIGKILL, daemon.log_text
                    assert time.monotonic() - started < BUDGET, f"over budget at cycle {cycle}"

                # The last start is not killed: it must bring every receiver to the end state.
                final = await DaemonProcess.start(config)
                try:
                    t0 = time.monotonic()
                    await final.ready()
                    expected = world.drifted()
                    await final.until(
                        lambda: open_keys(state) == expected and not outbox(state),
                        "the store to match the cluster and the outbox to empty",
                        30,
                    )
                    settled = time.monotonic() - t0
                    await asyncio.sleep(0.5)  # room for a late duplicate
                finally:
                    assert await final.stop() == 0, final.log_text
                total = time.monotonic() - started

                stored = incidents(state)
                pd_events, pd_duplicates, pd_redelivered = pagerduty_report(pagerduty)
                hooks, hook_redelivered, hook_duplicates = webhook_report(webhook)
                lost = []
                for iid, row in stored.items():
                    pd_last = pd_events.get(iid, [{}])[-1]
                    hook_last = hooks.get(iid, [None])[-1]
                    if row["state"] == "resolved":
                        if pd_last.get("event_action") != "resolve":
                            lost.append(("pagerduty", iid, "resolve"))
                        if hook_last is None or hook_last.kind != "resolved":
                            lost.append(("webhook", iid, "resolve"))
                        continue
                    details = pd_last.get("payload", {}).get("custom_details", {})
                    if (details.get("status"), details.get("severity")) != (
                        row["status"],
                        row["severity"],
                    ):
                        lost.append(("pagerduty", iid, row["state"]))
                    body = hook_last.raw["body"] if hook_last is not None else {}
                    if body.get("type") == "drift.resolved" or (
                        body.get("status"),
                        body.get("severity"),
                    ) != (row["status"], row["severity"]):
                        lost.append(("webhook", iid, row["state"]))
                resolved = sum(r["state"] == "resolved" for r in stored.values())
                print(
                    f"process kill -9: {kills} kills ({killed_during} amid the changes), "
                    f"{CHANGES} changes, {len(stored)} incidents ({resolved} resolved, "
                    f"{len(stored) - resolved} open), {len(pagerduty.events)} PagerDuty events, "
                    f"{len(webhook.delivered)} webhooks; lost {len(lost)}, duplicate triggers "
                    f"{pd_duplicates}, webhook duplicates {hook_duplicates}; redelivered "
                    f"(same notification) pagerduty {pd_redelivered}, webhook "
                    f"{hook_redelivered}; ready after restart median "
                    f"{sorted(recoveries)[len(recoveries) // 2]:.2f} s, max "
                    f"{max(recoveries):.2f} s; final state everywhere {settled:.2f} s after "
                    f"the last start; total {total:.1f} s"
                )
                assert kills == CYCLES
                assert lost == [], lost[:20]
                assert pd_duplicates == 0
                assert hook_duplicates == 0
                assert pagerduty.rejected == []
                assert read_db(state, "SELECT COUNT(*) FROM dead_letters") == [(0,)]
                assert resolved > CYCLES, "the burst should resolve many incidents"
                # Every incident reached both receivers, and nothing else did.
                assert set(stored) == set(pd_events) == set(hooks)
                assert total < BUDGET

        asyncio.run(asyncio.wait_for(scenario(), timeout=BUDGET + 20))
