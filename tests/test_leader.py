"""Leader election on a Lease against the sandbox API server, with short timings (a 1 s
lease): one of two electors leads; a stopped leader hands over at once (it releases the
Lease), a dead one within a lease duration and a few retry periods; a leader that cannot
renew (the API server unreachable, the Lease taken) stops leading and campaigns again;
never two leaders at once; and with the Kubernetes incident store, a new leader neither
re-alerts nor drops what its predecessor left.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client, config

from driftwatch.drift import DriftEvent, EventKind, compare
from driftwatch.incidents import KubernetesStore
from driftwatch.live import LeaderElector, LeaseTiming, default_identity
from driftwatch.live.leader import micro_time
from driftwatch.notify.model import Outcome
from driftwatch.notify.outbox import Backoff, Outbox
from driftwatch.notify.pipeline import Pipeline
from driftwatch.notify.routing import Router
from driftwatch.notify.testing import ScriptedReceiver
from driftwatch.policy import PolicyKey
from driftwatch.sandbox import Sandbox
from tests.aio import async_test
from tests.test_incidents import ENGINE, GIT, OPEN_TO_WORLD, PORT_CHANGED, event

NS = "driftwatch"
CRD_PATH = Path(__file__).resolve().parents[1] / "config" / "kubernetes" / "crd-driftincident.yaml"
LEASE = ("coordination.k8s.io/v1", "Lease")
FAST = LeaseTiming(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1)


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[tuple[Sandbox, client.ApiClient]]:
    async with Sandbox(namespaces=("default", NS)) as sb:
        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=str(sb.kubeconfig_path()), client_configuration=configuration
        )
        async with client.ApiClient(configuration=configuration) as api:
            yield sb, api


class Recorder:
    """An elector's callbacks, recorded with the time."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.events: list[tuple[str, float]] = []

    async def started(self) -> None:
        self.events.append(("started", self.clock()))

    async def stopped(self) -> None:
        self.events.append(("stopped", self.clock()))

    @property
    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


def elector(api: client.ApiClient, identity: str, **options: Any) -> tuple[LeaderElector, Recorder]:
    recorder = Recorder(asyncio.get_running_loop().time)
    found = LeaderElector(
        api,
        "driftwatch-leader",
        NS,
        identity=identity,
        timing=options.pop("timing", FAST),
        on_started_leading=recorder.started,
        on_stopped_leading=recorder.stopped,
        **options,
    )
    return found, recorder


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Wait for ``condition``; returns how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > timeout:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)
    return loop.time() - start


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_timing_is_checked_and_identity_defaults_to_the_pod_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert LeaseTiming() == LeaseTiming(15.0, 10.0, 2.0)
    assert LeaseTiming(1.5, 1.0, 0.5).lease_seconds == 2
    with pytest.raises(ValueError, match="greater than renew_deadline"):
        LeaseTiming(10, 10, 2)
    with pytest.raises(ValueError, match=r"greater than retry_period"):
        LeaseTiming(15, 10, 10)
    with pytest.raises(ValueError, match="positive"):
        LeaseTiming(15, 10, 0)
    monkeypatch.setenv("POD_NAME", "driftwatch-7d9f-abcde")
    assert default_identity() == "driftwatch-7d9f-abcde"
    monkeypatch.delenv("POD_NAME")
    assert default_identity().endswith(f"-{os.getpid()}")
    moment = datetime.datetime(
        2026, 11, 27, 13, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    )
    assert micro_time(moment) == "2026-11-27T12:00:00.000000Z"


@async_test
async def test_one_of_two_leads_and_a_stopped_leader_hands_over_at_once() -> None:
    async with cluster() as (sb, api):
        a, rec_a = elector(api, "a")
        b, rec_b = elector(api, "b")
        run_a = asyncio.create_task(a.run())
        await asyncio.wait_for(a.wait_leader(), 2)
        run_b = asyncio.create_task(b.run())
        await asyncio.sleep(0.5)
        assert (a.is_leader, b.is_leader) == (True, False)
        assert b.leader == "a"
        lease = sb.get_object(*LEASE, "driftwatch-leader", NS)
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == "a"
        assert lease["spec"]["leaseDurationSeconds"] == 1
        # kubernetes_asyncio reads what the elector writes (MicroTime, UTC).
        read = await client.CoordinationV1Api(api).read_namespaced_lease("driftwatch-leader", NS)
        assert read.spec.renew_time.tzinfo is not None

        stopped_at = asyncio.get_running_loop().time()
        await stop(run_a)
        assert not a.is_leader
        assert rec_a.kinds == ["started", "stopped"]
        took = await until(lambda: b.is_leader, timeout=3)
        assert took < FAST.lease_duration  # released: no need to wait for the lease to run out
        assert rec_b.events[0][1] >= stopped_at
        lease = sb.get_object(*LEASE, "driftwatch-leader", NS)
        assert lease is not None
        assert lease["spec"]["leaseTransitions"] == 1  # a, then b (a release is no transition)
        assert lease["spec"]["holderIdentity"] == "b"
        await stop(run_b)
        assert rec_b.kinds == ["started", "stopped"]


