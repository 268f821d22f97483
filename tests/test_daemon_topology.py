"""The daemon's topology watch end to end, against the sandbox API server over loopback:
pods applied with the real kubectl make a Deployment workload, a policy replaced live opens a
drift whose event and notification body carry the blast radius, a policy selecting no pod is
lowered one level; and a cluster whose pods may not be listed is still watched (no blast
radius, one clear warning, ready as before).

pytest-asyncio is not a dependency: async tests run under ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from driftwatch.daemon.run import Daemon, DaemonTuning
from driftwatch.daemon.testing import RecordingNotifier, start_until_ready
from driftwatch.drift import EventKind, compare, event_json
from driftwatch.live import Backoff, WatchOptions
from driftwatch.notify.body import incident_body
from driftwatch.policy import PolicyKey
from driftwatch.rules import RuleEngine
from driftwatch.sandbox import Sandbox, SandboxThread
from driftwatch.sandbox.kubectl import Kubectl, kubectl_path
from driftwatch.settings import Settings
from tests.aio import async_test

FAST = DaemonTuning(
    grace=2.0,
    watch=WatchOptions(read_timeout=5.0, server_timeout=30.0),
    backoff=Backoff(initial=0.05, maximum=0.5),
)
needs_kubectl = pytest.mark.skipif(kubectl_path() is None, reason="kubectl is not on PATH")
WEB = "prod/web[Deployment]"
WORLD = "0.0.0.0-255.255.255.255[External]"

POLICIES = textwrap.dedent(
    """\
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata:
      name: web-ingress
      namespace: prod
    spec:
      podSelector:
        matchLabels:
          app: web
      policyTypes: [Ingress]
      ingress:
        - from:
            - podSelector:
                matchLabels:
                  app: frontend
          ports:
            - port: 8080
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata:
      name: orphan
      namespace: prod
    spec:
      podSelector:
        matchLabels:
          app: nothing-runs-this
      policyTypes: [Ingress]
      ingress:
        - from:
            - podSelector:
                matchLabels:
                  app: frontend
    """
)

PODS = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Pod
    metadata:
      name: web-5f7c9-x2x7q
      namespace: prod
      labels:
        app: web
        pod-template-hash: 5f7c9
      ownerReferences:
        - apiVersion: apps/v1
          kind: ReplicaSet
          name: web-5f7c9
          uid: 0b6f3d1e-7a51-4f7e-9d7c-1f2a3b4c5d6e
          controller: true
    spec:
      containers:
        - name: web
          image: example/web:1
          ports:
            - containerPort: 8080
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: frontend
      namespace: prod
      labels:
        app: frontend
    spec:
      containers:
        - name: frontend
          image: example/frontend:1
    """
)


def world_open(name: str, app: str) -> str:
    """The policy replaced live: ingress from anywhere."""
    return textwrap.dedent(
        f"""\
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata:
          name: {name}
          namespace: prod
        spec:
          podSelector:
            matchLabels:
              app: {app}
          policyTypes: [Ingress]
          ingress:
            - from:
                - ipBlock:
                    cidr: 0.0.0.0/0
        """
    )


def settings_for(kubeconfig: Path, desired: Path, **cluster: Any) -> Settings:
    return Settings.model_validate(
        {
            "cluster": {"name": "test", "kubeconfig": str(kubeconfig), **cluster},
            "desired": {"path": str(desired)},
        }
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Daemon, RecordingNotifier]]:
    recorder = RecordingNotifier()
    daemon = Daemon(settings, notifiers=[recorder], tuning=FAST)
    task = await start_until_ready(daemon, timeout=20)
    try:
        yield daemon, recorder
    finally:
        daemon.stop()
        await asyncio.wait_for(task, timeout=10)


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def body(event: Any) -> dict[str, Any]:
    """The webhook's body for an event (what every receiver renders from)."""
    return incident_body(
        event,
        kind=str(event.kind),
        incident_id="test/prod/x#1",
        occurred_at="2025-01-01T00:00:00Z",
        opened_at="2025-01-01T00:00:00Z",
        resolved_at=None,
        link=None,
    )


