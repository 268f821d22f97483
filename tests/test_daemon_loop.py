"""The daemon never blocks its event loop (issue #4): under asyncio's debug mode with
``slow_callback_duration = 0.05``, no callback of the daemon's loop runs longer than 50 ms
while it lists, compares and watches 10,000 policies, nor while it takes a burst of changes.

The sandbox API server runs in a subprocess, not in the daemon's loop or a thread of its
process: it serialises each 500-policy list page in one callback (about 60 ms of CPU), which
would be flagged in a shared loop, and from a thread it would hold the interpreter lock
while the daemon's loop waits for it. So every warning here is the daemon's own.

A warning is asyncio's ``Executing <handle> took X seconds``. On a busy machine the kernel
can keep the loop's thread off the CPU in the middle of a short callback (the test machine
has 2 cores shared with other jobs), so each warning is paired with the time the thread spent
runnable but not running during that callback (``/proc/.../schedstat``); only that is
discounted. Sleeping, blocking I/O and waiting for the interpreter lock held by one of the
daemon's threads all count as blocking. What debug mode itself adds (it records where every
future was created, with an ``os.stat`` per source file) is kept out: see
:meth:`LoopMonitor.watching`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import linecache
import logging
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from benchmarks.generate import _policy, write_desired_by_namespace
from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import RecordingNotifier, start_until_ready
from driftwatch.drift import DriftEvent, EventKind
from driftwatch.live import connect
from driftwatch.policy import LAST_APPLIED
from driftwatch.sandbox import Sandbox
from tests.test_daemon import EXAMPLES, FAST, NP, ROOT, settings_for

Obj = dict[str, Any]

POLICIES = 10_000
NAMESPACES = 50
THRESHOLD = 0.05
NP_PATH = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"


# ---------------------------------------------------------------------------------------------
# Watching the loop


@dataclass(frozen=True, slots=True)
class SlowCallback:
    """One of asyncio's slow-callback warnings: the handle and how long it ran, split into
    the time the loop's thread was on a CPU, the time the kernel kept it waiting for one
    (``preempted``), and the rest (asleep: blocking I/O, ``time.sleep``, or waiting for the
    interpreter lock while another thread of the process runs)."""

    handle: str
    took: float
    cpu: float
    preempted: float
    ended: float
    """``time.time()`` when it returned."""

    @property
    def blocked(self) -> float:
        return self.took - self.preempted

    def __str__(self) -> str:
        asleep = max(0.0, self.took - self.cpu - self.preempted)
        return (
            f"{self.took * 1000:.0f} ms (cpu {self.cpu * 1000:.0f}, preempted"
            f" {self.preempted * 1000:.0f}, asleep {asleep * 1000:.0f}): {self.handle[:300]}"
        )


class _Handler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Executing ") and isinstance(record.args, tuple):
            self.records.append(record)


class _SchedClock:
    """Samples a thread's CPU time and run-queue wait (cumulative, from the kernel)."""

    def __init__(self, native_id: int, interval: float = 0.002) -> None:
        self.path = Path(f"/proc/self/task/{native_id}/schedstat")
        self.interval = interval
        self.times: list[float] = []
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sched-clock", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = self.path.read_text().split()
                self.times.append(time.time())
                self.samples.append((int(fields[0]) / 1e9, int(fields[1]) / 1e9))
            self._stop.wait(self.interval)

    def start(self) -> None:
        if self.path.exists():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _at(self, when: float, field: int) -> float:
        i = bisect.bisect_left(self.times, when)
        if i <= 0:
            return self.samples[0][field]
        if i >= len(self.times):
            return self.samples[-1][field]
        t0, t1 = self.times[i - 1], self.times[i]
        v0, v1 = self.samples[i - 1][field], self.samples[i][field]
        return v0 + (v1 - v0) * ((when - t0) / (t1 - t0) if t1 > t0 else 1.0)

    def between(self, start: float, end: float) -> tuple[float, float]:
        """(CPU time, run-queue wait) between two ``time.time()`` instants; (0, 0) when the
        kernel does not say."""
        if len(self.times) < 2:
            return 0.0, 0.0
        cpu = self._at(end, 0) - self._at(start, 0)
        wait = self._at(end, 1) - self._at(start, 1)
        return max(0.0, cpu), max(0.0, wait)


