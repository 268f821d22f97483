"""Benchmark: how long a change in the cluster takes to become a drift event, with 10,000
policies watched (issue #4).

Run: python -m benchmarks.bench_latency [--policies N] [--changes N] [--rate R] [--json]

Git holds 10,000 generated policies over 50 namespaces (YAML files); the cluster, a sandbox
API server in its own process (so that it shares neither the daemon's event loop nor its
interpreter lock), holds the same but for 400 differences and 50 policies Git does not have.
``driftwatch run``'s daemon (``Daemon`` with the default tuning) starts, lists, compares and
becomes ready; then ``--changes`` writes (default 300) go through the API server one at a
time at ``--rate`` per second (default 20), each of which must make one event: a policy in
sync gets an allow-from-anywhere rule (``opened``), the one changed before is written back
as Git has it (``resolved``), and so on, alternately, each write on another key than the
one before.

Latency, per write: from the moment the write returns (the server has accepted it; a
thread of this process makes the HTTP request, so the daemon's loop does not delay it) to
the moment the event reaches the notifier, both read with ``time.perf_counter()``. Prints
the median, p95, p99 and max in ms, the part spent before the daemon's engine took the
input (watch delivery and parsing) and after, the initial sync time (daemon start to
ready), and the peak RSS of this process while the daemon ran (the generator and the
sandbox run in other processes). ``--json`` prints the same as one JSON object.
Goal: p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.generate import _policy, write_desired_by_namespace
from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import start_until_ready
from driftwatch.drift import DriftEvent, EventKind
from driftwatch.settings import Settings

Obj = dict[str, Any]
Key = tuple[str, str]
NAMESPACES = 50
WORLD = {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}
NP_PATH = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}"


# ---------------------------------------------------------------------------------------------
# Child processes: the generator and the sandbox


def _generate(root: Path, policies: int, changes: int, seed: int = 4) -> None:
    """Write ``desired/<ns>.yaml``, ``live.json`` (the cluster's objects) and
    ``changes.json`` (the writes to make, with the event each must produce)."""
    rng = random.Random(seed)
    by_ns = write_desired_by_namespace(root / "desired", policies, NAMESPACES, rng)
    live: list[Obj] = []
    in_sync: list[Obj] = []
    for index, obj in enumerate(p for items in by_ns.values() for p in items):
        served = json.loads(json.dumps(obj))
        kind = index % 100 if policies >= 1000 else 99
        if kind == 0:
            served["spec"]["ingress"][0]["ports"][0]["port"] = 9999
        elif kind == 1:
            continue  # missing from the cluster
        elif kind == 2:
            served["metadata"]["labels"]["owner"] = "someone"
        elif kind == 3:
            served["spec"]["ingress"].append(WORLD)
        else:
            in_sync.append(obj)
        live.append(served)
    live.extend(_policy(rng, f"ns-{j % NAMESPACES}", 100_000 + j) for j in range(50))
    (root / "live.json").write_text(json.dumps(live))

    # open k0, open k1, resolve k0, open k2, resolve k1, ...: one event each, and never the
    # same key twice in a row.
    keys = rng.sample(in_sync, min(len(in_sync), changes // 2 + 2))
    ops: list[tuple[str, Obj]] = []
    for j, obj in enumerate(keys):
        world = json.loads(json.dumps(obj))
        world["spec"]["ingress"].append(WORLD)
        ops.append(("opened", world))
        if j > 0:
            ops.append(("resolved", keys[j - 1]))
    (root / "changes.json").write_text(json.dumps(ops[:changes]))


async def _serve(live: Path, directory: Path) -> None:
    """The sandbox, seeded with ``live``; prints its address, runs until stdin closes."""
    from driftwatch.sandbox import Sandbox  # noqa: PLC0415 - only the child needs it

    objects = json.loads(live.read_text())
    async with Sandbox(bookmark_interval=1.0) as sandbox:
        for obj in objects:
            sandbox.put_object(obj, manager="kubectl-client-side-apply")
        kubeconfig = sandbox.kubeconfig_path(directory)
        info = {"url": sandbox.url, "kubeconfig": str(kubeconfig), "token": sandbox.token}
        print(json.dumps(info), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# ---------------------------------------------------------------------------------------------
# The measurement


class _Quiet:
    """A logger that drops everything (the daemon logs nothing per event anyway)."""

    def _drop(self, event: str, **kw: Any) -> None:
        return None

    debug = info = warning = error = _drop


@dataclass
class Timing:
    """When each event reached the notifier, and when its input reached the engine."""

    name: str = "timing"
    events: list[tuple[Key, EventKind, float, float]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: dict[int, float] = field(default_factory=dict)

    def on_event(self, event: DriftEvent, arrived: float) -> None:
        self._arrived[event.sequence] = arrived

    async def send(self, event: DriftEvent) -> None:
        now = time.perf_counter()
        arrived = self._arrived.pop(event.sequence, now)
        key = (event.key.namespace, event.key.name)
        self.events.append((key, event.kind, now, arrived))
        self.changed.set()


def _writer(
    url: str,
    token: str,
    ops: list[tuple[str, Obj]],
    rate: float,
    times: list[tuple[float, float]],
) -> Callable[[], None]:
    """The writes, one at a time at ``rate`` per second, from a thread with its own
    connection; ``times`` gets ``time.perf_counter()`` as each write is sent and as it
    returns."""
    parts = urlsplit(url)

    def run() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        start = time.perf_counter()
        try:
            for i, (_, obj) in enumerate(ops):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                meta = obj["metadata"]
                path = NP_PATH.format(ns=meta["namespace"], name=meta["name"])
                data = json.dumps(obj)
                sent = time.perf_counter()
                conn.request("PUT", path + "?fieldManager=kubectl-edit", data, headers)
                response = conn.getresponse()
                body = response.read()
                times.append((sent, time.perf_counter()))
                if response.status != 200:
                    raise RuntimeError(f"PUT {path}: {response.status} {body[:200]!r}")
        finally:
            conn.close()

    return run


def _reset_peak_rss() -> bool:
    """Start the kernel's peak-RSS counter (VmHWM) afresh, where Linux allows it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


@contextlib.asynccontextmanager
async def _sandbox(root: Path) -> AsyncIterator[dict[str, str]]:
    """The sandbox child process; yields its url, kubeconfig and token."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.bench_latency",
        "--serve",
        str(root),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=300)
        if not line:
            raise RuntimeError("the sandbox did not start")
        yield dict(json.loads(line))
    finally:
        proc.stdin.close()
        await proc.wait()


def _figures(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "p95": round(_percentile(values, 95), 1),
        "p99": round(_percentile(values, 99), 1),
        "max": round(max(values), 1),
        "min": round(min(values), 1),
    }


def _summary(
    ops: list[tuple[str, Obj]],
    times: list[tuple[float, float]],
    events: list[tuple[Key, EventKind, float, float]],
) -> dict[str, Any]:
    if len(events) != len(ops):
        raise RuntimeError(f"{len(ops)} writes made {len(events)} events")
    totals, from_sent, before, after = [], [], [], []
    for (kind, obj), (sent, t0), (key, got, t1, arrived) in zip(ops, times, events, strict=True):
        want = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if (key, str(got)) != (want, kind):
            raise RuntimeError(f"expected {kind} for {want}, got {got} for {key}")
        totals.append((t1 - t0) * 1000)
        from_sent.append((t1 - sent) * 1000)
        before.append((arrived - t0) * 1000)
        after.append((t1 - arrived) * 1000)
    return {
        "latency_ms": _figures(totals),
        "from_sent_ms": _figures(from_sent),
        "to_engine_ms_median": round(statistics.median(before), 1),
        "engine_to_notifier_ms_median": round(statistics.median(after), 1),
    }


async def _measure(root: Path, ops: list[tuple[str, Obj]], rate: float) -> dict[str, Any]:
    async with _sandbox(root) as server:
        settings = Settings.model_validate(
            {
                "cluster": {"name": "bench", "kubeconfig": server["kubeconfig"]},
                "desired": {"path": str(root / "desired")},
            }
        )
        timing = Timing()
        daemon = Daemon(settings, notifiers=[timing], log=_Quiet())
        daemon.on_event = timing.on_event
        peak_reset = _reset_peak_rss()
        started = time.perf_counter()
        task = await start_until_ready(daemon, timeout=600)
        try:
            sync = time.perf_counter() - started
            initial = len(timing.events)
            times: list[tuple[float, float]] = []
            await asyncio.to_thread(_writer(server["url"], server["token"], ops, rate, times))
            deadline = time.perf_counter() + 30
            while len(timing.events) < initial + len(ops) and time.perf_counter() < deadline:
                timing.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(timing.changed.wait(), timeout=1)
            await asyncio.sleep(0.5)  # anything extra would show now
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=10)
        peak = _peak_rss_mb()
    return {
        "changes": len(ops),
        "rate_per_s": rate,
        "initial_drifts": initial,
        "initial_sync_s": round(sync, 2),
        **_summary(ops, times, timing.events[initial:]),
        "peak_rss_mb": round(peak, 1),
        "peak_rss_scope": "daemon run" if peak_reset else "whole process",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="writes per second")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the sandbox child
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)  # the generator child
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(_serve(args.serve / "live.json", args.serve))
        return
    if args.generate is not None:
        _generate(args.generate, args.policies, args.changes)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        here = Path(__file__).resolve().parents[1]
        subprocess.run(
            [
                *(sys.executable, "-m", "benchmarks.bench_latency", "--generate", str(root)),
                *("--policies", str(args.policies), "--changes", str(args.changes)),
            ],
            check=True,
            cwd=here,
        )
        ops = [(kind, obj) for kind, obj in json.loads((root / "changes.json").read_text())]
        result = asyncio.run(_measure(root, ops, args.rate))
    result = {"policies": args.policies, **result}
    if args.json:
        print(json.dumps(result))
        return
    lat = result["latency_ms"]
    early = (
        " (a negative min: that event came before the writer thread had read the answer)"
        if lat["min"] < 0
        else ""
    )
    print(
        f"{args.policies} policies ({result['initial_drifts']} drifted at start): initial sync"
        f" {result['initial_sync_s']:.2f} s (daemon start to ready)\n"
        f"{result['changes']} changes at {args.rate:g}/s, change accepted -> event at the"
        f" notifier: median {lat['median']:.1f} ms, p95 {lat['p95']:.1f} ms,"
        f" p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms (min {lat['min']:.1f} ms)\n"
        f"  from the write sent (an upper bound): p99 {result['from_sent_ms']['p99']:.1f} ms,"
        f" max {result['from_sent_ms']['max']:.1f} ms{early}\n"
        f"  medians: accepted -> input at the engine {result['to_engine_ms_median']:.1f} ms,"
        f" engine -> notifier {result['engine_to_notifier_ms_median']:.1f} ms\n"
        f"peak RSS ({result['peak_rss_scope']}): {result['peak_rss_mb']:.0f} MB"
        f" (goal: p99 < 100 ms)"
    )


if __name__ == "__main__":
    main()