@pytest.mark.kubectl
@needs_kubectl
def test_a_live_change_carries_its_blast_radius_and_an_unused_policy_is_lowered(
    tmp_path: Path,
) -> None:
    desired = tmp_path / "policies"
    desired.mkdir()
    (desired / "prod.yaml").write_text(POLICIES)
    (tmp_path / "pods.yaml").write_text(PODS)
    (tmp_path / "web-world.yaml").write_text(world_open("web-ingress", "web"))
    (tmp_path / "orphan-world.yaml").write_text(world_open("orphan", "nothing-runs-this"))
    namespaces = ("default", "prod")
    with SandboxThread(seed=[desired], namespaces=namespaces, bookmark_interval=0.2) as sandbox:
        kubeconfig = sandbox.kubeconfig_path(tmp_path)
        kubectl = Kubectl(kubeconfig, tmp_path / "home")
        settings = settings_for(kubeconfig, desired)

        async def scenario() -> None:
            async with running(settings) as (daemon, rec):
                assert rec.events == [], "the cluster matches Git: no alert at start-up"
                await asyncio.to_thread(kubectl.run, "apply", "-f", str(tmp_path / "pods.yaml"))
                watcher = daemon.topology_watcher
                assert watcher is not None
                await until(
                    lambda: (
                        watcher.topology is not None
                        and [str(w) for w in watcher.topology.workloads]
                        == ["prod/frontend[Pod]", WEB]
                    )
                )
                assert rec.events == [], "pods alone change no policy"

                await asyncio.to_thread(
                    kubectl.run, "replace", "-f", str(tmp_path / "web-world.yaml")
                )
                opened = await rec.wait_for(EventKind.OPENED, "web-ingress")
                radius = opened.drift.blast_radius
                assert radius is not None
                assert radius.selected == (WEB,)
                gained = {(p.source, p.destination) for p in radius.gained()}
                assert (WORLD, WEB) in gained
                lost = {(p.source, p.destination) for p in radius.lost()}
                assert ("prod/frontend[Pod]", WEB) in lost
                # The console's JSON line and the webhook body (every receiver's source).
                for blast in (
                    event_json(opened)["drift"]["blast_radius"],
                    body(opened)["blast_radius"],
                ):
                    assert blast["selected"] == [WEB]
                    assert blast["selects_no_workload"] is False
                    world = [
                        p for p in blast["pairs"] if (p["source"], p["destination"]) == (WORLD, WEB)
                    ]
                    assert len(world) == 1, blast["pairs"]
                    assert world[0]["ref1"] == "No Connections"
                rules = {f.rule for f in opened.drift.findings}
                assert "ingress-from-world" in rules
                assert "selects-no-workload" not in rules

                await asyncio.to_thread(
                    kubectl.run, "replace", "-f", str(tmp_path / "orphan-world.yaml")
                )
                orphan = await rec.wait_for(EventKind.OPENED, "orphan")
                rules = {f.rule for f in orphan.drift.findings}
                assert "selects-no-workload" in rules
                assert "ingress-from-world" in rules
                without = compare(
                    PolicyKey("test", "prod", "orphan"),
                    orphan.drift.desired,
                    orphan.drift.live,
                    RuleEngine(settings.rules.to_options()),
                )
                assert without.severity is not None
                assert orphan.drift.severity == without.severity.raised(-1)
                assert orphan.drift.severity < without.severity
                blast = body(orphan)["blast_radius"]
                assert blast["selects_no_workload"] is True
                assert blast["pairs"] == []

        asyncio.run(asyncio.wait_for(scenario(), timeout=60))


@async_test(timeout=60)
async def test_pods_forbidden_is_one_warning_and_the_daemon_works_without_blast_radius(
    tmp_path: Path,
) -> None:
    desired = tmp_path / "policies"
    desired.mkdir()
    (desired / "prod.yaml").write_text(POLICIES)
    async with Sandbox(seed=[desired], namespaces=("default", "prod")) as sandbox:
        sandbox.faults.fail(status=403, match="/api/v1/pods")
        settings = settings_for(sandbox.kubeconfig_path(tmp_path), desired)
        with capture_logs() as logs:
            async with running(settings) as (daemon, rec):
                assert daemon.readiness().ready
                await until(lambda: any("cannot watch pods" in e["event"] for e in logs))
                sandbox.put_object(yaml.safe_load(world_open("web-ingress", "web")))
                opened = await rec.wait_for(EventKind.OPENED, "web-ingress")
                assert opened.drift.blast_radius is None
                assert event_json(opened)["drift"]["blast_radius"] is None
        [warning] = [e for e in logs if "cannot watch pods" in e["event"]]
        assert warning["log_level"] == "warning"
        assert "403" in warning["error"]
        assert "list and watch on pods" in warning["error"]
        assert not [e for e in logs if e["log_level"] == "error"], logs


@async_test(timeout=60)
async def test_watch_topology_false_starts_no_topology_watch(tmp_path: Path) -> None:
    desired = tmp_path / "policies"
    desired.mkdir()
    (desired / "prod.yaml").write_text(POLICIES)
    async with Sandbox(seed=[desired], namespaces=("default", "prod")) as sandbox:
        settings = settings_for(sandbox.kubeconfig_path(tmp_path), desired, watch_topology=False)
        async with running(settings) as (daemon, _):
            assert daemon.topology_watcher is None
            assert not [w for w in sandbox.store.watchers if w.rtype.plural == "pods"]
