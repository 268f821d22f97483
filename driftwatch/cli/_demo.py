"""``driftwatch demo``, imported when the command runs: the daemon against the sandbox.

The sandbox API server starts holding the example policies (``config/examples/policies``,
shipped in the package), the daemon watches it with those same files, committed to a
throw-away Git repository, as its desired state,
and the console shows every drift as it opens and resolves. Without ``--scripted`` the demo
prints the ``kubectl`` commands to make drift by hand and runs until Ctrl-C; with it, the
demo makes the changes itself a few seconds apart and exits once every alert it caused has
resolved (exit 1 if one never arrived).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from driftwatch.cli.run import console_for
from driftwatch.daemon import TaskFailed, configure_logging, stop_on_signals
from driftwatch.daemon.run import Daemon, DaemonTuning
from driftwatch.drift import DriftEvent, EventKind
from driftwatch.manifests import is_resource, iter_manifest_files, read_file
from driftwatch.sandbox import Sandbox
from driftwatch.settings import Settings

__all__ = ["EXAMPLES", "run"]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
"""The bundled example: ``policies/`` (the demo's Git) and more (a symlink to
``config/examples`` in a source checkout, a copy in an installed package)."""

NAMESPACE = "shop"
OPENED_UP = "frontend-allow-from-ingress"
DEFAULT_DENY = "default-deny"
_WORLD_PEER = {"ipBlock": {"cidr": "0.0.0.0/0"}}
_STEP_TIMEOUT = 15.0


def _policies(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for file in iter_manifest_files(directory):
        for document in read_file(file, str(file)):
            if is_resource(document.data, "NetworkPolicy", "networking.k8s.io"):
                meta = document.data["metadata"]
                out[(meta.get("namespace", "default"), meta["name"])] = document.data
    return out


@dataclass(frozen=True, slots=True)
class _Paths:
    policies: Path
    kubeconfig: Path


def _instructions(paths: _Paths, url: str) -> str:
    kc = shlex.quote(str(paths.kubeconfig))
    patch = (
        '[{"op": "add", "path": "/spec/ingress/-", "value": '
        '{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}}]'
    )
    shop = shlex.quote(str(paths.policies / NAMESPACE))
    return "\n".join(
        [
            f"driftwatch demo: a sandbox Kubernetes API server on {url} holds the",
            "example NetworkPolicies; driftwatch watches it and compares every change with",
            f"the same policies committed to Git in {paths.policies.parent}.",
            "Make drift from another terminal:",
            "",
            f"  export KUBECONFIG={kc}",
            "  kubectl get networkpolicies -A",
            "  # 1. open the shop frontend to the whole internet (critical: ingress-from-world)",
            f"  kubectl -n {NAMESPACE} patch networkpolicy {OPENED_UP} --type=json "
            f"-p {shlex.quote(patch)}",
            "  # 2. delete the shop's default deny (critical: default-deny-removed)",
            f"  kubectl -n {NAMESPACE} delete networkpolicy {DEFAULT_DENY}",
            "  # 3. re-apply Git: both drifts resolve",
            f"  kubectl apply -f {shop}",
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )


class _Script:
    """The scripted changes, each waiting for the alert it must cause."""

    def __init__(self, sandbox: Sandbox, desired: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.sandbox = sandbox
        self.desired = desired
        self.events: list[DriftEvent] = []
        self._arrived = asyncio.Event()

    def record(self, event: DriftEvent, _: float) -> None:
        self.events.append(event)
        self._arrived.set()

    async def _expect(self, kind: EventKind, names: set[str]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STEP_TIMEOUT
        while True:
            seen = {e.key.name for e in self.events if e.kind is kind}
            if names <= seen:
                return
            timeout = deadline - loop.time()
            if timeout <= 0:
                missing = ", ".join(sorted(names - seen))
                raise TimeoutError(f"no {kind} event for {missing} within {_STEP_TIMEOUT:g} s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)

    def _say(self, text: str) -> None:
        print(f"\n>>> {text}", flush=True)

    async def play(self, pause: float) -> None:
        opened = copy.deepcopy(self.desired[(NAMESPACE, OPENED_UP)])
        opened["spec"]["ingress"].append({"from": [_WORLD_PEER]})
        await asyncio.sleep(pause)
        self._say(f"kubectl -n {NAMESPACE} patch networkpolicy {OPENED_UP}: allow 0.0.0.0/0")
        self.sandbox.put_object(opened, manager="kubectl-patch")
        await self._expect(EventKind.OPENED, {OPENED_UP})
        await asyncio.sleep(pause)
        self._say(f"kubectl -n {NAMESPACE} delete networkpolicy {DEFAULT_DENY}")
        self.sandbox.delete_object(
            "networking.k8s.io/v1", "NetworkPolicy", DEFAULT_DENY, NAMESPACE, manager="kubectl"
        )
        await self._expect(EventKind.OPENED, {DEFAULT_DENY})
        await asyncio.sleep(pause)
        self._say(f"kubectl apply -f {NAMESPACE}/  (re-apply Git)")
        for (namespace, _), obj in self.desired.items():
            if namespace == NAMESPACE:
                self.sandbox.put_object(obj, manager="kubectl-client-side-apply")
        await self._expect(EventKind.RESOLVED, {OPENED_UP, DEFAULT_DENY})
        opened_count = sum(e.kind is EventKind.OPENED for e in self.events)
        resolved = sum(e.kind is EventKind.RESOLVED for e in self.events)
        self._say(
            f"demo finished: {opened_count} drifts opened and {resolved} resolved, "
            "each alerted once, in real time"
        )


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    tmp = tempfile.mkdtemp(prefix="driftwatch-demo-")
    try:
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _git_repository(directory: Path) -> Path:
    """The example policies committed to a fresh Git repository in ``directory``, so alerts
    name their source as a real setup would (``policies/shop/db.yaml:1 @ 3f2c...``); the
    bundled copy as it is when ``git`` is not installed."""
    policies = directory / "policies"
    shutil.copytree(EXAMPLES / "policies", policies)
    if shutil.which("git") is None:
        return policies
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "driftwatch demo",
        "GIT_AUTHOR_EMAIL": "demo@driftwatch.invalid",
        "GIT_COMMITTER_NAME": "driftwatch demo",
        "GIT_COMMITTER_EMAIL": "demo@driftwatch.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "policies"],
        ["commit", "-q", "-m", "The platform team's NetworkPolicies"],
    ):
        subprocess.run(
            ["git", "-C", str(directory), *command], check=True, capture_output=True, env=env
        )
    return policies


async def _demo(args: argparse.Namespace, workdir: Path) -> int:
    policies = await asyncio.to_thread(_git_repository, workdir)
    kubeconfig = args.kubeconfig_out or workdir / "kubeconfig"
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    desired = _policies(policies)
    sandbox = Sandbox(
        port=args.port, seed=[policies], auto_create_namespaces=True, bookmark_interval=1.0
    )
    async with sandbox:
        written = sandbox.kubeconfig_path(kubeconfig.parent)
        written.replace(kubeconfig)
        settings = Settings.model_validate(
            {
                "cluster": {"name": "demo", "kubeconfig": str(kubeconfig)},
                "desired": {"path": str(policies)},
                "log": {"level": "warning", "format": "console"},
            }
        )
        daemon = Daemon(
            settings,
            notifiers=[console_for(settings)],
            tuning=DaemonTuning(grace=2.0),
            log=structlog.get_logger("driftwatch"),
        )
        script = _Script(sandbox, desired) if args.scripted else None
        if script is not None:
            daemon.on_event = script.record
        paths = _Paths(policies, kubeconfig)
        failed = False

        async def guide() -> None:
            nonlocal failed
            await daemon.ready.wait()
            print(_instructions(paths, sandbox.url), flush=True)
            if script is not None:
                try:
                    await script.play(args.pause)
                except TimeoutError as error:
                    print(f"driftwatch demo: error: {error}", file=sys.stderr)
                    failed = True
                daemon.stop("the scripted demo is over")

        with stop_on_signals(daemon.supervisor):
            helper = asyncio.create_task(guide(), name="demo-guide")
            try:
                await daemon.run()
            except TaskFailed as failure:
                print(f"driftwatch demo: error: {failure}", file=sys.stderr)
                return 1
            finally:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
        return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    if not (EXAMPLES / "policies").is_dir():
        print(f"driftwatch demo: error: no bundled examples in {EXAMPLES}", file=sys.stderr)
        return 2
    configure_logging("warning", "console")
    with _workdir() as workdir:
        return asyncio.run(_demo(args, workdir))
