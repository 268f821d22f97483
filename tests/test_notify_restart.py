"""``kill -9`` of the daemon while every receiver is down loses no alert and repeats none.

The daemon runs as a real ``driftwatch run`` subprocess against the sandbox API server,
with the Slack, PagerDuty, Alertmanager and webhook stand-ins (loopback) as its receivers;
drifts are made with the real kubectl. Issue #5: "undelivered notifications survive
``kill -9`` and are sent after restart" and "a restart neither re-alerts open incidents nor
forgets to resolve them".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftwatch.sandbox import SandboxThread
from driftwatch.sandbox.kubectl import Kubectl
from tests.standins.alertmanager import AlertmanagerStandIn
from tests.standins.every import AnyStandIn, every_standin
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn
from tests.standins.webhook import WebhookStandIn
from tests.test_daemon import EDITOR, EXAMPLES, needs_kubectl

FIXED_POLICY = "frontend-allow-from-ingress"
"""Edited, then fixed again by re-applying its Git file, while the receivers are down."""
OPEN_POLICY = "db-allow-from-backend"
"""Patched and left drifted: its incident is still open across the restart."""
FIXED = f"test/shop/{FIXED_POLICY}#1"
OPEN = f"test/shop/{OPEN_POLICY}#1"
EXPECTED = [(FIXED, "opened"), (FIXED, "resolved"), (OPEN, "opened")]
"""What each receiver must get in the end, exactly once each."""
DOWN = 10_000
"""Failures queued in each stand-in in phase 1: more requests than the phase can make."""


def requests_to(standin: AnyStandIn) -> int:
    """How many requests reached ``standin``, whatever it answered."""
    seen = standin.requests
    return seen if isinstance(seen, int) else len(seen)


class DaemonProcess:
    """``python -m driftwatch run --config FILE`` as a subprocess, its JSON log lines (stdout
    and stderr) collected as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.logs: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, config: Path) -> DaemonProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "driftwatch",
            "run",
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=2**20,  # a log line may carry a diff
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    self.logs.append(entry)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.logs if e.get("event") == name]

    async def until(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        """Wait for ``check()``; fail naming ``what`` (and the log so far) on timeout or when
        the daemon exits first."""
        deadline = time.monotonic() + timeout
        while not check():
            if self.proc.returncode is not None:
                raise AssertionError(f"the daemon exited waiting for {what}:\n{self.log_text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log_text}")
            await asyncio.sleep(0.05)

    async def ready(self) -> None:
        await self.until(lambda: bool(self.events("in sync with the cluster")), "ready", 20)

    async def kill(self) -> None:
        """``kill -9``: no signal handler, no cleanup, no final commit."""
        os.kill(self.proc.pid, signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), timeout=10)
        await asyncio.wait_for(self._reader, timeout=10)

    async def stop(self) -> int:
        """SIGTERM; the exit status (the daemon is killed if it takes more than 10 s)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reader, timeout=10)
        assert self.proc.returncode is not None
        return self.proc.returncode

    @property
    def log_text(self) -> str:
        return "\n".join(self.lines[-60:])


def read_db(state: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` from the state database, opened read-only (the daemon may be writing)."""
    with contextlib.closing(sqlite3.connect(f"{state.as_uri()}?mode=ro", uri=True)) as db:
        return db.execute(sql).fetchall()


def outbox(state: Path) -> list[tuple[str, str, str, int]]:
    """(receiver, incident, kind, attempts) of every pending notification, oldest first."""
    sql = "SELECT receiver, incident_id, kind, attempts FROM outbox ORDER BY seq"
    return [(str(r), str(i), str(k), int(a)) for r, i, k, a in read_db(state, sql)]


