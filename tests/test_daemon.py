"""The daemon end to end, against the sandbox API server over loopback: a change made with
the real kubectl opens exactly one drift naming kubectl's field manager, re-applying Git
resolves it exactly once, a Git commit that matches the cluster resolves it too, a broken
commit keeps the last good desired state, and `driftwatch run` / `driftwatch demo` behave
as commands (exit statuses, SIGTERM within 5 s).

pytest-asyncio is not a dependency: async tests run under ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ParamSpec

import pytest
import yaml
from structlog.testing import capture_logs

from driftwatch.daemon.run import Daemon, DaemonTuning
from driftwatch.daemon.testing import RecordingNotifier, start_until_ready
from driftwatch.drift import EventKind
from driftwatch.live import Backoff, WatchOptions
from driftwatch.sandbox import Sandbox, SandboxThread
from driftwatch.sandbox.kubectl import Kubectl, kubectl_path
from driftwatch.settings import Settings
from tests.aio import async_test

P = ParamSpec("P")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "config" / "examples" / "policies"
NP = ("networking.k8s.io/v1", "NetworkPolicy")
FAST = DaemonTuning(
    grace=2.0,
    watch=WatchOptions(read_timeout=5.0, server_timeout=30.0),
    backoff=Backoff(initial=0.05, maximum=0.5),
)
needs_kubectl = pytest.mark.skipif(kubectl_path() is None, reason="kubectl is not on PATH")
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not on PATH")


def settings_for(kubeconfig: Path, desired: dict[str, Any], **extra: Any) -> Settings:
    return Settings.model_validate(
        {"cluster": {"name": "test", "kubeconfig": str(kubeconfig)}, "desired": desired, **extra}
    )


def without_topology(settings: Settings) -> Settings:
    """``settings`` with ``cluster.watch_topology`` off, for tests that count the open
    watches (the daemon's pod and namespace watches would be cut and counted too)."""
    cluster = settings.cluster.model_copy(update={"watch_topology": False})
    return settings.model_copy(update={"cluster": cluster})


@contextlib.asynccontextmanager
async def running(
    settings: Settings, *, tuning: DaemonTuning = FAST, git_cache: Path | None = None
) -> AsyncIterator[tuple[Daemon, RecordingNotifier]]:
    recorder = RecordingNotifier()
    daemon = Daemon(settings, notifiers=[recorder], tuning=tuning, git_cache=git_cache)
    task = await start_until_ready(daemon, timeout=20)
    try:
        yield daemon, recorder
    finally:
        daemon.stop()
        await asyncio.wait_for(task, timeout=10)


def shop_policy(name: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all((EXAMPLES / "shop" / "frontend.yaml").read_text()):
        if doc["metadata"]["name"] == name:
            return dict(doc)
    raise KeyError(name)


# ---------------------------------------------------------------------------------------------
# The real kubectl


@contextlib.contextmanager
def kubectl_and_daemon_settings(tmp_path: Path) -> Iterator[tuple[Kubectl, Settings]]:
    """A sandbox holding the examples (in a thread, for the blocking kubectl runs), a kubectl
    for it, and the settings of a daemon that watches it with the examples as Git."""
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        kubeconfig = sandbox.kubeconfig_path(tmp_path)
        yield (
            Kubectl(kubeconfig, tmp_path / "home"),
            settings_for(kubeconfig, {"path": str(EXAMPLES)}),
        )


EDITOR = textwrap.dedent(
    """\
    import sys, yaml
    path = sys.argv[-1]
    with open(path) as f:
        obj = yaml.safe_load(f)
    obj["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    with open(path, "w") as f:
        yaml.safe_dump(obj, f)
    """
)


@pytest.mark.kubectl
@needs_kubectl
def test_kubectl_edit_opens_one_drift_and_reapplying_git_resolves_it(tmp_path: Path) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    with kubectl_and_daemon_settings(tmp_path) as (kubectl, settings):

        async def scenario() -> None:
            async with running(settings) as (_, rec):
                assert rec.events == [], "the seeded cluster matches Git: no alert at start-up"
                env = kubectl.env(KUBE_EDITOR=f"{sys.executable} {editor}")
                await asyncio.to_thread(
                    kubectl.run,
                    "-n",
                    "shop",
                    "edit",
                    "networkpolicy/frontend-allow-from-ingress",
                    env=env,
                )
                opened = await rec.wait_for(EventKind.OPENED, "frontend-allow-from-ingress")
                assert opened.origin is not None
                assert opened.origin.manager == "kubectl-edit"
                rules = {f.rule for f in opened.drift.findings}
                assert "ingress-from-world" in rules
                assert str(opened.drift.severity) == "critical"
                assert opened.drift.source is not None
                assert opened.drift.source.path.endswith("shop/frontend.yaml")

                await asyncio.to_thread(
                    kubectl.run, "apply", "-f", str(EXAMPLES / "shop" / "frontend.yaml")
                )
                resolved = await rec.wait_for(EventKind.RESOLVED, "frontend-allow-from-ingress")
                assert resolved.reason == "live matches Git again"
                assert resolved.origin is not None
                assert resolved.origin.manager == "kubectl-client-side-apply"
                # `kubectl apply` also rewrote the unchanged sibling policy: nothing for it,
                # and nothing more for this one.
                await asyncio.sleep(0.5)
                assert [(e.kind, e.key.name) for e in rec.events] == [
                    (EventKind.OPENED, "frontend-allow-from-ingress"),
                    (EventKind.RESOLVED, "frontend-allow-from-ingress"),
                ]

        asyncio.run(asyncio.wait_for(scenario(), timeout=60))


@pytest.mark.kubectl
@needs_kubectl
def test_kubectl_patch_and_delete_name_their_managers(tmp_path: Path) -> None:
    with kubectl_and_daemon_settings(tmp_path) as (kubectl, settings):

        async def scenario() -> None:
            async with running(settings) as (_, rec):
                await asyncio.to_thread(
                    kubectl.run,
                    "-n",
                    "shop",
                    "patch",
                    "networkpolicy",
                    "db-allow-from-backend",
                    "--type=merge",
                    "-p",
                    '{"spec": {"podSelector": {"matchLabels": null}}}',
                )
                opened = await rec.wait_for(EventKind.OPENED, "db-allow-from-backend")
                assert opened.origin is not None
                assert opened.origin.manager == "kubectl-patch"
                assert "target-broadened" in {f.rule for f in opened.drift.findings}
                await asyncio.to_thread(
                    kubectl.run, "-n", "shop", "delete", "networkpolicy", "default-deny"
                )
                missing = await rec.wait_for(EventKind.OPENED, "default-deny")
                assert str(missing.drift.status) == "missing"
                assert {f.rule for f in missing.drift.findings} >= {
                    "policy-missing",
                    "default-deny-removed",
                }

        asyncio.run(asyncio.wait_for(scenario(), timeout=60))


# ---------------------------------------------------------------------------------------------
# Python-driven changes, Git


@async_test(timeout=60)
async def test_a_policy_written_differently_but_equivalent_is_updated_not_reopened(
    tmp_path: Path,
) -> None:
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        kubeconfig = sandbox.kubeconfig_path(tmp_path)
        async with running(settings_for(kubeconfig, {"path": str(EXAMPLES)})) as (_, rec):
            world = shop_policy("frontend-allow-from-ingress")
            world["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
            sandbox.put_object(world, manager="kubectl-edit")
            await rec.wait_for(EventKind.OPENED, "frontend-allow-from-ingress")
            # Narrowed to a private range: still drifted, less severe: one `updated`.
            private = shop_policy("frontend-allow-from-ingress")
            private["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]})
            sandbox.put_object(private, manager="kubectl-edit")
            updated = await rec.wait_for(EventKind.UPDATED, "frontend-allow-from-ingress")
            assert updated.previous is not None
            assert updated.drift.severity is not None
            assert updated.previous.severity is not None
            assert updated.drift.severity < updated.previous.severity
            # A metadata-only write (same content, new resourceVersion) produces nothing.
            sandbox.put_object(private, manager="kubectl-edit")
            await asyncio.sleep(0.4)
            assert len(rec.events) == 2


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    out = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.strip()


@pytest.mark.git
@needs_git
@async_test(timeout=60)
async def test_a_git_commit_that_matches_the_cluster_resolves_and_a_broken_one_is_kept_out(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "policies")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "initial")
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        kubeconfig = sandbox.kubeconfig_path(tmp_path)
        desired = {
            "git": {"url": str(repo), "ref": "main", "path": "policies", "poll_interval": 60}
        }
        settings = settings_for(kubeconfig, desired)
        async with running(settings, git_cache=tmp_path / "cache") as (daemon, rec):
            first = daemon.desired_commit
            wider = shop_policy("frontend-allow-from-ingress")
            wider["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]})
            sandbox.put_object(wider, manager="kubectl-edit")
            await rec.wait_for(EventKind.OPENED, "frontend-allow-from-ingress")

            # A commit that breaks a manifest: the last good state stays, the error names it.
            frontend = repo / "policies" / "shop" / "frontend.yaml"
            good_text = frontend.read_text()
            frontend.write_text(good_text + "---\n" + BROKEN)
            _git(repo, "commit", "-qam", "broken")
            with capture_logs() as logs:
                daemon.refresh.set()
                for _ in range(200):
                    if any("cannot read the desired state" in e["event"] for e in logs):
                        break
                    await asyncio.sleep(0.05)
            errors = [e for e in logs if "cannot read the desired state" in e["event"]]
            assert errors, logs
            assert "policies/shop/frontend.yaml:" in errors[0]["error"]
            assert daemon.desired_commit == first
            assert len(rec.events) == 1
            # Polling again finds the same commit: nothing is re-read or re-reported.
            with capture_logs() as again:
                daemon.refresh.set()
                await asyncio.sleep(0.5)
            assert not [e for e in again if e["event"] != "stopping"], again

            # Git adopts the live change: the drift resolves because Git changed.
            docs = list(yaml.safe_load_all(good_text))
            docs = [
                wider if d["metadata"]["name"] == wider["metadata"]["name"] else d for d in docs
            ]
            frontend.write_text(yaml.safe_dump_all(docs))
            _git(repo, "commit", "-qam", "adopt the 10/8 rule")
            daemon.refresh.set()
            resolved = await rec.wait_for(EventKind.RESOLVED, "frontend-allow-from-ingress")
            assert resolved.reason == "Git changed to match the live policy"
            assert daemon.desired_commit == _git(repo, "rev-parse", "HEAD")

            # And a policy deleted from both sides resolves as such.
            sandbox.delete_object(*NP, "default-deny", "shop")
            await rec.wait_for(EventKind.OPENED, "default-deny")
            deny_file = repo / "policies" / "shop" / "00-default-deny.yaml"
            kept = [
                d
                for d in yaml.safe_load_all(deny_file.read_text())
                if d["metadata"]["name"] != "default-deny"
            ]
            deny_file.write_text(yaml.safe_dump_all(kept))
            _git(repo, "commit", "-qam", "drop the default deny")
            daemon.refresh.set()
            gone = await rec.wait_for(EventKind.RESOLVED, "default-deny")
            assert gone.reason == "deleted on both sides"
            assert len(rec.events) == 4


BROKEN = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: broken, namespace: shop}
spec: {podSelector: {matchLabels: {app: [1]}}}
"""


@async_test(timeout=60)
async def test_a_sandbox_restart_is_survived(tmp_path: Path) -> None:
    async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        kubeconfig = sandbox.kubeconfig_path(tmp_path)
        async with running(settings_for(kubeconfig, {"path": str(EXAMPLES)})) as (daemon, rec):
            sandbox.faults.restart(downtime=0.3)
            await asyncio.sleep(0.6)
            sandbox.delete_object(*NP, "default-deny", "shop")
            opened = await rec.wait_for(EventKind.OPENED, "default-deny", timeout=15)
            assert str(opened.drift.status) == "missing"
            assert daemon.watcher is not None
            assert daemon.watcher.stats.restarts


# ---------------------------------------------------------------------------------------------
# The commands


def _driftwatch(*args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "driftwatch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_run_with_an_invalid_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "driftwatch.yaml"
    config.write_text("cluster:\n  name: x\ndesired:\n  path: ./p\n  colour: blue\n")
    proc = _driftwatch("run", "--config", str(config))
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert f"{config}:5: desired.colour: unknown field" in err
    config.write_text("cluster:\n  name: x\n")
    proc = _driftwatch("run", "--config", str(config))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "desired" in err
    assert "required" in err


def test_run_stops_within_5_s_on_sigterm_and_fails_clearly_without_a_cluster(
    tmp_path: Path,
) -> None:
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        kubeconfig = sandbox.kubeconfig_path(tmp_path)
        config = tmp_path / "driftwatch.yaml"
        config.write_text(
            f"cluster: {{name: t, kubeconfig: {kubeconfig}}}\n"
            f"desired: {{path: {EXAMPLES}}}\nlog: {{format: json}}\n"
        )
        proc = _driftwatch("run", "--config", str(config))
        deadline = time.monotonic() + 20
        assert proc.stderr is not None
        seen = ""
        while "in sync with the cluster" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert "in sync with the cluster" in seen
        sandbox.delete_object(*NP, "default-deny", "shop")
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert '"event":"opened"' in line
        assert "default-deny" in line
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        assert time.monotonic() - started < 5
        assert proc.returncode == 0

    # No cluster at that address any more: the watcher keeps retrying (with backoff) rather
    # than exiting, so `run` is stopped by a signal here too.
    proc = _driftwatch("run", "--config", str(config))
    assert proc.stderr is not None
    seen = ""
    while '"watching"' not in seen and time.monotonic() < deadline + 20:
        seen += proc.stderr.readline()
    time.sleep(1)  # a few failed attempts, with backoff
    assert proc.poll() is None
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - started < 5
    assert proc.returncode == 0, err


def test_demo_scripted_shows_alerts_and_their_resolution() -> None:
    proc = _driftwatch("demo", "--scripted", "--pause", "0.2")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.count("OPENED") == 2
    assert out.count("RESOLVED") == 2
    assert "ingress-from-world" in out
    assert "default-deny-removed" in out
    assert "changed by kubectl-patch" in out
    assert "demo finished: 2 drifts opened and 2 resolved" in out
    if shutil.which("git") is not None:  # the demo commits the examples to a Git repository
        assert "Git: policies/shop/frontend.yaml:1 @ " in out


def test_sandbox_command_prints_its_url_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    proc = _driftwatch("sandbox", "--seed", str(EXAMPLES), "--kubeconfig-out", str(kubeconfig))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("sandbox API server on http://127.0.0.1:")
    assert f"(kubeconfig: {kubeconfig})" in line
    config = yaml.safe_load(kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    assert server in line
    url = f"{server}/apis/networking.k8s.io/v1/networkpolicies"
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url) as answer:  # noqa: S310 - loopback http, checked above
        names = {i["metadata"]["name"] for i in json.load(answer)["items"]}
    assert {"default-deny", "frontend-allow-from-ingress"} <= names
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 0
