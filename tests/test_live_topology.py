"""The topology watcher against the real sandbox API server over loopback: pods grouped by
their top-level owner, namespace labels, coalescing, 410 relists, and what happens without
the RBAC to list namespaces or pods. Nothing in kubernetes_asyncio or aiohttp is patched.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from structlog.testing import CapturingLogger

from driftwatch.live import Backoff, LiveAccessError, TopologyWatcher, WatchOptions, connect
from driftwatch.sandbox import Sandbox
from driftwatch.topology import METADATA_NAME, Topology
from tests.aio import async_test

FAST = WatchOptions(page_size=3, server_timeout=30, read_timeout=2.0)
QUICK = Backoff(initial=0.01, maximum=0.05, factor=2.0, jitter=0.5)
POD = ("v1", "Pod")
NS = ("v1", "Namespace")
WEB = "prod/web[Deployment]"


def pod(
    name: str,
    ns: str = "prod",
    *,
    owner: tuple[str, str] | None = None,
    labels: dict[str, str] | None = None,
    phase: str | None = None,
    protocol: str = "TCP",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": dict(labels or {})}
    if owner is not None:
        kind, owner_name = owner
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1" if kind != "Job" else "batch/v1",
                "kind": kind,
                "name": owner_name,
                "uid": f"uid-{owner_name}",
                "controller": True,
            }
        ]
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "example/app:1",
                    "ports": [{"containerPort": 8080, "protocol": protocol, "name": "http"}],
                }
            ]
        },
    }
    if phase is not None:
        body["status"] = {"phase": phase}
    return body


def web_pod(name: str, app: str = "web") -> dict[str, Any]:
    """A pod of Deployment ``web`` (through its ReplicaSet ``web-5f7c9``)."""
    return pod(
        name,
        owner=("ReplicaSet", "web-5f7c9"),
        labels={"app": app, "pod-template-hash": "5f7c9"},
    )


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


class Recorder:
    """Consumes ``watcher.events()`` in a task; keeps every topology and when it came."""

    def __init__(self, watcher: TopologyWatcher) -> None:
        self.watcher = watcher
        self.topologies: list[Topology] = []
        self.times: list[float] = []
        self.error: BaseException | None = None

    async def pump(self) -> None:
        try:
            async with contextlib.aclosing(self.watcher.events()) as stream:
                async for topology in stream:
                    self.topologies.append(topology)
                    self.times.append(time.monotonic())
        except Exception as error:
            self.error = error

    @property
    def last(self) -> Topology:
        return self.topologies[-1]

    def names(self) -> list[str]:
        return [str(w) for w in self.last.workloads]

    async def wait(self, predicate: Callable[[], bool], timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.error is not None:
                raise self.error
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; last: {self.topologies[-1:]}")
            await asyncio.sleep(0.01)

    async def quiet(self, seconds: float = 0.4) -> None:
        """Nothing new for ``seconds``."""
        count = len(self.topologies)
        await asyncio.sleep(seconds)
        assert len(self.topologies) == count, self.topologies[count:]


@contextlib.asynccontextmanager
async def watching(sb: Sandbox, **kwargs: Any) -> AsyncIterator[Recorder]:
    kwargs.setdefault("options", FAST)
    kwargs.setdefault("backoff", QUICK)
    kwargs.setdefault("log", CapturingLogger())
    kwargs.setdefault("rng", random.Random(7))  # noqa: S311  (reproducible jitter)
    api = await connect(sb.kubeconfig_path())
    async with api:
        recorder = Recorder(TopologyWatcher(api, **kwargs))
        task = asyncio.create_task(recorder.pump())
        try:
            yield recorder
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def sandbox() -> Sandbox:
    return Sandbox(bookmark_interval=0.05, namespaces=("default", "prod", "shop"))


def warnings(rec: Recorder, event: str) -> list[Any]:
    log = rec.watcher._log
    assert isinstance(log, CapturingLogger)
    return [c for c in log.calls if c.method_name == "warning" and c.args == (event,)]


@async_test(timeout=40)
async def test_pods_are_grouped_by_top_level_owner_and_namespace_labels_followed() -> None:
    async with sandbox() as sb:
        sb.put_object(namespace("prod", team="payments"))
        for name in ("web-5f7c9-a", "web-5f7c9-b"):
            sb.put_object(web_pod(name))
        sb.put_object(pod("debug", "shop", labels={"app": "debug"}))
        sb.put_object(pod("report-x", "shop", owner=("Job", "report"), phase="Succeeded"))
        sb.put_object(pod("odd", "shop", protocol="ICMP"))  # cannot be read: left out
        async with watching(sb) as rec:
            await rec.wait(lambda: bool(rec.topologies))
            first = rec.last
            assert rec.names() == [WEB, "shop/debug[Pod]"]  # one workload for two pods
            web = first.workloads[0]
            assert dict(web.labels) == {"app": "web", "pod-template-hash": "5f7c9"}
            assert web.named_port("http") is not None
            assert first.namespace_labels("prod") == {"team": "payments", METADATA_NAME: "prod"}
            [odd] = warnings(rec, "cannot read a pod; leaving it out of the topology")
            assert odd.kwargs["namespace"] == "shop"
            assert odd.kwargs["name"] == "odd"
            assert "protocol" in odd.kwargs["error"]

            # The Deployment stays while one of its pods is left; the odd pod stays out,
            # and is not reported again for the same reason.
            sb.delete_object(*POD, "web-5f7c9-a", "prod")
            odd_pod = pod("odd", "shop", protocol="ICMP")
            odd_pod["metadata"]["labels"] = {"touched": "yes"}
            sb.put_object(odd_pod)
            await rec.quiet()
            assert len(rec.topologies) == 1
            assert len(warnings(rec, "cannot read a pod; leaving it out of the topology")) == 1

            # A new pod template (a rollout): the workload's labels follow the newest pod.
            sb.put_object(web_pod("web-5f7c9-c", app="web-v2"))
            await rec.wait(lambda: dict(rec.last.workloads[0].labels).get("app") == "web-v2")
            assert rec.names() == [WEB, "shop/debug[Pod]"]

            # The last pods go: so does the workload.
            sb.delete_object(*POD, "web-5f7c9-b", "prod")
            sb.delete_object(*POD, "web-5f7c9-c", "prod")
            await rec.wait(lambda: rec.names() == ["shop/debug[Pod]"])

            # A namespace label change is a new topology.
            sb.put_object(namespace("shop", env="staging"))
            await rec.wait(lambda: rec.last.namespace_labels("shop").get("env") == "staging")
            assert "team" not in rec.last.namespace_labels("shop")

            # A pod that finished stops counting; a lone pod is a workload of its own.
            done = pod("debug", "shop", labels={"app": "debug"})
            sb.delete_object(*POD, "debug", "shop")
            sb.put_object({**done, "status": {"phase": "Failed"}})
            await rec.wait(lambda: rec.names() == [])
            assert rec.error is None


@async_test(timeout=40)
async def test_bursts_are_coalesced_to_one_topology_per_interval() -> None:
    async with sandbox() as sb, watching(sb, coalesce=0.1) as rec:
        await rec.wait(lambda: bool(rec.topologies))
        assert rec.names() == []
        began = time.monotonic()
        for i in range(30):
            sb.put_object(pod(f"lone-{i:02}", "shop"))
            await asyncio.sleep(0.01)
        burst = time.monotonic() - began
        await rec.wait(lambda: len(rec.names()) == 30)
        await rec.quiet(0.3)
        gaps = [b - a for a, b in zip(rec.times[1:], rec.times[2:], strict=False)]
        assert all(gap >= 0.09 for gap in gaps), gaps
        # 30 changes: one topology per 100 ms of the burst (and one for its tail), not 30.
        assert 1 <= len(rec.topologies) - 1 <= burst / 0.1 + 2, (len(rec.topologies), burst)
        assert rec.watcher.stats.emitted["Topology"] == len(rec.topologies)


@async_test(timeout=40)
async def test_a_410_relists_pods_and_namespaces_and_yields_the_difference() -> None:
    async with sandbox() as sb:
        sb.put_object(web_pod("web-5f7c9-a"))
        sb.put_object(pod("gone", "shop"))
        async with watching(sb) as rec:
            await rec.wait(lambda: bool(rec.topologies))
            assert rec.names() == [WEB, "shop/gone[Pod]"]
            await sb.wait_for_watchers(1, resource="pods")
            # Disconnected while things change, and the history compacted away.
            sb.faults.refuse()
            sb.faults.cut_watches(abrupt=True)
            await rec.wait(lambda: sum(rec.watcher.stats.restarts.values()) >= 2)
            sb.delete_object(*POD, "gone", "shop")
            sb.put_object(pod("new", "shop"))
            sb.put_object(namespace("prod", tier="gold"))
            sb.faults.compact()
            sb.faults.clear()
            await rec.wait(lambda: rec.names() == [WEB, "shop/new[Pod]"])
            await rec.wait(lambda: rec.last.namespace_labels("prod").get("tier") == "gold")
            assert rec.watcher.stats.relists >= 2  # pods and namespaces
            assert rec.watcher.stats.restarts["expired"] >= 2
            # And an HTTP 410 on a fresh watch relists too.
            relists = rec.watcher.stats.relists
            sb.faults.fail(status=410, count=1, match="/api/v1/pods")
            sb.faults.cut_watches()
            await rec.wait(lambda: rec.watcher.stats.relists > relists)
            sb.put_object(pod("after", "shop"))
            await rec.wait(lambda: "shop/after[Pod]" in rec.names())


@async_test(timeout=40)
async def test_namespaces_forbidden_leaves_implicit_labels_and_one_warning() -> None:
    async with sandbox() as sb:
        sb.put_object(namespace("prod", team="payments"))
        sb.put_object(web_pod("web-5f7c9-a"))
        sb.faults.fail(status=403, match="/api/v1/namespaces")
        async with watching(sb) as rec:
            await rec.wait(lambda: bool(rec.topologies))
            assert rec.names() == [WEB]
            assert rec.last.namespace_labels("prod") == {METADATA_NAME: "prod"}
            assert rec.watcher.namespaces_forbidden
            [warning] = warnings(
                rec,
                "cannot list namespaces; namespace selectors see only the"
                " kubernetes.io/metadata.name label",
            )
            assert "403" in warning.kwargs["error"]
            assert "namespaces" in warning.kwargs["error"]
            sb.put_object(pod("lone", "shop"))
            await rec.wait(lambda: rec.names() == [WEB, "shop/lone[Pod]"])
            assert rec.watcher.health.connected


@async_test(timeout=40)
async def test_namespaces_forbidden_later_drops_their_labels_and_pods_go_on() -> None:
    async with sandbox() as sb:
        sb.put_object(namespace("prod", team="payments"))
        async with watching(sb) as rec:
            await rec.wait(lambda: bool(rec.topologies))
            assert rec.last.namespace_labels("prod")["team"] == "payments"
            await sb.wait_for_watchers(1, resource="namespaces")
            sb.faults.fail(status=403, match="/api/v1/namespaces")
            sb.faults.cut_watches()
            await rec.wait(lambda: "team" not in rec.last.namespace_labels("prod"))
            assert rec.watcher.namespaces_forbidden
            sb.put_object(pod("lone", "shop"))
            await rec.wait(lambda: rec.names() == ["shop/lone[Pod]"])
            assert rec.error is None


@async_test(timeout=40)
async def test_forbidden_pods_end_the_stream_with_the_rbac_needed() -> None:
    async with sandbox() as sb:
        sb.faults.fail(status=403, match="/pods")
        async with watching(sb, namespaces=("prod", "shop")) as rec:
            await rec.wait(lambda: rec.error is not None)
        assert isinstance(rec.error, LiveAccessError)
        message = str(rec.error)
        assert "forbids listing pods in namespace prod" in message
        assert "list and watch on pods in namespaces prod, shop" in message
        assert rec.topologies == []


@async_test(timeout=40)
async def test_a_namespace_restriction_watches_only_those_pods() -> None:
    async with sandbox() as sb:
        sb.put_object(web_pod("web-5f7c9-a"))
        sb.put_object(pod("lone", "shop"))
        async with watching(sb, namespaces=("prod",)) as rec:
            await rec.wait(lambda: bool(rec.topologies))
            assert rec.names() == [WEB]
            sb.put_object(pod("other", "shop"))
            sb.put_object(pod("mine", "prod"))
            await rec.wait(lambda: rec.names() == ["prod/mine[Pod]", WEB])
            assert set(rec.last.namespaces) >= {"default", "prod", "shop"}


@async_test
async def test_events_runs_once_at_a_time_and_arguments_are_checked() -> None:
    async with sandbox() as sb, watching(sb) as rec:
        await rec.wait(lambda: bool(rec.topologies))
        with pytest.raises(RuntimeError, match="already running"):
            await anext(rec.watcher.events())
        api = await connect(sb.kubeconfig_path())
        async with api:
            with pytest.raises(TypeError, match="not a string"):
                TopologyWatcher(api, namespaces="prod")
            with pytest.raises(ValueError, match="coalesce"):
                TopologyWatcher(api, coalesce=-1)
