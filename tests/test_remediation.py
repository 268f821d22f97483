"""Remediation end to end, the daemon against the sandbox API server: a critical drift in a
revert-mode namespace is put back to Git (the incident records ``reverted`` and resolves,
"reverted by driftwatch"), how long that takes, a medium drift in alert mode is left alone,
a competing writer gets a ``revert-loop`` after ``max_reverts`` and is left alone, a dry run
changes nothing, manual reverts, and revert mode without write access fails at start-up.

The bad writes are made with the real kubectl where it matters (``kubectl edit``, ``patch``
and ``apply --server-side`` as a competing writer); the timing uses plain HTTP writes, since
kubectl's own exit comes long after the API server's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import statistics
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from driftwatch.cli.run import serve
from driftwatch.daemon.notifications import Notifications
from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import start_until_ready
from driftwatch.incidents import Incident, IncidentState
from driftwatch.policy import NetworkPolicy, parse_policy
from driftwatch.sandbox import SandboxThread
from driftwatch.sandbox.kubectl import Kubectl
from driftwatch.sandbox.rbac import Denial
from driftwatch.settings import Settings
from tests.standins.webhook import WebhookStandIn
from tests.test_daemon import EDITOR, EXAMPLES, FAST, NP, needs_kubectl

POLICY = "frontend-allow-from-ingress"
CRITICAL_IN_SHOP = {"namespaces": ["shop"], "min_severity": "critical", "mode": "revert"}
REVERTS = 7
"""Reverts timed for the median."""


def git_policy(name: str = POLICY) -> dict[str, Any]:
    for path in sorted((EXAMPLES / "shop").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["metadata"]["name"] == name:
                return dict(doc)
    raise KeyError(name)


def world_open(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with ingress from 0.0.0.0/0 added (critical: ``ingress-from-world``)."""
    bad = copy.deepcopy(obj)
    bad["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    return bad


def live(sandbox: SandboxThread, name: str = POLICY) -> NetworkPolicy | None:
    obj = sandbox.get_object(*NP, name, "shop")
    return None if obj is None else parse_policy(obj)


def in_git(sandbox: SandboxThread, name: str = POLICY) -> bool:
    return live(sandbox, name) == parse_policy(git_policy(name))


async def until(check: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting{': ' + what if what else ''}")
        await asyncio.sleep(0.02)


def settings_for(
    kubeconfig: Path,
    tmp_path: Path,
    hook: WebhookStandIn,
    *,
    console: bool = False,
    **remediation: Any,
) -> Settings:
    receiver = {"name": "out", "type": "console"} if console else hook.receiver_config("hook")
    return Settings.model_validate(
        {
            "cluster": {"name": "test", "kubeconfig": str(kubeconfig), "watch_topology": False},
            "desired": {"path": str(EXAMPLES)},
            "notifiers": [receiver],
            "state": {"path": str(tmp_path / "state.db")},
            "remediation": remediation,
        }
    )


@contextlib.asynccontextmanager
async def remediating(
    sandbox: SandboxThread, tmp_path: Path, *, console: bool = False, **remediation: Any
) -> AsyncIterator[tuple[Daemon, Notifications, WebhookStandIn]]:
    """A daemon watching ``sandbox`` with the examples as Git and ``remediation:``, its
    incidents in SQLite and delivered to a webhook stand-in (or, ``console``, printed)."""
    async with WebhookStandIn() as hook:
        kubeconfig = sandbox.kubeconfig_path(tmp_path)
        settings = settings_for(kubeconfig, tmp_path, hook, console=console, **remediation)
        notifications = await Notifications.open(settings, log=structlog.get_logger("test"))
        daemon = Daemon(settings, notifiers=[], tuning=FAST, notifications=notifications)
        task = await start_until_ready(daemon, timeout=20)
        try:
            yield daemon, notifications, hook
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=10)
            await notifications.close()


async def incident(notifications: Notifications, number: int, name: str = POLICY) -> Incident:
    found = await notifications.store.get(f"test/shop/{name}#{number}")
    assert found is not None
    return found


def actions(found: Incident) -> list[tuple[str, str]]:
    return [(a["action"], a["actor"]) for a in found.body.get("actions", [])]


def reasons(hook: WebhookStandIn, kind: str) -> list[str]:
    return [d.raw["body"]["reason"] for d in hook.delivered if d.kind == kind]


# ---------------------------------------------------------------------------------------------


@pytest.mark.kubectl
@needs_kubectl
def test_a_critical_drift_in_revert_mode_is_reverted_and_the_incident_resolves(
    tmp_path: Path,
) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        kubectl = Kubectl(sandbox.kubeconfig_path(tmp_path), tmp_path / "home")

        async def scenario() -> None:
            async with remediating(sandbox, tmp_path, matchers=[CRITICAL_IN_SHOP]) as (
                daemon,
                notifications,
                hook,
            ):
                env = kubectl.env(KUBE_EDITOR=f"{sys.executable} {editor}")
                await asyncio.to_thread(
                    kubectl.run, "-n", "shop", "edit", f"networkpolicy/{POLICY}", env=env
                )
                await until(lambda: "resolved" in [d.kind for d in hook.delivered])
                assert in_git(sandbox), "the live policy equals Git again"
                found = await incident(notifications, 1)
                assert found.state is IncidentState.RESOLVED
                assert found.body["reason"] == "reverted by driftwatch"
                assert actions(found) == [("reverted", "driftwatch")]
                (recorded,) = found.body["actions"]
                assert "over the change by kubectl-edit" in recorded["reason"]
                assert daemon.remediator.stats.reverted == 1
                # The revert is announced (unless the resolve won the race: it says so too).
                updated = reasons(hook, "updated")
                assert all(r.startswith("reverted by driftwatch at ") for r in updated)
                assert [d.kind for d in hook.delivered] in (
                    ["opened", "updated", "resolved"],
                    ["opened", "resolved"],
                )
                origin = live(sandbox)
                assert origin is not None
                assert origin.origin is not None
                assert sandbox.changes()[-1].manager == "driftwatch"

        asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def test_revert_time_from_the_bad_write_to_the_policy_back_in_git(tmp_path: Path) -> None:
    """The median over several reverts, from the moment the bad write's answer arrives to
    the sandbox's commit of the write that makes the policy equal Git again (stamped in the
    sandbox's thread, on the same clock; ``pytest -s`` prints it)."""
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        url = f"{sandbox.url}/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/{POLICY}"
        commits: list[float] = []

        def stamp_commits() -> None:
            store = sandbox.sandbox.store
            commit = store.commit

            def stamped(*args: Any, **kwargs: Any) -> Any:
                try:
                    return commit(*args, **kwargs)
                finally:
                    commits.append(time.perf_counter())

            store.commit = stamped  # type: ignore[method-assign]

        sandbox.call(stamp_commits)

        def bad_write_then_wait() -> float:
            current = sandbox.get_object(*NP, POLICY, "shop")
            assert current is not None
            body = json.dumps(world_open(current)).encode()
            request = urllib.request.Request(  # noqa: S310 - the sandbox's http:// URL
                f"{url}?fieldManager=kubectl-edit",
                data=body,
                method="PUT",
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                assert answer.status == 200
            answered = time.perf_counter()
            deadline = answered + 10
            while not in_git(sandbox):
                assert time.perf_counter() < deadline, "not reverted within 10 s"
                time.sleep(0.01)
            return commits[-1] - answered  # the last write made it equal Git

        async def scenario() -> list[float]:
            times = []
            # One key reverted 7 times in a row: no loop limit for this one. Notifications
            # go to the console: a receiver served on this loop would compete with the revert.
            async with remediating(
                sandbox, tmp_path, console=True, matchers=[CRITICAL_IN_SHOP], max_reverts=100
            ) as (daemon, notifications, _):
                for n in range(1, REVERTS + 1):
                    times.append(await asyncio.to_thread(bad_write_then_wait))

                    async def resolved(n: int = n) -> bool:
                        return (await incident(notifications, n)).state is IncidentState.RESOLVED

                    deadline = time.monotonic() + 10
                    while not await resolved():
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.02)
                    await asyncio.sleep(0.2)  # the revert's notifications go out meanwhile
                assert daemon.remediator.stats.reverted == REVERTS
                assert daemon.remediator.stats.loops == 0
            return times

        times = asyncio.run(asyncio.wait_for(scenario(), timeout=90))
    median = statistics.median(times) * 1000
    print(
        f"\nrevert time (bad write answered -> policy back in Git), {len(times)} reverts:"
        f" median {median:.1f} ms, min {min(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms"
    )
    assert median < 1000


@pytest.mark.kubectl
@needs_kubectl
def test_a_medium_drift_in_alert_mode_is_left_alone(tmp_path: Path) -> None:
    name = "backend-allow-from-frontend"  # a port added: ports-widened, medium
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        kubectl = Kubectl(sandbox.kubeconfig_path(tmp_path), tmp_path / "home")

        async def scenario() -> None:
            async with remediating(sandbox, tmp_path, matchers=[CRITICAL_IN_SHOP]) as (
                daemon,
                notifications,
                hook,
            ):
                await asyncio.to_thread(
                    kubectl.run, "-n", "shop", "patch", "networkpolicy", name, "--type=json",
                    "-p", json.dumps([{"op": "add", "path": "/spec/ingress/0/ports/-",
                                       "value": {"port": 8081}}]),
                )  # fmt: skip
                await until(lambda: [d.kind for d in hook.delivered] == ["opened"])
                await asyncio.sleep(1.0)  # a revert would have come by now
                assert not in_git(sandbox, name)
                found = await incident(notifications, 1, name)
                assert found.is_open
                assert found.severity == "medium"
                assert actions(found) == []
                assert daemon.remediator.stats.reverted == 0
                assert sandbox.changes()[-1].manager == "kubectl-patch"

        asyncio.run(asyncio.wait_for(scenario(), timeout=60))


@pytest.mark.kubectl
@needs_kubectl
def test_a_competing_writer_gets_a_revert_loop_and_is_then_left_alone(tmp_path: Path) -> None:
    rogue = tmp_path / "rogue.yaml"
    rogue.write_text(yaml.safe_dump(world_open(git_policy())))
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        kubectl = Kubectl(sandbox.kubeconfig_path(tmp_path), tmp_path / "home")

        def competing_writer() -> int:
            """Re-apply the change (server-side, its own field manager) whenever it was
            reverted; return how many times it had to, once it stays for 2 s."""
            applied = 0
            while applied < 10:
                kubectl.run(
                    "apply", "--server-side", "--force-conflicts",
                    "--field-manager=rogue-operator", "-f", str(rogue),
                )  # fmt: skip
                applied += 1
                deadline = time.monotonic() + 2.0
                while not in_git(sandbox) and time.monotonic() < deadline:
                    time.sleep(0.01)
                if not in_git(sandbox):
                    return applied
            return applied

        async def scenario() -> None:
            async with remediating(
                sandbox, tmp_path, matchers=[CRITICAL_IN_SHOP], max_reverts=3, window="10m"
            ) as (daemon, notifications, hook):
                applied = await asyncio.to_thread(competing_writer)
                assert applied == 4, "reverted 3 times, then left alone"
                stats = daemon.remediator.stats
                await until(lambda: stats.loops == 1, what="the revert loop recorded")
                assert stats.reverted == 3
                last = await incident(notifications, 4)
                assert last.is_open
                assert actions(last) == [("revert-loop", "driftwatch")]
                (loop,) = last.body["actions"]
                assert "by rogue-operator" in loop["reason"]
                assert "reverted 3 times within 10m" in loop["reason"]
                assert last.severity == "critical"  # the fight needs a person
                [finding] = [f for f in last.body["findings"] if f["rule"] == "revert-loop"]
                assert finding["severity"] == "critical"
                assert "rogue-operator" in finding["message"]
                for n in (1, 2, 3):
                    earlier = await incident(notifications, n)
                    assert earlier.body["reason"] == "reverted by driftwatch"
                await until(lambda: any("revert loop" in r for r in reasons(hook, "updated")))
                await asyncio.sleep(1.0)  # the writer's change stays, notified once
                assert not in_git(sandbox)
                assert sum("revert loop" in r for r in reasons(hook, "updated")) == 1
                assert stats.reverted == 3
                assert sandbox.changes()[-1].manager == "rogue-operator"

        asyncio.run(asyncio.wait_for(scenario(), timeout=90))


def test_an_unmanaged_policy_is_deleted_and_fields_apply_leaves_are_swept(tmp_path: Path) -> None:
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:

        async def scenario() -> None:
            async with remediating(sandbox, tmp_path, matchers=[CRITICAL_IN_SHOP]) as (
                daemon,
                notifications,
                _,
            ):
                rogue = world_open(git_policy())
                rogue["metadata"]["name"] = "rogue-allow-all"
                sandbox.put_object(rogue, manager="helm")
                await until(lambda: sandbox.get_object(*NP, "rogue-allow-all", "shop") is None)
                await until(lambda: daemon.remediator.stats.reverted == 1)
                # A label and an egress rule Git does not have, and a world-open ingress:
                # server-side apply takes ingress over, a merge patch removes the rest.
                bad = world_open(git_policy())
                bad["metadata"]["labels"]["owner"] = "someone"
                bad["spec"]["egress"] = [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]
                bad["spec"]["policyTypes"] = ["Ingress", "Egress"]
                sandbox.put_object(bad, manager="kubectl-edit")
                await until(lambda: in_git(sandbox))
                await until(lambda: daemon.remediator.stats.reverted == 2)

                async def both_resolved() -> bool:
                    found = [
                        await incident(notifications, 1, "rogue-allow-all"),
                        await incident(notifications, 1),
                    ]
                    return all(f.state is IncidentState.RESOLVED for f in found)

                deadline = time.monotonic() + 10
                while not await both_resolved():
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                deleted = await incident(notifications, 1, "rogue-allow-all")
                assert deleted.body["reason"] == "reverted by driftwatch"
                assert (
                    "deleted the policy, which is not in Git (written by helm)"
                    in (deleted.body["actions"][0]["reason"])
                )
                swept = await incident(notifications, 1)
                assert swept.body["reason"] == "reverted by driftwatch"
                assert [c.manager for c in sandbox.changes()[-2:]] == ["driftwatch"] * 2
                await asyncio.sleep(0.5)  # its own two writes are not taken for a drift
                assert daemon.remediator.stats.reverted == 2
                assert daemon.remediator.stats.loops == 0

        asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def test_dry_run_changes_nothing_but_records_what_it_would_do(tmp_path: Path) -> None:
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        # No write access at all: a dry run does not need it.
        writes = [Denial(verb, "networkpolicies") for verb in ("patch", "create", "delete")]
        sandbox.call(sandbox.sandbox.rbac.deny, writes)

        async def scenario() -> None:
            async with remediating(
                sandbox, tmp_path, matchers=[CRITICAL_IN_SHOP], dry_run=True
            ) as (daemon, notifications, hook):
                bad = world_open(git_policy())
                sandbox.put_object(bad, manager="kubectl-edit")
                await until(lambda: daemon.remediator.stats.dry_runs == 1)
                await until(lambda: len(reasons(hook, "updated")) == 1)
                await asyncio.sleep(0.5)
                assert not in_git(sandbox)
                found = await incident(notifications, 1)
                assert found.is_open
                assert actions(found) == [("reverted", "driftwatch (dry run)")]
                (updated,) = reasons(hook, "updated")
                assert "dry run, nothing was changed" in updated
                assert "would have re-applied Git's version over the change by kubectl-edit" in (
                    updated
                )
                assert daemon.remediator.stats.reverted == 0
                assert sandbox.changes()[-1].manager == "kubectl-edit"

        asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def test_a_manual_revert_works_in_alert_mode_and_says_who(tmp_path: Path) -> None:
    name = "db-allow-from-backend"
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:

        async def scenario() -> None:
            async with remediating(sandbox, tmp_path) as (daemon, notifications, hook):
                sandbox.delete_object(*NP, name, "shop")  # missing: recreated
                await until(lambda: [d.kind for d in hook.delivered] == ["opened"])
                found = await daemon.revert(f"test/shop/{name}#1", actor="alice", reason="INC-7")
                assert actions(found) == [("reverted", "alice")]
                assert found.body["actions"][0]["reason"] == (
                    "INC-7 (recreated the policy from Git)"
                )
                await until(lambda: in_git(sandbox, name))
                await until(lambda: "resolved" in [d.kind for d in hook.delivered])
                resolved = await incident(notifications, 1, name)
                assert resolved.body["reason"] == "reverted by driftwatch"
                with pytest.raises(Exception, match="is resolved"):
                    await daemon.revert(f"test/shop/{name}#1", actor="alice")
                with pytest.raises(LookupError, match="no such incident"):
                    await daemon.revert("test/shop/nothing#1", actor="alice")

        asyncio.run(asyncio.wait_for(scenario(), timeout=60))


@pytest.mark.parametrize(
    ("matcher", "denied", "expected"),
    [
        (
            CRITICAL_IN_SHOP,
            [Denial("patch", "networkpolicies")],
            "denies driftwatch patch (in shop)",
        ),
        (
            {"namespaces": ["shop-*"], "mode": "revert"},
            [Denial("create", "networkpolicies", "payments"), Denial("delete", "networkpolicies")],
            "reverts cluster-wide (a matcher has mode revert), but the API server denies"
            " driftwatch create, delete on networkpolicies",
        ),
    ],
    ids=["literal-namespace", "glob-cluster-wide"],
)
def test_revert_mode_without_write_access_fails_at_start_up_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    matcher: dict[str, Any],
    denied: list[Denial],
    expected: str,
) -> None:
    with SandboxThread(seed=[EXAMPLES]) as sandbox:
        sandbox.call(sandbox.sandbox.rbac.deny, denied)

        async def scenario() -> int:
            async with WebhookStandIn() as hook:
                settings = settings_for(
                    sandbox.kubeconfig_path(tmp_path), tmp_path, hook, matchers=[matcher]
                )
                daemon = Daemon(settings, notifiers=[], tuning=FAST)
                return await serve(daemon)

        status = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    line = next(line for line in err if line.startswith("driftwatch: error:"))
    assert expected in line
    assert "remediation-clusterrolebinding.yaml" in line
    assert "remediation.dry_run: true" in line


def test_without_revert_matchers_no_access_is_asked(tmp_path: Path) -> None:
    with SandboxThread(seed=[EXAMPLES]) as sandbox:
        sandbox.call(sandbox.sandbox.rbac.deny, [Denial("patch", "networkpolicies")])

        async def scenario() -> None:
            async with remediating(sandbox, tmp_path, matchers=[{"mode": "alert"}]) as (d, _, _):
                assert d.remediator.stats == type(d.remediator.stats)()

        asyncio.run(asyncio.wait_for(scenario(), timeout=30))