@async_test
async def test_a_dead_leader_is_replaced_within_the_lease_duration() -> None:
    async with cluster() as (_, api):
        a, _ = elector(api, "a", release_on_stop=False)  # as if killed: the Lease stays
        b, _ = elector(api, "b")
        run_a = asyncio.create_task(a.run())
        await asyncio.wait_for(a.wait_leader(), 2)
        run_b = asyncio.create_task(b.run())
        await asyncio.sleep(0.3)
        await stop(run_a)
        took = await until(lambda: b.is_leader, timeout=5)
        # The follower counts the lease from when it last saw it renewed, by its own clock,
        # and looks every retry period (with jitter): at most one renewal period and one
        # poll late.
        assert FAST.lease_duration - 2 * FAST.retry_period < took
        assert took < FAST.lease_duration + 3 * JITTERED
        await stop(run_b)


JITTERED = FAST.retry_period * 1.2


@async_test
async def test_a_leader_cut_off_from_the_api_server_steps_down_and_campaigns_again() -> None:
    async with cluster() as (sb, api):
        a, rec = elector(api, "a")
        run_a = asyncio.create_task(a.run())
        await asyncio.wait_for(a.wait_leader(), 2)
        loop = asyncio.get_running_loop()
        cut = loop.time()
        sb.faults.refuse(duration=1.5)
        await asyncio.wait_for(a.wait_follower(), 2)
        lost = loop.time() - cut
        # It stops by the renew deadline after its last renewal (at most a period before).
        assert lost <= FAST.renew_deadline + 0.15
        assert rec.kinds == ["started", "stopped"]
        assert not a.is_leader
        # Back: the Lease still names it, so it takes it again without waiting.
        await asyncio.wait_for(a.wait_leader(), 3)
        assert rec.kinds == ["started", "stopped", "started"]
        assert a.terms == 2
        await stop(run_a)


@async_test
async def test_a_hung_api_server_cannot_keep_a_leader_past_its_deadline() -> None:
    async with cluster() as (sb, api):
        a, rec = elector(api, "a")
        run_a = asyncio.create_task(a.run())
        await asyncio.wait_for(a.wait_leader(), 2)
        loop = asyncio.get_running_loop()
        cut = loop.time()
        sb.faults.delay(30.0, match="leases")  # every request hangs
        await asyncio.wait_for(a.wait_follower(), 2)
        assert loop.time() - cut <= FAST.renew_deadline + 0.15
        assert rec.kinds == ["started", "stopped"]
        sb.faults.clear()
        run_a.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(run_a, 5)


@async_test
async def test_a_leader_whose_lease_is_taken_stops_at_once_and_gets_it_back_later() -> None:
    async with cluster() as (sb, api):
        a, rec = elector(api, "a")
        run_a = asyncio.create_task(a.run())
        await asyncio.wait_for(a.wait_leader(), 2)
        lease = sb.get_object(*LEASE, "driftwatch-leader", NS)
        assert lease is not None
        now = micro_time()
        lease["spec"].update(holderIdentity="thief", renewTime=now, acquireTime=now)
        loop = asyncio.get_running_loop()
        stolen = loop.time()
        sb.put_object(lease)
        await asyncio.wait_for(a.wait_follower(), 2)
        assert loop.time() - stolen < 2 * JITTERED  # at its next renewal, not its deadline
        assert a.leader == "thief"
        # The thief never renews: once its lease ran out (counted from when "a" saw it).
        await asyncio.wait_for(a.wait_leader(), 3)
        assert loop.time() - stolen >= FAST.lease_duration
        assert rec.kinds == ["started", "stopped", "started"]
        await stop(run_a)


