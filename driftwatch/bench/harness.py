"""The benchmark's course, start to end.

1. **World**: N policies over M namespaces (:mod:`driftwatch.bench.world`), in Git (a
   directory) and in a sandbox API server (its own process); 1% drifted from the start.
2. **Daemon**: its own process (:mod:`driftwatch.bench.daemon_proc`), pinned to one CPU
   where there are two or more (the sandbox, this harness and its webhook receiver get
   the others). Initial sync = ``Daemon.run()`` start to ready (Git load + list + full
   evaluation, interpreter start-up excluded); the initial incidents must be delivered.
3. **Latency**: K changes at R per second through the API (a thread, its own connection).
   Per change that must produce an event: from the write's answer to the webhook's
   arrival of that incident event.
4. **Saturation**: the daemon is stopped (SIGSTOP), K more changes are written as fast as
   the server takes them; then the limit client (:mod:`driftwatch.bench.stream`, its own
   process on the daemon's CPU) reads those K watch events from the same resourceVersion
   and parses them; then the daemon is continued (SIGCONT) and drains the backlog:
   ``events_per_s`` = K / (SIGCONT -> the pipeline recorded the backlog's last incident
   event: parse, normalise, compare, classify, incident saved, notification enqueued; the
   outbox delivers meanwhile, on the same loop, as in production). ``ratio`` = the two.
5. **Ground truth**: every expected incident event (initial, paced and backlog) delivered
   exactly once; ``missed``, ``duplicates`` (same incident event under another
   ``webhook-id``), and apart: ``resends`` (same ``webhook-id``) and ``unexpected``.
6. **Initial sync at other sizes** (``sync_sizes`` other than N): a sandbox and a daemon
   of that size, start to ready; the peak RSS (``VmHWM``) of each daemon. ``rss_mb`` is
   the largest of all the daemons of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pstats
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import aiohttp

from driftwatch.bench.hook import Hook, webhook_receiver
from driftwatch.bench.load import write_changes
from driftwatch.bench.procs import Child, affinity, cpu_seconds, pin
from driftwatch.bench.stats import latency_summary
from driftwatch.bench.truth import first_arrivals, tally
from driftwatch.bench.world import Change, ChangePlanner, Expected, World, make_world

__all__ = ["BenchOptions", "BenchResult", "run_bench"]

CLUSTER = "bench"
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What to run (the command's options)."""

    policies: int = 10_000
    namespaces: int = 50
    changes: int = 2_000
    rate: float = 200.0
    sync_sizes: tuple[int, ...] = (10_000, 50_000)
    seed: int = 7
    profile: Path | None = None
    """Write a cProfile (pstats) of the daemon's drain of the backlog here (slows it)."""


@dataclass
class BenchResult:
    """``figures``: the issue's JSON object; ``detail``: the rest, for the table."""

    figures: dict[str, Any]
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        t = self.detail.get("tally", {})
        return not (self.figures["missed"] or self.figures["duplicates"] or t.get("unexpected"))


Cpus = tuple[set[int] | None, set[int] | None]