@pytest.mark.kubectl
@pytest.mark.slow
@needs_kubectl
def test_kill_9_while_every_receiver_is_down_loses_nothing_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    """Phase 1, every receiver answers 503: the daemon sees two kubectl drifts and one of
    them fixed again (``kubectl apply`` of its Git file), stores opened + resolved for the
    one incident and opened for the other in its outbox, fails to deliver them, and is
    killed with SIGKILL. Phase 2, the receivers are up: the daemon restarted with the same
    configuration and state file delivers each stored notification exactly once, in order
    per incident (PagerDuty: trigger then resolve under the incident id as dedup key; Slack:
    the parent edited to resolved), does not announce the still-open incident again, and
    leaves the outbox and the dead-letter table empty."""
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    state = tmp_path / "state.db"
    with SandboxThread(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
        kubeconfig = sandbox.kubeconfig_path(tmp_path)
        kubectl = Kubectl(kubeconfig, tmp_path / "home")

        async def kubectl_run(*args: str, **env: str) -> None:
            await asyncio.to_thread(kubectl.run, *args, env=kubectl.env(**env))

        async def scenario() -> None:
            async with every_standin() as services:
                config = tmp_path / "driftwatch.yaml"
                config.write_text(
                    yaml.safe_dump(
                        {
                            "cluster": {"name": "test", "kubeconfig": str(kubeconfig)},
                            "desired": {"path": str(EXAMPLES)},
                            "state": {"path": str(state)},
                            "notifiers": [s.receiver_config(n) for n, s in services.items()],
                            "log": {"format": "json"},
                        }
                    )
                )
                expected_rows = Counter(
                    (name, incident, kind) for name in services for incident, kind in EXPECTED
                )

                # -- phase 1: every receiver down ------------------------------------------
                for standin in services.values():
                    standin.fail_next(503, times=DOWN)
                first = await DaemonProcess.start(config)
                try:
                    await first.ready()
                    started = time.monotonic()
                    await kubectl_run(
                        "-n",
                        "shop",
                        "edit",
                        f"networkpolicy/{FIXED_POLICY}",
                        KUBE_EDITOR=f"{sys.executable} {editor}",
                    )
                    await kubectl_run(
                        "-n",
                        "shop",
                        "patch",
                        "networkpolicy",
                        OPEN_POLICY,
                        "--type=merge",
                        "-p",
                        '{"spec": {"podSelector": {"matchLabels": null}}}',
                    )
                    await first.until(
                        lambda: len(first.events("incident opened")) == 2, "two incidents", 15
                    )
                    await kubectl_run("apply", "-f", str(EXAMPLES / "shop" / "frontend.yaml"))
                    await first.until(
                        lambda: bool(first.events("incident resolved")), "the resolve", 15
                    )

                    def stored_and_tried() -> bool:
                        rows = outbox(state)
                        heads = [r for r in rows if r[2] == "opened"]
                        return Counter(r[:3] for r in rows) == expected_rows and all(
                            attempts >= 1 for *_, attempts in heads
                        )

                    # Every receiver has failed each incident's first notification at least
                    # once: they are down, and the daemon knows it.
                    await first.until(stored_and_tried, "every receiver to fail", 15)
                    await first.kill()
                    phase1 = time.monotonic() - started
                finally:
                    await first.stop()
                assert first.proc.returncode == -signal.SIGKILL
                assert {e["incident"] for e in first.events("incident opened")} == {FIXED, OPEN}
                assert [e["incident"] for e in first.events("incident resolved")] == [FIXED]
                assert first.events("notification delivered") == []
                assert first.events("notification dead-lettered") == []
                for name, standin in services.items():
                    assert standin.delivered == [], name
                    assert requests_to(standin) >= 2, name  # one per incident at least
                left = outbox(state)
                assert Counter(r[:3] for r in left) == expected_rows, left

                # -- phase 2: every receiver up, the daemon restarted ------------------------
                for standin in services.values():
                    standin.recover()
                restarted = time.monotonic()
                second = await DaemonProcess.start(config)
                try:
                    await second.ready()
                    (in_sync,) = second.events("in sync with the cluster")
                    assert in_sync["open_drifts"] == 1, in_sync
                    await second.until(
                        lambda: all(len(s.delivered) >= len(EXPECTED) for s in services.values()),
                        "every receiver to get every notification",
                        25,
                    )
                    await second.until(lambda: outbox(state) == [], "an empty outbox", 10)
                    delivered_in = time.monotonic() - restarted
                    await asyncio.sleep(1.5)  # room for a duplicate or a late re-announcement
                finally:
                    status = await second.stop()
                assert status == 0, second.log_text
                print(  # shown with -s / -rP: how long the phases took
                    f"phase 1 {phase1:.1f} s, {len(left)} notifications pending at kill -9; "
                    f"delivered {delivered_in:.1f} s after the restart"
                )

                # Exactly what was stored, once each, in order per incident.
                for name, standin in services.items():
                    got = [(d.incident_id, d.kind) for d in standin.delivered]
                    assert Counter(got) == Counter(EXPECTED), (name, got)
                    assert [g for g in got if g[0] == FIXED] == EXPECTED[:2], (name, got)
                pagerduty = services["pagerduty"]
                assert isinstance(pagerduty, PagerDutyStandIn)
                assert pagerduty.actions_for(FIXED) == ["trigger", "resolve"]
                assert pagerduty.actions_for(OPEN) == ["trigger"]
                assert pagerduty.rejected == []
                slack = services["slack"]
                assert isinstance(slack, SlackStandIn)
                parents = {d.incident_id: d.raw for d in slack.delivered if d.kind == "opened"}
                fixed_parent, open_parent = parents[FIXED], parents[OPEN]
                assert fixed_parent.thread_ts is None
                assert fixed_parent.history, "the parent message was edited in place"
                assert "RESOLVED" in fixed_parent.text
                assert [r.thread_ts for r in slack.replies(fixed_parent.ts)] == [fixed_parent.ts]
                assert not open_parent.history
                assert slack.replies(open_parent.ts) == []
                alertmanager = services["alertmanager"]
                assert isinstance(alertmanager, AlertmanagerStandIn)
                assert alertmanager.alert_for(FIXED).resolved
                assert not alertmanager.alert_for(OPEN).resolved
                webhook = services["webhook"]
                assert isinstance(webhook, WebhookStandIn)
                ids = [d.raw["headers"]["webhook-id"] for d in webhook.delivered]
                assert len(set(ids)) == len(EXPECTED), ids

                # The restart announced nothing new: it only delivered what was stored.
                for event in ("incident opened", "incident updated", "incident resolved"):
                    assert second.events(event) == [], (event, second.log_text)
                assert len(second.events("notification delivered")) == sum(expected_rows.values())
                assert read_db(state, "SELECT COUNT(*) FROM outbox") == [(0,)]
                assert read_db(state, "SELECT COUNT(*) FROM dead_letters") == [(0,)]
                states = dict(read_db(state, "SELECT id, state FROM incidents"))
                assert states == {FIXED: "resolved", OPEN: "open"}, states

        asyncio.run(asyncio.wait_for(scenario(), timeout=60))