@async_test(timeout=30)
async def test_never_two_leaders_at_once() -> None:
    async with cluster() as (sb, api):
        pairs = [elector(api, name) for name in ("a", "b", "c")]
        tasks = {e.identity: asyncio.create_task(e.run()) for e, _ in pairs}
        electors = [e for e, _ in pairs]
        loop = asyncio.get_running_loop()
        samples: list[int] = []
        end = loop.time() + 3.5
        killed: set[str] = set()
        while loop.time() < end:
            leaders = [e for e in electors if e.is_leader]
            samples.append(len(leaders))
            left = end - loop.time()
            if leaders and left < 2.5 and not killed:  # stop the leader once
                killed.add(leaders[0].identity)
                tasks[leaders[0].identity].cancel()
            if left < 1.2 and len(killed) == 1:  # and cut everyone off for a moment
                killed.add("faults")
                sb.faults.refuse(duration=0.4)
            await asyncio.sleep(0.01)
        for task in tasks.values():
            await stop(task)
        assert max(samples) == 1
        assert samples.count(1) > len(samples) // 2
        assert sum(e.terms for e in electors) >= 2


@async_test
async def test_while_leading_runs_work_only_during_a_term() -> None:
    async with cluster() as (sb, api):
        a, _ = elector(api, "a")
        runs: list[str] = []

        async def work() -> None:
            runs.append("start")
            try:
                await asyncio.sleep(3600)
            finally:
                runs.append("end")

        run = asyncio.create_task(a.run())
        lead = asyncio.create_task(a.while_leading(work))
        await until(lambda: runs == ["start"])
        sb.faults.refuse(duration=1.0)
        await until(lambda: runs == ["start", "end"], timeout=3)
        await until(lambda: runs == ["start", "end", "start"], timeout=3)
        await stop(lead)
        assert runs == ["start", "end", "start", "end"]
        await stop(run)


@async_test(timeout=30)
async def test_a_new_leader_neither_realerts_nor_drops_what_was_pending() -> None:
    """Two replicas, each with its store and outbox working only while it leads: the
    leader dies with one notification delivered and one pending; the next leader delivers
    the pending one and only that."""
    async with cluster() as (sb, api):
        sb.put_object(yaml.safe_load(CRD_PATH.read_text()))
        hook = ScriptedReceiver("hook")  # the one outside system both replicas notify
        pipelines: dict[str, Pipeline] = {}
        runs: dict[str, list[asyncio.Task[None]]] = {}
        electors: dict[str, LeaderElector] = {}
        for name in ("a", "b"):
            store = KubernetesStore(api, NS)
            electors[name] = LeaderElector(
                api, "driftwatch-leader", NS, identity=name, timing=FAST, release_on_stop=False
            )

            async def work(name: str = name, store: KubernetesStore = store) -> None:
                await store.reload()  # what the last leader left
                outbox = Outbox(store, {"hook": hook}, poll=0.05, backoff=Backoff(1, 2, 60))
                pipelines[name] = Pipeline(store, Router((), ["hook"]), wake=outbox.wake)
                try:
                    await outbox.run()
                finally:
                    del pipelines[name]

            elector = electors[name]
            runs[name] = [
                asyncio.create_task(elector.run()),
                asyncio.create_task(elector.while_leading(work)),
            ]
            await until(lambda: bool(pipelines))  # "a" leads first
        (first,) = pipelines
        assert first == "a"
        await pipelines["a"].handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        await until(lambda: len(hook.delivered) == 1)
        hook.script = [Outcome.retry("503", after=3600)]
        other = PolicyKey("prod", "shop", "db")
        drift = compare(other, GIT, PORT_CHANGED, ENGINE)
        await pipelines["a"].handle(DriftEvent(EventKind.OPENED, other, drift, None, "w", 1, None))
        await until(lambda: len(hook.attempts) == 2)
        for task in runs["a"]:  # "a" dies: no release, "b" waits for the lease to run out
            await stop(task)
        await until(lambda: "b" in pipelines and len(hook.delivered) == 2, timeout=5)
        assert [n.incident_id for n in hook.delivered] == ["prod/shop/web#1", "prod/shop/db#1"]
        assert [(n.incident_id, n.attempt) for n in hook.attempts] == [
            ("prod/shop/web#1", 1),
            ("prod/shop/db#1", 1),
            ("prod/shop/db#1", 2),
        ]
        await asyncio.sleep(0.3)
        assert len(hook.attempts) == 3  # nothing sent twice
        for task in runs["b"]:
            await stop(task)
