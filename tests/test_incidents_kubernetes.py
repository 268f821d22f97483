"""The Kubernetes-backed incident store (DriftIncident objects) against the sandbox API
server, and the SQLite store through the same scenarios: both must behave alike
(open/update/resolve, restarts, retries, dead letters, order, disabled receivers,
group_wait batches).

A "restart" is a new store on the same state: the same SQLite file, or a new
``KubernetesStore`` (a new leader) on the same namespace. Kubernetes-only tests follow:
the object layout and ``kubectl get driftincidents``, a stale cache (409), errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from kubernetes_asyncio import client, config

from driftwatch.drift import DriftEvent, EventKind, compare
from driftwatch.incidents import Incident, IncidentState, IncidentStore, Outgoing, SqliteStore
from driftwatch.incidents.driftincident import label_value, object_name
from driftwatch.incidents.kubernetes import KubernetesStore, KubernetesStoreError
from driftwatch.notify.model import Kind, Outcome
from driftwatch.notify.outbox import Backoff, Limits, Outbox
from driftwatch.notify.pipeline import Pipeline
from driftwatch.notify.routing import Router
from driftwatch.notify.testing import ScriptedReceiver
from driftwatch.policy import PolicyKey
from driftwatch.sandbox import Sandbox, SandboxThread
from driftwatch.sandbox.kubectl import Kubectl, kubectl_path
from tests.aio import async_test
from tests.test_incidents import (
    ENGINE,
    GIT,
    KEY,
    OPEN_TO_WORLD,
    PORT_CHANGED,
    Clock,
    SlowReceiver,
    event,
)
from tests.test_notify_group_wait import WAIT, Plain, names, opened, resolved, updated

ROOT = Path(__file__).resolve().parents[1]
CRD = yaml.safe_load((ROOT / "config" / "kubernetes" / "crd-driftincident.yaml").read_text())
NS = "driftwatch"
DI = ("driftwatch.io/v1", "DriftIncident")
BACKENDS = pytest.mark.parametrize("kind", ["sqlite", "kubernetes"])
needs_kubectl = pytest.mark.skipif(kubectl_path() is None, reason="kubectl is not on PATH")

Opener = Callable[[], Awaitable[IncidentStore]]


async def api_client(sb: Sandbox) -> client.ApiClient:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(sb.kubeconfig_path()), client_configuration=configuration
    )
    return client.ApiClient(configuration=configuration)


@contextlib.asynccontextmanager
async def cluster(**options: Any) -> AsyncIterator[tuple[Sandbox, client.ApiClient]]:
    """A sandbox with the DriftIncident CRD applied and the store's namespace."""
    async with Sandbox(namespaces=("default", NS), **options) as sb:
        sb.put_object(CRD)
        async with await api_client(sb) as api:
            yield sb, api