def _cpus() -> Cpus:
    """(the daemon's CPU, everything else's), or ``None`` s where there is one CPU.

    Read once, before this process pins itself to the others (read after, it would find
    one CPU and pin nothing, leaving every process on the same CPU)."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def _settings(root: Path, sandbox: dict[str, Any], hook: Hook) -> Path:
    path = root / "settings.json"
    data = {
        "cluster": {"name": CLUSTER, "kubeconfig": sandbox["kubeconfig"]},
        "desired": {"path": str(root / "desired")},
        "state": {"path": str(root / "state.db")},
        "notifiers": [hook.config],
    }
    path.write_text(json.dumps(data))
    return path


@dataclass
class _Deployment:
    root: Path
    world: World
    sandbox: Child
    api: dict[str, Any]
    daemon: Child
    daemon_pid: int
    sync_s: float
    cpus: Cpus


@contextlib.asynccontextmanager
async def _deploy(
    size: int, options: BenchOptions, hook: Hook, progress: Progress, cpus: Cpus
) -> AsyncIterator[_Deployment]:
    """World, sandbox and daemon of ``size`` policies; yields once the daemon is ready and
    the initial incidents are delivered."""
    daemon_cpus, other_cpus = cpus
    with tempfile.TemporaryDirectory(prefix="driftwatch-bench-") as tmp:
        root = Path(tmp)
        progress(f"{size} policies: generating")
        world = await asyncio.to_thread(
            make_world, size, options.namespaces, seed=options.seed, cluster=CLUSTER
        )
        _, live = await asyncio.to_thread(world.write, root)
        sandbox = await Child.start("sandbox_proc", str(live), str(root), cpus=other_cpus)
        daemon: Child | None = None
        try:
            api = await sandbox.read(timeout=1800)
            progress(f"{size} policies: sandbox seeded in {api['seeded_s']} s; daemon starting")
            settings = _settings(root, api, hook)
            base = len(hook.arrivals)
            daemon = await Child.start("daemon_proc", str(settings), cpus=daemon_cpus)
            pid = int((await daemon.read(timeout=300))["pid"])
            ready = await daemon.read(timeout=1800)
            sync_s = ready["ready_at"] - ready["run_start"]
            progress(f"{size} policies: in sync in {sync_s:.2f} s")
            initial = base + len(world.initial)
            if not await hook.wait_for(initial, timeout=120 + len(world.initial) / 20):
                raise RuntimeError("the initial incidents were not all delivered")
            await hook.settle(0.3)
            yield _Deployment(root, world, sandbox, api, daemon, pid, sync_s, cpus)
        finally:
            if daemon is not None:
                await daemon.close()
            await sandbox.close()


async def _resource_version(api: dict[str, Any]) -> str:
    headers = {"Authorization": f"Bearer {api['token']}"}
    url = api["url"] + "/apis/networking.k8s.io/v1/networkpolicies?limit=1"
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        r.raise_for_status()
        body = await r.json()
    return str(body["metadata"]["resourceVersion"])


def _expected(changes: Sequence[Change]) -> list[Expected]:
    return [c.expected for c in changes if c.expected is not None]


async def _wait_handled(daemon: Child, count: int, timeout: float) -> dict[str, Any]:
    deadline = time.perf_counter() + timeout
    while True:
        stats = await daemon.ask("stats")
        if stats["handled"] >= count or time.perf_counter() > deadline:
            return stats
        await asyncio.sleep(0.2)


def _top(profile: Path, count: int = 10) -> str:
    out = StringIO()
    stats = pstats.Stats(str(profile), stream=out)
    stats.sort_stats("tottime").print_stats(count)
    return out.getvalue()


async def _saturation(
    d: _Deployment, planner: ChangePlanner, options: BenchOptions, progress: Progress
) -> tuple[list[Change], dict[str, Any]]:
    """Backlog, limit client, drain; the figures."""
    daemon_cpus, _ = d.cpus
    rv = await _resource_version(d.api)
    backlog = planner.changes(options.changes)
    base = (await d.daemon.ask("stats"))["handled"]
    if options.profile is not None:
        await d.daemon.ask("profile-start")
    progress(f"saturation: daemon stopped, writing {len(backlog)} changes")
    os.kill(d.daemon_pid, signal.SIGSTOP)
    try:
        start = time.perf_counter()
        await asyncio.to_thread(write_changes, d.api["url"], d.api["token"], backlog, None)
        write_s = time.perf_counter() - start
        limit = await Child.start(
            "stream", d.api["url"], d.api["token"], rv, str(len(backlog)), cpus=daemon_cpus
        )
        try:
            read = await limit.read(timeout=600)
        finally:
            await limit.close()
    finally:
        cpu_before = cpu_seconds(d.daemon_pid)
        resumed = time.perf_counter()
        os.kill(d.daemon_pid, signal.SIGCONT)
    want = base + len(_expected(backlog))
    stats = await _wait_handled(d.daemon, want, timeout=300)
    if stats["handled"] < want:
        raise RuntimeError(f"the daemon recorded {stats['handled'] - base} of {want - base}")
    drain_s = stats["last_handled"] - resumed
    drain_cpu_s = cpu_seconds(d.daemon_pid) - cpu_before  # a little after the last event
    figures: dict[str, Any] = {
        "backlog_write_per_s": round(len(backlog) / write_s),
        "drain_s": round(drain_s, 3),
        "drain_cpu_s": round(drain_cpu_s, 3),
        "events_per_s": round(len(backlog) / drain_s),
        "limit_events": read["events"],
        "limit_s": round(read["end"] - read["start"], 3),
        "limit_events_per_s": round(read["events"] / (read["end"] - read["start"])),
    }
    if options.profile is not None:
        await d.daemon.ask(f"profile-stop {options.profile}", timeout=120)
        figures["profile_top"] = _top(options.profile)
    return backlog, figures


async def _main_run(
    options: BenchOptions, hook: Hook, progress: Progress, cpus: Cpus
) -> tuple[dict[str, Any], dict[str, Any]]:
    async with _deploy(options.policies, options, hook, progress, cpus) as d:
        start_index = len(hook.arrivals) - len(d.world.initial)
        gap = max(5, min(200, options.policies // 20))
        planner = ChangePlanner(d.world, seed=options.seed, gap=gap)
        paced = planner.changes(options.changes)
        progress(f"latency: {len(paced)} changes at {options.rate:g}/s")
        want = len(hook.arrivals) + len(_expected(paced))
        cpu_before, wall_before = cpu_seconds(d.daemon_pid), time.perf_counter()
        times = await asyncio.to_thread(
            write_changes, d.api["url"], d.api["token"], paced, options.rate
        )
        achieved = len(paced) / (times[-1][1] - times[0][0]) if len(times) > 1 else 0.0
        await hook.wait_for(want, timeout=60)
        paced_cpu = (cpu_seconds(d.daemon_pid) - cpu_before) / (time.perf_counter() - wall_before)
        placement = {
            "daemon": sorted(affinity(d.daemon_pid)),
            "sandbox": sorted(affinity(d.sandbox.pid)),
            "harness": sorted(affinity(0)),
        }
        await hook.settle(0.5)
        first = first_arrivals(hook.arrivals)
        from_answer, from_sent = [], []
        for change, (sent, answered) in zip(paced, times, strict=True):
            e = change.expected
            if e is not None and (e.incident, e.kind) in first:
                from_answer.append((first[(e.incident, e.kind)] - answered) * 1000)
                from_sent.append((first[(e.incident, e.kind)] - sent) * 1000)
        backlog, saturation = await _saturation(d, planner, options, progress)
        expected = [*d.world.initial, *_expected(paced), *_expected(backlog)]
        want = start_index + len(expected)
        await hook.wait_for(want, timeout=120)
        await hook.settle(1.0)
        result = tally(expected, hook.arrivals[start_index:])
        rss = (await d.daemon.ask("stats"))["rss_mb"]
        detail = {
            "achieved_rate": round(achieved, 1),
            "paced_daemon_cpu": round(paced_cpu, 2),
            "placement": placement,
            "latency_from_sent_ms": latency_summary(from_sent),
            "latency_samples": len(from_answer),
            "mix": _mix(paced),
            "tally": dataclasses.asdict(result),
            "saturation": saturation,
            "sync": {
                str(options.policies): {"sync_s": round(d.sync_s, 2), "rss_mb": round(rss, 1)}
            },
        }
        figures = {
            "latency_ms": latency_summary(from_answer),
            "events_per_s": saturation["events_per_s"],
            "limit_events_per_s": saturation["limit_events_per_s"],
            "missed": result.missed,
            "duplicates": result.duplicates,
        }
        return figures, detail


def _mix(changes: Sequence[Change]) -> dict[str, int]:
    mix: dict[str, int] = {}
    for c in changes:
        mix[c.op] = mix.get(c.op, 0) + 1
    return dict(sorted(mix.items()))


async def _sync_only(
    size: int, options: BenchOptions, hook: Hook, progress: Progress, cpus: Cpus
) -> dict[str, float]:
    async with _deploy(size, options, hook, progress, cpus) as d:
        rss = (await d.daemon.ask("stats"))["rss_mb"]
        return {"sync_s": round(d.sync_s, 2), "rss_mb": round(rss, 1)}


async def run_bench(options: BenchOptions, progress: Progress | None = None) -> BenchResult:
    """Run the benchmark; ``progress`` gets a line at each step."""
    say = progress or (lambda _: None)
    cpus = _cpus()
    other_cpus = cpus[1]
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    pin(0, other_cpus)  # this process (load, webhook receiver) off the daemon's CPU
    try:
        async with webhook_receiver() as hook:
            figures, detail = await _main_run(options, hook, say, cpus)
            for size in options.sync_sizes:
                if size != options.policies:
                    detail["sync"][str(size)] = await _sync_only(size, options, hook, say, cpus)
    finally:
        pin(0, before)
    sync = detail["sync"]
    ordered = {
        "policies": options.policies,
        "changes": options.changes,
        "rate": options.rate,
        "latency_ms": figures["latency_ms"],
        "events_per_s": figures["events_per_s"],
        "limit_events_per_s": figures["limit_events_per_s"],
        "ratio": round(figures["events_per_s"] / figures["limit_events_per_s"], 3),
        "initial_sync_s": {str(s): sync[str(s)]["sync_s"] for s in options.sync_sizes},
        "rss_mb": max(v["rss_mb"] for v in sync.values()),
        "missed": figures["missed"],
        "duplicates": figures["duplicates"],
    }
    return BenchResult(ordered, detail)
