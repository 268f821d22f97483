"""Benchmark: notifications with the durable outbox on, from drift event to a signed webhook
received (issue #5).

Run: python -m benchmarks.bench_notify [--events N] [--repeat R] [--changes K] [--rate R]
     [--policies P] [--kubectl N] [--max-in-flight M] [--hook-in-process] [--log]
     [--skip-throughput] [--skip-latency] [--profile] [--json]

The consumer is the tests' Standard Webhooks stand-in (``tests/standins/webhook.py``: it
verifies every signature with the reference ``standardwebhooks`` library and checks the
body against the documented schema), wrapped to note ``time.perf_counter()`` as each
request reaches its handler. It runs in its own process, as a real consumer would, so that
its verification shares neither driftwatch's event loop nor its interpreter lock; on Linux
``perf_counter`` is ``CLOCK_MONOTONIC``, one clock for every process, so its timestamps
compare with this process's. ``--hook-in-process`` runs it on driftwatch's own loop instead.

1. Throughput. The daemon's notification side as ``driftwatch run`` builds it
   (``Notifications.open``: a ``SqliteStore`` in a temporary directory, the ``Pipeline``,
   the ``Outbox`` and the real ``WebhookReceiver`` made by ``build_receivers`` from
   settings with one ``webhook`` notifier pointing at the stand-in), fed ``--events``
   ``opened`` drift events (default 2,000) for as many keys, each a real ``DriftEvent``
   (``compare`` of a generated policy and the same policy opened to 0.0.0.0/0). Three
   figures, each the median of ``--repeat`` runs (default 3), each run on a new store and
   on new drifts (their diffs not rendered yet, as the engine emits them):

   * enqueue: ``pipeline.handle`` for every event, one after the other as the daemon's
     engine does, with the outbox stopped (incident and notification committed to SQLite);
   * delivery: then the outbox is started and drains that backlog: from its start to the
     last request received by the stand-in;
   * end to end: on another new store, the outbox running: from the first ``handle`` to
     the stand-in receiving the last notification (enqueue and delivery overlapping, as in
     the daemon).

   Each run checks that every incident arrived once (no webhook-id twice, nothing rejected,
   nothing left in the outbox or dead-lettered).

2. Latency. ``bench_latency``'s set-up (its generator, and its sandbox API server in a
   child process): ``--policies`` policies (default 1,000) in Git and in the cluster with
   some differences; the daemon (``Daemon`` with ``notifications=Notifications.open(...)``
   and no other notifier) starts and becomes ready, and the notifications of the initial
   drifts are delivered. Then ``--changes`` writes (default 200) at ``--rate`` per second
   (default 20), each adding an allow-from-0.0.0.0/0 rule to a different policy in sync,
   go through the API (a thread with its own connection, as in ``bench_latency``; one
   ``kubectl`` per change would mostly measure kubectl's ~100 ms start-up). Latency per
   write: from the write returning (accepted by the server) to the stand-in receiving that
   incident's ``drift.opened``, split at the moment the daemon's engine emitted the event.
   ``--kubectl N`` then makes N more such changes with the real ``kubectl patch``, one at
   a time, and reports them apart, from kubectl's exit (and from its start; kubectl exits
   a little after the server accepted the patch, so the first figure may even be negative).
   Missed and duplicate notifications are counted (both must be 0).

``--log`` logs through the daemon's real JSON pipeline (to /dev/null); by default the
loggers drop everything (as in ``bench_latency``). ``--profile`` runs one end-to-end
throughput run under cProfile (this thread only: SQLite runs in the store's thread) and
prints the top functions to stderr. ``--json`` prints the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from benchmarks.bench_latency import (
    WORLD,
    Obj,
    _figures,
    _generate,
    _Quiet,
    _sandbox,
    _writer,
)
from benchmarks.generate import _as_served, _policy
from driftwatch.daemon.logs import configure_logging
from driftwatch.daemon.notifications import Notifications
from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import start_until_ready
from driftwatch.drift import DriftEvent, EventKind, compare
from driftwatch.drift.events import opened_reason
from driftwatch.policy import PolicyKey, parse_policy
from driftwatch.rules import RuleEngine
from driftwatch.sandbox.kubectl import Kubectl
from driftwatch.settings import Settings
from tests.standins.webhook import WebhookStandIn

CLUSTER = "bench"
NAMESPACES = 50
HOOK = "hook"
ADD_WORLD = json.dumps([{"op": "add", "path": "/spec/ingress/-", "value": WORLD}])


# ---------------------------------------------------------------------------------------------
# The consumer: the verifying stand-in, timing each arrival


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request the stand-in answered."""

    webhook_id: str
    incident: str
    """``cluster/namespace/name`` (the incident id without its ``#n``)."""
    kind: str
    at: float
    """``time.perf_counter()`` as the request reached the handler."""
    status: int