def _no_checkcache(filename: str | None = None) -> None:
    return None


class LoopMonitor:
    """Debug mode with ``slow_callback_duration`` on the running loop; collects asyncio's
    slow-callback warnings as :class:`SlowCallback` values."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self.warnings: list[SlowCallback] = []

    @contextlib.contextmanager
    def watching(self) -> Iterator[LoopMonitor]:
        loop = asyncio.get_running_loop()
        logger = logging.getLogger("asyncio")
        handler = _Handler()
        clock = _SchedClock(threading.get_native_id())
        saved = (loop.get_debug(), loop.slow_callback_duration, logger.level, logger.disabled)
        # Debug mode also records where every future, task and handle was created, and
        # traceback.extract_stack() checks each source file's mtime with os.stat, which
        # releases the interpreter lock: with one of the daemon's threads busy (the desired
        # state is parsed in one), each such call waits about 5 ms to get the lock back, so
        # a 3 ms callback shows as 100 ms. That is debug mode's own cost, not the daemon's:
        # the sources do not change during the test, so skip the check.
        checkcache = linecache.checkcache
        linecache.checkcache = _no_checkcache
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.disabled = False
        clock.start()
        loop.set_debug(True)
        loop.slow_callback_duration = self.threshold
        try:
            yield self
        finally:
            linecache.checkcache = checkcache
            loop.set_debug(saved[0])
            loop.slow_callback_duration = saved[1]
            logger.setLevel(saved[2])
            logger.disabled = saved[3]
            logger.removeHandler(handler)
            clock.stop()
            for record in handler.records:
                assert isinstance(record.args, tuple)
                what, took = str(record.args[0]), record.args[1]
                assert isinstance(took, float)
                cpu, preempted = clock.between(record.created - took, record.created)
                self.warnings.append(
                    SlowCallback(what, took, min(cpu, took), min(preempted, took), record.created)
                )

    @property
    def blocking(self) -> list[SlowCallback]:
        """The warnings that remain over the threshold once preemption is discounted."""
        return [w for w in self.warnings if w.blocked > self.threshold]


def assert_never_blocked(monitor: LoopMonitor) -> None:
    blocking = monitor.blocking
    assert not blocking, (
        f"{len(blocking)} callbacks blocked the loop over {monitor.threshold * 1000:.0f} ms:\n"
        + "\n".join(f"  {w}" for w in blocking)
    )


# ---------------------------------------------------------------------------------------------
# 10,000 policies and a sandbox in a subprocess


@dataclass(slots=True)
class Cluster:
    """The generated state: Git's manifests by key, and which keys the live side changes."""

    desired_dir: Path
    git: dict[tuple[str, str], Obj]
    live: list[Obj]
    modified: list[tuple[str, str]]  # port changed in the cluster (revertable)
    in_sync: list[tuple[str, str]]
    drifts: int


def _copy(obj: Obj) -> Obj:
    return dict(json.loads(json.dumps(obj)))


def generate(root: Path, seed: int = 4) -> Cluster:
    """10,000 policies over 50 namespaces in Git (YAML files, one per namespace) and the same
    in the cluster but for 400 differences (a port changed, a policy missing, a label added,
    an allow-from-the-world rule) and 50 policies Git does not have."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    desired_dir = root / "desired"
    by_ns = write_desired_by_namespace(desired_dir, POLICIES, NAMESPACES, rng)
    git: dict[tuple[str, str], Obj] = {}
    live: list[Obj] = []
    modified: list[tuple[str, str]] = []
    in_sync: list[tuple[str, str]] = []
    for index, obj in enumerate(p for items in by_ns.values() for p in items):
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        git[key] = obj
        served = _copy(obj)
        kind = index % 100
        if kind == 0:
            served["spec"]["ingress"][0]["ports"][0]["port"] = 9999
            modified.append(key)
        elif kind == 1:
            continue  # missing from the cluster
        elif kind == 2:
            served["metadata"]["labels"]["owner"] = "someone"
        elif kind == 3:
            served["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
        else:
            in_sync.append(key)
        live.append(served)
    rogue = [_policy(rng, f"ns-{j % NAMESPACES}", 100_000 + j) for j in range(50)]
    live.extend(rogue)
    drifts = len(git) - len(in_sync) + len(rogue)
    return Cluster(desired_dir, git, live, modified, in_sync, drifts)


SERVER = """
import asyncio, json, sys
from driftwatch.sandbox import Sandbox