@contextlib.asynccontextmanager
async def backend(kind: str, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens stores on one state: each call is a (re)start."""
    if kind == "sqlite":

        async def sqlite() -> IncidentStore:
            return await SqliteStore(tmp_path / "state.db").open()

        yield sqlite
        return
    async with cluster() as (_, api):

        async def kubernetes() -> IncidentStore:
            return await KubernetesStore(api, NS).open()

        yield kubernetes


async def setup(
    store: IncidentStore,
    *receivers: ScriptedReceiver,
    waits: dict[str, float] | None = None,
    limits: dict[str, Limits] | None = None,
) -> tuple[Pipeline, Outbox, Clock]:
    clock = Clock()
    log = structlog.get_logger()
    outbox = Outbox(
        store,
        {r.name: r for r in receivers},
        backoff=Backoff(1, 2, 60),
        clock=clock,
        log=log,
        group_wait=waits,
        limits=limits,
    )
    pipeline = Pipeline(
        store,
        Router((), [r.name for r in receivers]),
        wake=outbox.wake,
        clock=clock,
        repeat_interval=3600,
        group_wait=waits,
        log=log,
    )
    return pipeline, outbox, clock


# --- the same scenarios on both stores ------------------------------------------------------


@BACKENDS
@async_test
async def test_an_incident_opens_updates_and_resolves_with_one_notification_each(
    kind: str, tmp_path: Path
) -> None:
    async with backend(kind, tmp_path) as start:
        store = await start()
        slack = ScriptedReceiver("slack")
        pipeline, outbox, clock = await setup(store, slack)
        first = await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        assert first is not None
        assert first.id == "prod/shop/web#1"
        assert await store.open_incident(KEY) == first
        await outbox.drain()
        clock.now += 10
        await pipeline.handle(event(EventKind.UPDATED, PORT_CHANGED))
        clock.now += 10
        await pipeline.handle(event(EventKind.RESOLVED, GIT))
        await outbox.drain()
        assert [n.kind for n in slack.delivered] == ["opened", "updated", "resolved"]
        assert slack.delivered[1].thread == {"ts": slack.delivered[0].id}
        assert await store.thread("slack", "prod/shop/web#1") == {"ts": slack.delivered[0].id}
        done = await store.get("prod/shop/web#1")
        assert done is not None
        assert done.state is IncidentState.RESOLVED
        assert done.body == (await store.history())[0].body
        assert await store.open_incident(KEY) is None
        assert await store.next_number(KEY) == 2
        again = await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        assert again is not None
        assert again.id == "prod/shop/web#2"
        assert [i.id for i in await store.history()] == ["prod/shop/web#2", "prod/shop/web#1"]
        assert [i.id for i in await store.open_incidents()] == ["prod/shop/web#2"]
        await store.close()


@BACKENDS
@async_test
async def test_a_restart_neither_realerts_nor_forgets_to_resolve(kind: str, tmp_path: Path) -> None:
    async with backend(kind, tmp_path) as start:
        first = ScriptedReceiver("pd")
        store = await start()
        pipeline, outbox, _ = await setup(store, first)
        await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        await outbox.drain()
        await store.close()

        second = ScriptedReceiver("pd")
        store = await start()
        pipeline, outbox, _ = await setup(store, second)
        again = await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        assert again is not None
        assert again.id == "prod/shop/web#1"
        await outbox.drain()
        assert second.attempts == []
        resolved_ = await pipeline.reconcile(open_keys=[])
        assert [i.id for i in resolved_] == ["prod/shop/web#1"]
        await outbox.drain()
        assert [(n.kind, n.body["reason"]) for n in second.delivered] == [
            ("resolved", "resolved while driftwatch was not running")
        ]
        await store.close()


@BACKENDS
@async_test
async def test_retries_honour_retry_after_and_permanent_failures_are_dead_lettered(
    kind: str, tmp_path: Path
) -> None:
    async with backend(kind, tmp_path) as start:
        hook = ScriptedReceiver(
            "hook", script=[Outcome.retry("429", after=30.0), Outcome.fail("400 bad request")]
        )
        store = await start()
        pipeline, outbox, clock = await setup(store, hook)
        await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        await outbox.drain()
        clock.now += 29
        await outbox.drain()
        assert len(hook.attempts) == 1
        assert await store.next_due("hook") == pytest.approx(clock.now + 1, abs=1.5)
        clock.now += 2
        await outbox.drain()
        assert [a.attempt for a in hook.attempts] == [1, 2]
        assert hook.attempts[0].id == hook.attempts[1].id
        assert await store.pending_count() == 0
        (dead,) = await store.dead_letters()
        assert (dead.receiver, dead.reason, dead.attempts) == ("hook", "400 bad request", 2)
        assert dead.incident_id == "prod/shop/web#1"
        store = await start()  # dead letters are kept
        assert [d.id for d in await store.dead_letters()] == [dead.id]
        await store.close()


@BACKENDS
@async_test
async def test_one_incidents_notifications_are_delivered_in_order(
    kind: str, tmp_path: Path
) -> None:
    async with backend(kind, tmp_path) as start:
        slow = ScriptedReceiver("slow", script=[Outcome.retry("503")])
        store = await start()
        pipeline, outbox, clock = await setup(store, slow)
        await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        await pipeline.handle(event(EventKind.UPDATED, PORT_CHANGED))
        await pipeline.handle(event(EventKind.RESOLVED, GIT))
        await outbox.drain()
        assert [n.kind for n in slow.attempts] == ["opened"]
        store = await start()  # the order survives a restart (seq keeps growing)
        pipeline, outbox, clock = await setup(store, slow)
        clock.now += 5
        await outbox.drain()
        assert [n.kind for n in slow.delivered] == ["opened", "updated", "resolved"]
        await store.close()


@BACKENDS
@async_test
async def test_gone_disables_the_receiver_for_good(kind: str, tmp_path: Path) -> None:
    async with backend(kind, tmp_path) as start:
        hook = ScriptedReceiver("hook", script=[Outcome.gone("410 Gone")])
        other = ScriptedReceiver("other")
        store = await start()
        pipeline, outbox, _ = await setup(store, hook, other)
        await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        await outbox.drain()
        assert await store.disabled_receivers() == {"hook": "410 Gone"}
        await pipeline.handle(event(EventKind.UPDATED, PORT_CHANGED))
        await outbox.drain()
        assert len(hook.attempts) == 1
        assert [n.kind for n in other.delivered] == ["opened", "updated"]
        await store.disable_receiver("other", "410 too", 1_800_000_000.0)
        store = await start()
        assert await store.disabled_receivers() == {"hook": "410 Gone", "other": "410 too"}
        await store.close()


@BACKENDS
@async_test
async def test_reminders_and_a_restarted_outbox_retrying_at_once(kind: str, tmp_path: Path) -> None:
    async with backend(kind, tmp_path) as start:
        down = ScriptedReceiver("hook", script=[Outcome.retry("503", after=3000.0)])
        store = await start()
        pipeline, outbox, clock = await setup(store, down)
        await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        await outbox.drain()
        clock.now += 3600
        assert [i.id for i in await pipeline.remind()] == ["prod/shop/web#1"]
        assert await pipeline.remind() == []
        assert await store.pending_count() == 2

        up = ScriptedReceiver("hook")
        store = await start()
        _, outbox, clock = await setup(store, up)
        task = asyncio.create_task(outbox.run())
        try:
            deadline = time.monotonic() + 5
            while await store.pending_count() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert [n.kind for n in up.delivered] == ["opened", "reminder"]
        assert await store.pending_count() == 0
        await store.close()


@BACKENDS
@async_test
async def test_deliveries_overlap_across_incidents_within_limits_and_never_within_one(
    kind: str, tmp_path: Path
) -> None:
    async with backend(kind, tmp_path) as start:
        slow = SlowReceiver("slow")
        store = await start()
        pipeline, outbox, _ = await setup(store, slow, limits={"slow": Limits(3)})
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
        await store.close()


@BACKENDS
@async_test
async def test_group_wait_batches_incidents_opening_within_the_window(
    kind: str, tmp_path: Path
) -> None:
    async with backend(kind, tmp_path) as start:
        slack, pager = ScriptedReceiver("slack"), ScriptedReceiver("pager")
        store = await start()
        pipeline, outbox, clock = await setup(store, slack, pager, waits={"slack": WAIT})
        await pipeline.handle(opened("a"))
        clock.now += 10
        await pipeline.handle(opened("b"))
        clock.now += 15
        await pipeline.handle(opened("c"))
        await pipeline.handle(updated("a"))  # waits behind the batch
        await outbox.drain()
        assert [n.body["name"] for n in pager.delivered] == ["a", "b", "c", "a"]
        assert slack.attempts == []
        assert slack.batches == []
        clock.now += 5
        await outbox.drain()
        assert len(slack.batches) == 1
        assert names(slack.batches[0].notifications) == ["a", "b", "c"]
        assert [(n.kind, n.body["name"]) for n in slack.attempts] == [(Kind.UPDATED, "a")]
        assert slack.attempts[0].thread == {"ts": slack.batches[0].id}
        await pipeline.handle(resolved("b"))
        await outbox.drain()
        assert slack.attempts[-1].thread == {"ts": slack.batches[0].id}
        clock.now += 100
        await pipeline.handle(opened("d"))  # a lone incident: the usual single message
        await outbox.drain()
        clock.now += WAIT
        await outbox.drain()
        assert len(slack.batches) == 1
        assert [(n.kind, n.body["name"]) for n in slack.attempts[-1:]] == [(Kind.OPENED, "d")]
        assert await store.pending_count() == 0
        await store.close()


@BACKENDS
@async_test
async def test_a_batch_is_retried_whole_under_one_id_and_dead_lettered_whole(
    kind: str, tmp_path: Path
) -> None:
    async with backend(kind, tmp_path) as start:
        slack = ScriptedReceiver(
            "slack", script=[Outcome.retry("503", after=20), Outcome.fail("400 invalid_blocks")]
        )
        store = await start()
        pipeline, outbox, clock = await setup(store, slack, waits={"slack": WAIT})
        await pipeline.handle(opened("a"))
        await pipeline.handle(opened("b"))
        clock.now += WAIT
        await outbox.drain()
        assert len(slack.batches) == 1
        clock.now += 5
        await pipeline.handle(opened("c"))  # opens during the retry: not in the formed batch
        then = clock.now
        store = await start()  # a new leader takes the formed batch over
        pipeline, outbox, clock = await setup(store, slack, waits={"slack": WAIT})
        clock.now = then
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
        assert {(d.reason, d.attempts) for d in dead} == {("400 invalid_blocks", 2)}
        clock.now += WAIT
        await outbox.drain()
        assert [n.body["name"] for n in slack.delivered] == ["c"]
        assert await store.pending_count() == 0
        await store.close()


@BACKENDS
@async_test
async def test_a_waiting_batch_survives_a_restart_and_goes_out_even_unbatched(
    kind: str, tmp_path: Path
) -> None:
    async with backend(kind, tmp_path) as start:
        store = await start()
        pipeline, _, clock = await setup(store, ScriptedReceiver("slack"), waits={"slack": WAIT})
        await pipeline.handle(opened("a"))
        await pipeline.handle(opened("b"))
        await pipeline.handle(opened("c"))
        again = ScriptedReceiver("slack")
        store = await start()
        _, outbox, clock = await setup(store, again, waits={"slack": WAIT})
        assert await store.due_now(clock()) == 3
        await outbox.drain()
        assert names(again.batches[0].notifications) == ["a", "b", "c"]
        assert await store.pending_count() == 0

        # Grouped notifications left for a receiver that can no longer batch still go.
        pipeline, _, clock = await setup(store, ScriptedReceiver("slack"), waits={"slack": WAIT})
        await pipeline.handle(opened("d"))
        store = await start()
        plain = Plain()
        outbox = Outbox(store, {"slack": plain}, clock=clock, log=structlog.get_logger())  # type: ignore[dict-item]
        await store.due_now(clock())
        await outbox.drain()
        assert plain.got == ["d"]
        assert await store.pending_count() == 0
        await store.close()


@BACKENDS
@async_test
async def test_the_store_contract_directly(kind: str, tmp_path: Path) -> None:
    """The calls the outbox makes, checked without it: due holds grouped rows back, a
    batch is formed once and handed out again until delivered, and a retry of one member
    retries the whole batch."""
    async with backend(kind, tmp_path) as start:
        store = await start()
        pipeline, _, clock = await setup(store, ScriptedReceiver("r"), waits={"r": WAIT})
        a = await pipeline.handle(opened("a"))
        b = await pipeline.handle(opened("b"))
        assert a is not None
        assert b is not None
        now = clock()
        await store.save(a, [Outgoing("plain-1", "q", "updated", {"x": None, "n": [1, 2.5]})], now)
        assert await store.due("r", now + WAIT) == []  # grouped: only batch() hands them out
        assert await store.batch("r", now + WAIT - 1) == []
        (plain,) = await store.due("q", now)
        assert plain.body == {"x": None, "n": [1, 2.5]}
        formed = await store.batch("r", now + WAIT)
        assert [p.incident_id for p in formed] == ["prod/shop/a#1", "prod/shop/b#1"]
        assert len({p.batch for p in formed}) == 1
        assert formed[0].seq < formed[1].seq
        assert await store.batch("r", now + WAIT) == formed  # the same batch, again
        await store.retry(formed[1], now + 100, "503")
        assert await store.batch("r", now + 99) == []
        retried = await store.batch("r", now + 100)
        assert [(p.id, p.attempts, p.last_error) for p in retried] == [
            (p.id, 1, "503") for p in formed
        ]
        assert await store.next_due("r") == now + 100
        await store.delivered_batch(retried, {"prod/shop/a#1": {"ts": "1"}})
        assert await store.thread("r", "prod/shop/a#1") == {"ts": "1"}
        assert await store.thread("r", "prod/shop/b#1") == {}
        assert await store.next_due("r") is None
        assert await store.pending_count() == 1
        await store.dead_letter(plain, "gone", now)
        assert await store.pending_count() == 0
        assert [(d.id, d.kind, d.attempts) for d in await store.dead_letters()] == [
            ("plain-1", "updated", 1)
        ]
        await store.close()


# --- Kubernetes only ------------------------------------------------------------------------


@async_test
async def test_one_object_per_incident_with_labels_for_selectors() -> None:
    async with cluster() as (sb, api):
        store = await KubernetesStore(api, NS).open()
        receivers = [ScriptedReceiver(n) for n in ("slack", "pd", "hook")]
        pipeline, outbox, _ = await setup(store, *receivers)
        await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        (obj,) = sb.list_objects(*DI, NS)
        assert obj["metadata"]["name"] == object_name(KEY, 1)
        assert obj["metadata"]["name"].startswith("shop.web-1-")
        labels = obj["metadata"]["labels"]
        assert labels["driftwatch.io/open"] == "true"
        assert labels["driftwatch.io/pending"] == "true"
        assert (labels["driftwatch.io/cluster"], labels["driftwatch.io/policy"]) == ("prod", "web")
        status = obj["status"]
        assert (status["state"], status["severity"], status["pending"]) == ("open", "critical", 3)
        # Three receivers' copies of one message are one stored body: the incident's own.
        assert {e["bodyRef"] for e in status["outbox"]} == {"@incident"}
        assert status["bodies"] == {}
        await outbox.drain()
        await pipeline.handle(event(EventKind.RESOLVED, GIT))
        objects = client.CustomObjectsApi(api)
        found = await objects.list_namespaced_custom_object(
            "driftwatch.io", "v1", NS, "driftincidents", label_selector="driftwatch.io/open=true"
        )
        assert found["items"] == []
        await outbox.drain()
        (obj,) = sb.list_objects(*DI, NS)
        assert obj["metadata"]["labels"]["driftwatch.io/state"] == "resolved"
        assert obj["status"]["outbox"] == []
        assert obj["status"]["lastSeq"] > 0
        assert set(obj["status"]["threads"]) == {"slack", "pd", "hook"}


def test_the_kubernetes_store_has_every_method_of_the_protocol_with_its_signature() -> None:
    wanted = {
        name: inspect.signature(member)
        for name, member in vars(IncidentStore).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }
    assert "batch" in wanted
    for name, signature in wanted.items():
        found = getattr(KubernetesStore, name)
        assert inspect.iscoroutinefunction(found), name
        assert inspect.signature(found).parameters.keys() == signature.parameters.keys(), name


def test_object_names_and_label_values_are_valid_and_distinct() -> None:
    dns = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
    label = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
    keys = [
        PolicyKey("prod", "shop", "web"),
        PolicyKey("Prod", "shop", "web"),
        PolicyKey("prod_eu/1", "a" * 63, "b" * 253),
        PolicyKey("", "x", "-weird..name-"),
    ]
    made = {object_name(k, n) for k in keys for n in (1, 12)}
    assert len(made) == 8
    assert all(len(n) <= 253 and dns.fullmatch(n) for n in made)
    for text in ("prod", "prod_eu/1", "b" * 253, "-x-", ""):
        value = label_value(text)
        assert len(value) <= 63
        assert label.fullmatch(value)
    assert label_value("prod") == "prod"
    assert label_value("b" * 253) != label_value("b" * 252 + "c")


@async_test
async def test_a_stale_cache_rereads_on_conflict_and_keeps_the_other_writers_change() -> None:
    async with cluster() as (_, api):
        old = await KubernetesStore(api, NS).open()
        slack = ScriptedReceiver("slack")
        pipeline, _, clock = await setup(old, slack)
        await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        new = await KubernetesStore(api, NS).open()  # loaded before the old one delivered
        (pending,) = await old.due("slack", clock())
        await old.delivered(pending, {"ts": "1"})
        # The new leader's cache still holds the delivered row and the old resourceVersion.
        incident = await new.open_incident(KEY)
        assert incident is not None
        assert await new.pending_count() == 1
        changed = dataclasses.replace(incident, fingerprint="changed")
        await new.save(changed, [Outgoing("n2", "slack", "updated", {"k": 1})], clock())
        assert await new.thread("slack", incident.id) == {"ts": "1"}
        assert [p.id for p in await new.due("slack", clock())] == ["n2"]
        reread = await KubernetesStore(api, NS).open()
        got = await reread.get(incident.id)
        assert got is not None
        assert got.fingerprint == "changed"
        assert await reread.pending_count() == 1
        await old.reload()  # what a leader does when it wins the lease again
        assert await old.get(incident.id) == got


@async_test
async def test_an_object_deleted_behind_the_stores_back_is_written_again() -> None:
    async with cluster() as (sb, api):
        store = await KubernetesStore(api, NS).open()
        pipeline, _, _ = await setup(store, ScriptedReceiver("slack"))
        await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
        assert sb.delete_object(*DI, object_name(KEY, 1), NS)
        await pipeline.handle(event(EventKind.UPDATED, PORT_CHANGED))
        (obj,) = sb.list_objects(*DI, NS)
        assert (obj["status"]["state"], obj["status"]["pending"]) == ("updated", 1)
        nowhere = await KubernetesStore(api, "nowhere").open()  # lists nothing, as a server does
        pipeline, _, _ = await setup(nowhere, ScriptedReceiver("slack"))
        with pytest.raises(KubernetesStoreError, match="create failed: 404: no namespace nowhere"):
            await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))


@async_test
async def test_api_errors_are_retried_when_transient_and_name_the_object_when_not() -> None:
    async with cluster() as (sb, api):
        store = await KubernetesStore(api, NS, retry_for=2.0).open()
        pipeline, _, _ = await setup(store, ScriptedReceiver("slack"))
        sb.faults.fail(status=503, count=2, match="driftincidents")
        assert await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD)) is not None
        sb.faults.fail(status=403, match="driftincidents")
        with pytest.raises(KubernetesStoreError) as caught:
            await pipeline.handle(event(EventKind.UPDATED, PORT_CHANGED))
        message = str(caught.value)
        assert f"DriftIncident {NS}/{object_name(KEY, 1)}: update failed: 403" in message
        assert "driftwatch needs get, list, create and update on driftincidents" in message
        assert isinstance(caught.value, OSError)
        sb.faults.clear()
        sb.faults.refuse(match="driftincidents")
        quick = KubernetesStore(api, NS, retry_for=0.3)
        with pytest.raises(KubernetesStoreError, match=r"DriftIncidents in namespace driftwatch"):
            await quick.open()
        sb.faults.clear()
        sb.delete_object(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD["metadata"]["name"]
        )
        with pytest.raises(KubernetesStoreError, match=r"install the CRD: kubectl apply -f"):
            await KubernetesStore(api, NS).open()


@async_test
async def test_an_unreadable_object_is_named_and_skipped_the_rest_loads() -> None:
    async with cluster() as (sb, api):
        broken = {
            "apiVersion": "driftwatch.io/v1",
            "kind": "DriftIncident",
            "metadata": {"name": "broken", "namespace": NS},
            "spec": {"id": "x", "cluster": "c", "policyNamespace": "n", "policyName": "p",
                     "number": 1},
            "status": {"state": "open"},
        }  # fmt: skip
        sb.put_object(broken)
        store = await KubernetesStore(api, NS).open()  # a hand-made object stops nobody
        (why,) = store.skipped
        assert why.startswith(f"DriftIncident {NS}/broken: cannot be read as an incident")
        db = PolicyKey("prod", "shop", "db")
        incident = Incident(
            "prod/shop/db#1", db, 1, IncidentState.OPEN, "high", "modified", "fp",
            "2026-11-27T10:00:00.000Z", "2026-11-27T10:00:00.000Z", None, None, {},
        )  # fmt: skip
        await store.save(incident, (), 0.0)
        again = await KubernetesStore(api, NS).open()
        assert (await again.open_incident(db)) == incident
        assert len(again.skipped) == 1


@pytest.mark.kubectl
@needs_kubectl
def test_kubectl_get_driftincidents_shows_the_open_drift(tmp_path: Path) -> None:
    db = PolicyKey("prod", "shop", "db")
    with SandboxThread(namespaces=("default", NS)) as st:
        kubectl = Kubectl(st.kubeconfig_path(tmp_path), tmp_path)
        crd = ROOT / "config" / "kubernetes" / "crd-driftincident.yaml"
        assert "created" in kubectl.run("apply", "-f", str(crd)).stdout
        assert "unchanged" in kubectl.run("apply", "-f", str(crd)).stdout

        async def open_two_resolve_one() -> None:
            async with await api_client(st.sandbox) as api:
                store = await KubernetesStore(api, NS).open()
                pipeline, _, _ = await setup(store, ScriptedReceiver("slack"))
                await pipeline.handle(event(EventKind.OPENED, OPEN_TO_WORLD))
                drift = compare(db, GIT, PORT_CHANGED, ENGINE)
                await pipeline.handle(DriftEvent(EventKind.OPENED, db, drift, None, "w", 1, None))
                fixed = compare(db, GIT, GIT, ENGINE)
                await pipeline.handle(DriftEvent(EventKind.RESOLVED, db, fixed, None, "w", 2, GIT))

        st.run(open_two_resolve_one())  # on the sandbox's loop, beside the server
        lines = kubectl.run("get", "driftincidents", "-n", NS).stdout.splitlines()
        assert lines[0].split() == ["NAME", "STATE", "SEVERITY", "POLICY", "AGE"]
        rows = {line.split()[0]: line.split()[1:4] for line in lines[1:]}
        assert rows[object_name(KEY, 1)] == ["open", "critical", "shop/web"]
        assert rows[object_name(db, 1)][0] == "resolved"
        assert rows[object_name(db, 1)][2] == "shop/db"
        wide = kubectl.run("get", "di", "-n", NS, "-o", "wide", "-l", "driftwatch.io/open=true")
        (row,) = wide.stdout.splitlines()[1:]
        assert row.split()[:7] == [
            object_name(KEY, 1),
            "open",
            "critical",
            "shop/web",
            "modified",
            "1",
            "prod",
        ]
        listed = json.loads(kubectl.run("get", "driftwatch", "-A", "-o", "json").stdout)
        assert len(listed["items"]) == 2