class TimedStandIn(WebhookStandIn):
    """The webhook stand-in, reporting every request it answered to ``on_arrival``."""

    def __init__(self, on_arrival: Callable[[Arrival], None]) -> None:
        super().__init__()
        self._on_arrival = on_arrival

    async def _hook(self, request: web.Request) -> web.Response:
        at = time.perf_counter()
        response = await super()._hook(request)
        webhook_id = request.headers.get("webhook-id", "")
        if response.status == 200:
            accepted = self._accepted.pop()  # kept by nobody: memory stays flat
            incident, kind = accepted.incident_id.rsplit("#", 1)[0], accepted.kind
        else:
            incident, kind = "", ""
        self.requests.clear()
        self._on_arrival(Arrival(webhook_id, incident, kind, at, response.status))
        return response


@dataclass
class Arrivals:
    """What the consumer received so far, in order (accepted and rejected apart)."""

    accepted: list[Arrival] = field(default_factory=list)
    rejected: list[Arrival] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, arrival: Arrival) -> None:
        (self.accepted if arrival.status == 200 else self.rejected).append(arrival)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` requests were accepted; ``False`` after ``timeout`` s."""
        deadline = time.perf_counter() + timeout
        while len(self.accepted) < count:
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 1.0))
        return True

    async def settle(self, quiet: float = 0.5) -> None:
        """Wait until nothing arrived for ``quiet`` seconds."""
        while True:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=quiet)
            except TimeoutError:
                return


async def _serve_hook() -> None:
    """The consumer child: prints ``{url, secret}``, then one line per request; runs until
    stdin closes."""

    def report(a: Arrival) -> None:
        print(json.dumps([a.webhook_id, a.incident, a.kind, a.at, a.status]), flush=True)

    async with TimedStandIn(report) as hook:
        print(json.dumps({"config": hook.receiver_config(HOOK)}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _shared_clock() -> bool:
    """Whether ``perf_counter`` reads the same clock in every process (Linux: yes)."""
    return "CLOCK_MONOTONIC" in time.get_clock_info("perf_counter").implementation


@contextlib.asynccontextmanager
async def _consumer(in_process: bool) -> AsyncIterator[tuple[dict[str, Any], Arrivals]]:
    """The stand-in (its own process unless ``in_process``); yields its ``notifiers:``
    entry and the arrivals."""
    arrivals = Arrivals()
    if in_process:
        async with TimedStandIn(arrivals.add) as hook:
            yield hook.receiver_config(HOOK), arrivals
        return
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "benchmarks.bench_notify", "--serve-hook"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    stdout = proc.stdout

    async def read() -> None:
        while line := await stdout.readline():
            webhook_id, incident, kind, at, status = json.loads(line)
            arrivals.add(Arrival(webhook_id, incident, kind, at, status))

    reader: asyncio.Task[None] | None = None
    try:
        line = await asyncio.wait_for(stdout.readline(), timeout=60)
        if not line:
            raise RuntimeError("the webhook stand-in did not start")
        config = dict(json.loads(line)["config"])
        reader = asyncio.create_task(read())
        yield config, arrivals
    finally:
        proc.stdin.close()
        await proc.wait()
        if reader is not None:
            await reader


# ---------------------------------------------------------------------------------------------
# Shared set-up


def _logger(real: bool) -> Any:
    """The daemon's logger: the real JSON pipeline into /dev/null, or one that drops all."""
    if not real:
        return _Quiet()
    configure_logging("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115 - for the run
    return structlog.get_logger("driftwatch")


def _settings(
    hook: dict[str, Any], state: Path, max_in_flight: int | None, **more: Any
) -> Settings:
    notifier = dict(hook)
    if max_in_flight is not None:
        notifier["max_in_flight"] = max_in_flight
    data = {
        "cluster": {"name": CLUSTER},
        "state": {"path": str(state)},
        "notifiers": [notifier],
        **more,
    }
    return Settings.model_validate(data)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _check(arrivals: Sequence[Arrival], expected: set[str]) -> dict[str, int]:
    """Missed, duplicate and unexpected deliveries among ``arrivals`` (``opened`` each)."""
    ids = [a.webhook_id for a in arrivals]
    got = [a.incident for a in arrivals]
    return {
        "missed": len(expected - set(got)),
        "duplicates": (len(ids) - len(set(ids))) + (len(got) - len(set(got))),
        "unexpected": sum(1 for i in got if i not in expected),
        "not_opened": sum(1 for a in arrivals if a.kind != "opened"),
    }


# ---------------------------------------------------------------------------------------------
# 1. Throughput


def _events(count: int, seed: int = 5) -> list[DriftEvent]:
    """``count`` real ``opened`` events, each for its own key: a generated policy in Git
    and, live, the same opened to 0.0.0.0/0 by ``kubectl edit``."""
    rng = random.Random(seed)
    engine = RuleEngine()
    events = []
    for i in range(count):
        ns = f"ns-{i % NAMESPACES}"
        obj = _policy(rng, ns, i)
        world = json.loads(json.dumps(obj))
        world["spec"]["ingress"].append(WORLD)
        served = _as_served(world, 1000 + i)
        served["metadata"]["managedFields"].append(
            {"manager": "kubectl-edit", "operation": "Update", "time": "2026-11-27T03:00:00Z"}
        )
        git, live = parse_policy(obj), parse_policy(served)
        key = PolicyKey(CLUSTER, ns, obj["metadata"]["name"])
        drift = compare(key, git, live, engine)
        assert drift.findings, "each event must open an incident"
        events.append(DriftEvent(EventKind.OPENED, key, drift, None, opened_reason(drift), i, live))
    return events


def _incident(key: PolicyKey) -> str:
    return f"{key.cluster}/{key.namespace}/{key.name}"


async def _throughput_run(
    events: list[DriftEvent],
    hook: dict[str, Any],
    arrivals: Arrivals,
    root: Path,
    *,
    overlap: bool,
    log: Any,
    max_in_flight: int | None,
) -> dict[str, float]:
    """One run on a new store: enqueue then deliver (``overlap`` false), or both at once."""
    # New drifts, as the engine would emit them: their diffs not rendered yet.
    events = [replace(e, drift=replace(e.drift, _diff=None)) for e in events]
    settings = _settings(hook, root / f"state-{time.monotonic_ns()}.db", max_in_flight)
    notifications = await Notifications.open(settings, log=log)
    expected = {_incident(e.key) for e in events}
    before = len(arrivals.accepted)
    outbox: asyncio.Task[None] | None = None
    try:
        start, cpu_start = time.perf_counter(), time.process_time()
        if overlap:
            outbox = asyncio.create_task(notifications.outbox_task())
        for event in events:
            await notifications.pipeline.handle(event)
        enqueued, cpu_enqueued = time.perf_counter(), time.process_time()
        if not overlap:
            outbox = asyncio.create_task(notifications.outbox_task())
        if not await arrivals.wait_for(before + len(events), timeout=120):
            raise RuntimeError(f"{len(arrivals.accepted) - before} of {len(events)} arrived")
        cpu_end = time.process_time()
        settled = time.perf_counter() + 5
        while await notifications.store.pending_count() and time.perf_counter() < settled:
            await asyncio.sleep(0.01)  # the outbox commits the last deliveries
        last = arrivals.accepted[-1].at
        assert outbox is not None
        await _stop(outbox)
        outbox = None
        problems = _check(arrivals.accepted[before:], expected)
        problems["rejected"] = len(arrivals.rejected)
        problems["left_in_outbox"] = await notifications.store.pending_count()
        problems["dead_lettered"] = len(await notifications.store.dead_letters())
        if any(problems.values()):
            raise RuntimeError(f"delivery went wrong: {problems}")
    finally:
        if outbox is not None:
            await _stop(outbox)
        await notifications.close()
    n = len(events)
    if overlap:
        return {
            "end_to_end_per_s": n / (last - start),
            "enqueue_overlapped_per_s": n / (enqueued - start),
            "end_to_end_cpu_ms": (cpu_end - cpu_start) * 1000 / n,
        }
    return {
        "enqueue_per_s": n / (enqueued - start),
        "delivery_per_s": n / (last - enqueued),
        "enqueue_cpu_ms": (cpu_enqueued - cpu_start) * 1000 / n,
        "delivery_cpu_ms": (cpu_end - cpu_enqueued) * 1000 / n,
    }


def _rounded(name: str, value: float) -> float:
    """Rates to the unit, milliseconds to the hundredth."""
    return round(value, 2) if name.endswith("_ms") else round(value)


async def _throughput(
    count: int, repeat: int, *, in_process: bool, log: Any, max_in_flight: int | None
) -> dict[str, Any]:
    events = await asyncio.to_thread(_events, count)
    runs: list[dict[str, float]] = []
    async with _consumer(in_process) as (hook, arrivals):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for _ in range(repeat):
                run = {}
                for overlap in (False, True):
                    run.update(
                        await _throughput_run(
                            events, hook, arrivals, root,
                            overlap=overlap, log=log, max_in_flight=max_in_flight,
                        )
                    )  # fmt: skip
                runs.append(run)
    figures = {k: _rounded(k, statistics.median(r[k] for r in runs)) for k in runs[0]}
    return {
        "events": count,
        "repeat": repeat,
        **figures,
        "runs": [{k: _rounded(k, v) for k, v in r.items()} for r in runs],
    }


async def _profile(count: int, *, in_process: bool, log: Any, max_in_flight: int | None) -> str:
    events = await asyncio.to_thread(_events, count)
    profiler = cProfile.Profile()
    async with _consumer(in_process) as (hook, arrivals):
        with tempfile.TemporaryDirectory() as tmp:
            profiler.enable()
            await _throughput_run(
                events, hook, arrivals, Path(tmp),
                overlap=True, log=log, max_in_flight=max_in_flight,
            )  # fmt: skip
            profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# 2. Latency: a change in the cluster -> the webhook received


@dataclass
class EngineTimes:
    """When the daemon's engine emitted each ``opened`` event (before the pipeline)."""

    at: dict[str, float] = field(default_factory=dict)

    def on_event(self, event: DriftEvent, arrived: float) -> None:
        if event.kind is EventKind.OPENED:
            self.at.setdefault(_incident(event.key), time.perf_counter())


def _obj_incident(obj: Obj) -> str:
    return f"{CLUSTER}/{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def _latencies(
    objs: list[Obj],
    times: list[tuple[float, float]],
    arrivals: Sequence[Arrival],
    engine: EngineTimes,
) -> dict[str, Any]:
    """Per change: accepted -> received, accepted -> emitted, emitted -> received; and from
    the request sent (for kubectl: its start)."""
    first: dict[str, float] = {}
    for a in arrivals:
        first.setdefault(a.incident, a.at)
    total, sent_total, to_engine, to_hook = [], [], [], []
    for obj, (sent, accepted) in zip(objs, times, strict=True):
        incident = _obj_incident(obj)
        if incident not in first:
            continue
        received = first[incident]
        total.append((received - accepted) * 1000)
        sent_total.append((received - sent) * 1000)
        if incident in engine.at:
            to_engine.append((engine.at[incident] - accepted) * 1000)
            to_hook.append((received - engine.at[incident]) * 1000)
    if not total:
        raise RuntimeError("no change reached the webhook")
    return {
        "latency_ms": _figures(total),
        "from_sent_ms": _figures(sent_total),
        "to_engine_ms_median": round(statistics.median(to_engine), 1),
        "engine_to_webhook_ms": _figures(to_hook),
        **_check(arrivals, {_obj_incident(o) for o in objs}),
    }


def _kubectl_changes(kubectl: Kubectl, objs: list[Obj], times: list[tuple[float, float]]) -> None:
    """One ``kubectl patch`` per object (adding the 0.0.0.0/0 rule), one at a time, at
    most four a second; ``times`` gets the time before each start and after each exit."""
    kubectl.run("get", "networkpolicies", "-n", "ns-0", "-o", "name")  # discovery, cached
    for obj in objs:
        meta = obj["metadata"]
        sent = time.perf_counter()
        kubectl.run(
            *("-n", meta["namespace"], "patch", "networkpolicy", meta["name"]),
            *("--type", "json", "-p", ADD_WORLD),
        )
        times.append((sent, time.perf_counter()))
        time.sleep(max(0.0, sent + 0.25 - time.perf_counter()))


async def _latency(
    policies: int,
    changes: int,
    rate: float,
    kubectl_changes: int,
    *,
    in_process: bool,
    log: Any,
    max_in_flight: int | None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        total = changes + kubectl_changes
        await asyncio.to_thread(_generate, root, policies, 2 * total + 4)
        ops = json.loads((root / "changes.json").read_text())
        opens = [obj for kind, obj in ops if kind == "opened"][:total]
        if len(opens) < total:
            raise RuntimeError(f"only {len(opens)} policies in sync for {total} changes")
        api_objs, kubectl_objs = opens[:changes], opens[changes:]
        async with _sandbox(root) as server, _consumer(in_process) as (hook, arrivals):
            settings = _settings(
                hook,
                root / "state.db",
                max_in_flight,
                cluster={"name": CLUSTER, "kubeconfig": server["kubeconfig"]},
                desired={"path": str(root / "desired")},
            )
            notifications = await Notifications.open(settings, log=log)
            engine = EngineTimes()
            daemon = Daemon(settings, notifiers=[], notifications=notifications, log=log)
            daemon.on_event = engine.on_event
            started = time.perf_counter()
            task = await start_until_ready(daemon, timeout=600)
            try:
                sync = time.perf_counter() - started
                while await notifications.store.pending_count():
                    await asyncio.sleep(0.05)
                await arrivals.settle()
                initial = len(arrivals.accepted)
                initial_s = time.perf_counter() - started
                times: list[tuple[float, float]] = []
                api_ops = [("opened", o) for o in api_objs]
                writes = _writer(server["url"], server["token"], api_ops, rate, times)
                await asyncio.to_thread(writes)
                await arrivals.wait_for(initial + changes, timeout=30)
                await arrivals.settle()
                api_arrivals = arrivals.accepted[initial:]
                kubectl_figures = None
                if kubectl_objs:
                    kubectl = Kubectl(server["kubeconfig"], root / "kube-home")
                    ktimes: list[tuple[float, float]] = []
                    await asyncio.to_thread(_kubectl_changes, kubectl, kubectl_objs, ktimes)
                    await arrivals.wait_for(initial + changes + len(kubectl_objs), timeout=30)
                    await arrivals.settle()
                    later = arrivals.accepted[initial + len(api_arrivals) :]
                    kubectl_figures = _latencies(kubectl_objs, ktimes, later, engine)
            finally:
                daemon.stop()
                await asyncio.wait_for(task, timeout=10)
                await notifications.close()
    result: dict[str, Any] = {
        "policies": policies,
        "changes": changes,
        "rate_per_s": rate,
        "initial_sync_s": round(sync, 2),
        "initial_notifications": initial,
        "initial_delivered_s": round(initial_s, 2),
        **_latencies(api_objs, times, api_arrivals, engine),
        "rejected": len(arrivals.rejected),
    }
    if kubectl_figures is not None:
        result["kubectl"] = {"changes": len(kubectl_objs), **kubectl_figures}
    return result


# ---------------------------------------------------------------------------------------------
# Output


def _row(label: str, f: dict[str, float]) -> str:
    numbers = "".join(f"{f[k]:8.1f}" for k in ("median", "p95", "p99", "max"))
    return f"    {label:<38}{numbers}   (min {f['min']:.1f})"


def _print(result: dict[str, Any]) -> None:
    where = "in this process" if result["hook_in_process"] else "in its own process"
    print(f"webhook stand-in {where}; max_in_flight {result['max_in_flight']}; log {result['log']}")
    if (t := result.get("throughput")) is not None:
        runs = ", ".join(str(r["end_to_end_per_s"]) for r in t["runs"])
        print(
            f"\nthroughput: {t['events']} opened events, distinct keys;"
            f" median of {t['repeat']} runs       per s   CPU ms each*\n"
            f"  end to end: handle + deliver, overlapped          {t['end_to_end_per_s']:7d}"
            f" {t['end_to_end_cpu_ms']:8.2f}\n"
            f"  enqueue: pipeline.handle, outbox stopped          {t['enqueue_per_s']:7d}"
            f" {t['enqueue_cpu_ms']:8.2f}\n"
            f"  delivery of that backlog: outbox -> stand-in 200  {t['delivery_per_s']:7d}"
            f" {t['delivery_cpu_ms']:8.2f}\n"
            f"  (end to end, each run: {runs} /s; enqueue while delivering:"
            f" {t['enqueue_overlapped_per_s']} /s)\n"
            f"  * CPU of this process (all threads), per notification"
        )
    if (lat := result.get("latency")) is not None:
        print(
            f"\nlatency: {lat['policies']} policies; initial sync {lat['initial_sync_s']:.2f} s;"
            f" its {lat['initial_notifications']} notifications delivered by"
            f" {lat['initial_delivered_s']:.2f} s\n"
            f"    {'ms':<38}{'median':>8}{'p95':>8}{'p99':>8}{'max':>8}\n"
            f"  {lat['changes']} API writes at {lat['rate_per_s']:g}/s:\n"
            f"{_row('accepted -> webhook received', lat['latency_ms'])}\n"
            f"{_row('event emitted -> webhook received', lat['engine_to_webhook_ms'])}\n"
            f"    (accepted -> event emitted: median {lat['to_engine_ms_median']:.1f} ms)\n"
            f"    missed {lat['missed']}, duplicates {lat['duplicates']},"
            f" unexpected {lat['unexpected']}, rejected {lat['rejected']}"
        )
        if (k := lat.get("kubectl")) is not None:
            print(
                f"  {k['changes']} kubectl patch, one at a time:\n"
                f"{_row('kubectl exited -> webhook received', k['latency_ms'])}\n"
                f"{_row('kubectl started -> webhook received', k['from_sent_ms'])}\n"
                f"    missed {k['missed']}, duplicates {k['duplicates']},"
                f" unexpected {k['unexpected']}"
            )


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    log = _logger(args.log)
    result: dict[str, Any] = {
        "hook_in_process": args.hook_in_process,
        "max_in_flight": args.max_in_flight or "default",
        "log": "json to /dev/null" if args.log else "dropped",
    }
    options = {"in_process": args.hook_in_process, "log": log, "max_in_flight": args.max_in_flight}
    if not args.skip_throughput:
        result["throughput"] = await _throughput(args.events, args.repeat, **options)
    if not args.skip_latency:
        result["latency"] = await _latency(
            args.policies, args.changes, args.rate, args.kubectl, **options
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="throughput: events per run")
    parser.add_argument("--repeat", type=int, default=3, help="throughput: runs (median)")
    parser.add_argument("--policies", type=int, default=1000, help="latency: policies")
    parser.add_argument("--changes", type=int, default=200, help="latency: API writes")
    parser.add_argument("--rate", type=float, default=20.0, help="latency: writes per second")
    parser.add_argument("--kubectl", type=int, default=0, help="latency: kubectl changes too")
    parser.add_argument("--max-in-flight", type=int, help="the notifier's max_in_flight")
    parser.add_argument("--hook-in-process", action="store_true", help="stand-in on our loop")
    parser.add_argument("--log", action="store_true", help="real JSON logging to /dev/null")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile one throughput run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--serve-hook", action="store_true", help=argparse.SUPPRESS)  # child
    args = parser.parse_args()
    if args.serve_hook:
        asyncio.run(_serve_hook())
        return
    if not args.hook_in_process and not _shared_clock():
        print(
            "perf_counter is not shared between processes here: --hook-in-process", file=sys.stderr
        )
        args.hook_in_process = True
    if args.profile:
        report = asyncio.run(
            _profile(
                args.events,
                in_process=args.hook_in_process,
                log=_logger(args.log),
                max_in_flight=args.max_in_flight,
            )
        )
        print(report, file=sys.stderr)
        return
    result = asyncio.run(_main(args))
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)


if __name__ == "__main__":
    main()