async def main():
    with open(sys.argv[1]) as f:
        objects = json.load(f)
    async with Sandbox(bookmark_interval=1.0) as sandbox:
        for obj in objects:
            sandbox.put_object(obj, manager="kubectl-client-side-apply")
        kubeconfig = sandbox.kubeconfig_path(sys.argv[2])
        print(json.dumps({"url": sandbox.url, "kubeconfig": str(kubeconfig),
                          "token": sandbox.token}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


@dataclass(frozen=True, slots=True)
class Remote:
    url: str
    kubeconfig: Path
    token: str


@contextlib.asynccontextmanager
async def sandbox_process(objects: list[Obj], directory: Path) -> AsyncIterator[Remote]:
    """A sandbox seeded with ``objects``, in its own process; stopped by closing its stdin."""
    seed = directory / "live.json"
    seed.write_text(json.dumps(objects))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        str(seed),
        str(directory),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
        if not line:
            raise RuntimeError(f"the sandbox did not start: {(await proc.stderr.read()).decode()}")
        info = json.loads(line)
        yield Remote(info["url"], Path(info["kubeconfig"]), info["token"])
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class Writer:
    """Writes through the API server, as kubectl would (PUT, POST, DELETE)."""

    def __init__(self, session: aiohttp.ClientSession, remote: Remote) -> None:
        self.session = session
        self.remote = remote

    def _url(self, ns: str, name: str | None = None) -> str:
        base = self.remote.url + NP_PATH.format(ns=ns)
        return f"{base}/{name}" if name else base

    async def put(self, obj: Obj) -> None:
        meta = obj["metadata"]
        url = self._url(meta["namespace"], meta["name"]) + "?fieldManager=kubectl-edit"
        async with self.session.put(url, json=obj) as response:
            assert response.status == 200, await response.text()

    async def create(self, obj: Obj) -> None:
        url = self._url(obj["metadata"]["namespace"]) + "?fieldManager=kubectl-create"
        async with self.session.post(url, json=obj) as response:
            assert response.status == 201, await response.text()

    async def delete(self, ns: str, name: str) -> None:
        async with self.session.delete(self._url(ns, name)) as response:
            assert response.status == 200, await response.text()

    async def run(self, writes: list[tuple[str, Any]], concurrency: int) -> None:
        """Make ``writes`` (``("put", obj)``, ``("create", obj)``, ``("delete", key)``) with
        ``concurrency`` requests in flight (a few workers: creating hundreds of tasks at once
        is itself a long callback in debug mode)."""
        pending = iter(writes)

        async def worker() -> None:
            for op, arg in pending:
                if op == "delete":
                    await self.delete(*arg)
                else:
                    await (self.put(arg) if op == "put" else self.create(arg))

        await asyncio.gather(*(worker() for _ in range(concurrency)))


# ---------------------------------------------------------------------------------------------
# The tests


def run(coro: Any, timeout: float) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout=timeout))


@contextlib.asynccontextmanager
async def daemon_running(
    kubeconfig: Path, desired: Path, notifiers: list[Any], api: Any = None
) -> AsyncIterator[Daemon]:
    daemon = Daemon(
        settings_for(kubeconfig, {"path": str(desired)}),
        notifiers=notifiers,
        tuning=FAST,
        api=api,
    )
    task = await start_until_ready(daemon, timeout=180)
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, timeout=10)


@pytest.mark.slow
def test_no_callback_blocks_the_loop_over_50ms_with_10000_policies(tmp_path: Path) -> None:
    cluster = generate(tmp_path)
    rng = random.Random(11)  # noqa: S311 - reproducible test data
    picks = rng.sample(cluster.in_sync, 250)
    opened, deleted, touched = picks[:150], picks[150:200], picks[200:]
    reverted = rng.sample(cluster.modified, 80)
    rogue = [_policy(rng, f"ns-{j % NAMESPACES}", 200_000 + j) for j in range(50)]
    # The burst, prepared beforehand (not to time the test's own work): 380 writes, made
    # 20 at a time, 330 of them transitions.
    writes: list[tuple[str, Any]] = []
    for key in opened:
        world = _copy(cluster.git[key])
        world["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
        writes.append(("put", world))
    writes += [("put", cluster.git[key]) for key in reverted]
    writes += [("delete", key) for key in deleted]
    writes += [("create", obj) for obj in rogue]
    for key in touched:  # metadata only (as kubectl apply): no event
        same = _copy(cluster.git[key])
        same["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(same)}
        writes.append(("put", same))
    rng.shuffle(writes)
    expected = cluster.drifts + 150 + 50 + 50 + 80

    async def scenario() -> None:
        rec = RecordingNotifier()
        monitor = LoopMonitor()
        async with sandbox_process(cluster.live, tmp_path) as remote:
            headers = {"Authorization": f"Bearer {remote.token}"}
            # The client is built before the watch on the loop begins: kubernetes_asyncio's
            # ApiClient loads the system CA store when it is constructed (~80 ms of CPU, once
            # per start, even for http://), which no daemon code can move off the loop.
            api = await connect(remote.kubeconfig)
            async with aiohttp.ClientSession(headers=headers) as session, api:
                writer = Writer(session, remote)
                with monitor.watching():
                    started = time.perf_counter()
                    async with daemon_running(
                        remote.kubeconfig, cluster.desired_dir, [rec], api=api
                    ):
                        sync_seconds = time.perf_counter() - started
                        ready_at = time.time()
                        assert len(rec.events) == cluster.drifts
                        assert {e.kind for e in rec.events} == {EventKind.OPENED}

                        await writer.run(writes, concurrency=20)
                        await rec.wait_until(lambda ev: len(ev) >= expected, timeout=60)
                        await asyncio.sleep(0.5)
        burst = rec.events[cluster.drifts :]
        kinds = Counter(e.kind for e in burst)
        print(
            f"initial sync {sync_seconds:.1f} s, {cluster.drifts} drifts opened;"
            f" burst: {dict(kinds)}; slow-callback warnings: {len(monitor.warnings)}"
        )
        for warning in monitor.warnings:
            phase = "initial sync" if warning.ended <= ready_at else "burst"
            print(f"  {phase}: {warning}")
        assert kinds == {EventKind.OPENED: 250, EventKind.RESOLVED: 80}
        assert_same_keys(burst, {*opened, *deleted, *reverted} | _keys(rogue))
        assert_never_blocked(monitor)

    run(scenario(), timeout=600)


def _keys(objects: list[Obj]) -> set[tuple[str, str]]:
    return {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects}


def assert_same_keys(events: list[DriftEvent], keys: set[tuple[str, str]]) -> None:
    got = [(e.key.namespace, e.key.name) for e in events]
    assert len(got) == len(set(got)), "a key had two events"
    assert set(got) == keys


class BlockingNotifier:
    """A notifier that blocks the loop (a synchronous HTTP call, say) on every event."""

    name = "blocking"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def send(self, event: DriftEvent) -> None:
        time.sleep(self.seconds)


def test_the_monitor_catches_a_notifier_that_blocks_the_loop(tmp_path: Path) -> None:
    """The check can fail: a notifier sleeping 100 ms in the loop is reported, as the
    engine task that ran it."""

    async def scenario() -> None:
        rec = RecordingNotifier()
        monitor = LoopMonitor()
        async with Sandbox(seed=[EXAMPLES], bookmark_interval=0.2) as sandbox:
            kubeconfig = sandbox.kubeconfig_path(tmp_path)
            with monitor.watching():
                notifiers = [BlockingNotifier(0.1), rec]
                async with daemon_running(kubeconfig, EXAMPLES, notifiers):
                    sandbox.delete_object(*NP, "default-deny", "shop")
                    await rec.wait_for(EventKind.OPENED, "default-deny")
        blocking = monitor.blocking
        assert blocking, monitor.warnings
        assert any("engine" in w.handle and w.took >= 0.1 for w in blocking), blocking
        with pytest.raises(AssertionError, match="blocked the loop over 50 ms"):
            assert_never_blocked(monitor)

    run(scenario(), timeout=60)
