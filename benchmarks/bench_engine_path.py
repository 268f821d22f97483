"""Benchmark: the per-change cost of the daemon's engine path, in-process, split in parts.

Run: python -m benchmarks.bench_engine_path [--policies N] [--changes K]

``driftwatch bench``'s world (N policies over 50 namespaces, Git as YAML files) and its
change mix (K changes: exposure, ``namespaceSelector: {}``, port changes, deletes,
re-creates, reverts to Git, escalations, metadata-only edits), applied one by one to a
``DriftTracker`` and a ``Pipeline`` over a SQLite store, with the daemon's JSON logging (to
``/dev/null``): no watch stream, no outbox, no event loop turns between changes. Prints,
per change, the median and mean time by kind of change, and the time of each part:

* parse: ``json.loads`` and ``parse_policy`` of the changed object;
* compare: ``tracker.drain`` (compare with Git, classify: the rules);
* record: ``pipeline.handle`` (incident saved and notification enqueued in SQLite);
* log: one log line per event, as the daemon writes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import structlog

from driftwatch.bench.world import ChangePlanner, make_world
from driftwatch.daemon.logs import configure_logging
from driftwatch.desired.files import load_path
from driftwatch.drift.tracker import DriftTracker
from driftwatch.incidents import SqliteStore
from driftwatch.notify.pipeline import Pipeline
from driftwatch.notify.routing import Router
from driftwatch.policy import parse_policy
from driftwatch.rules import RuleEngine


async def run(policies: int, count: int) -> None:
    configure_logging("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    log = structlog.get_logger("driftwatch")
    world = make_world(policies, 50, seed=7, cluster="bench")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        world.write(root)
        tracker = DriftTracker(RuleEngine(), cluster="bench")
        tracker.set_desired(load_path(root / "desired").policies)
        live = (parse_policy(o) for o in world.live)
        tracker.set_live({(p.namespace, p.name): p for p in live})
        store = await SqliteStore(root / "state.db").open()
        pipeline = Pipeline(store, Router((), ("hook",)), log=log)
        for event in tracker.drain():
            await pipeline.handle(event)
        changes = ChangePlanner(world, seed=7, gap=200).changes(count)
        by_op: dict[str, list[float]] = collections.defaultdict(list)
        parts: dict[str, float] = collections.defaultdict(float)
        start = time.perf_counter()
        for change in changes:
            t0 = time.perf_counter()
            if change.method == "DELETE":
                ns, name = change.path.split("/namespaces/")[1].split("/networkpolicies/")
                tracker.delete_live(ns, name)
            else:
                assert change.body is not None
                obj = json.loads(change.body)
                tracker.put_live(parse_policy(obj))
            t1 = time.perf_counter()
            events = tracker.drain()
            t2 = time.perf_counter()
            for event in events:
                await pipeline.handle(event)
            t3 = time.perf_counter()
            for event in events:
                log.info("drift event", incident=str(event.key), kind=str(event.kind))
            t4 = time.perf_counter()
            by_op[change.op].append(t4 - t0)
            for part, spent in (("parse", t1 - t0), ("compare", t2 - t1)):
                parts[part] += spent
            parts["record"] += t3 - t2
            parts["log"] += t4 - t3
        total = time.perf_counter() - start
        await store.close()
    print(f"{count} changes in {total:.3f} s: {total / count * 1000:.3f} ms a change")
    for op, times in sorted(by_op.items()):
        print(
            f"  {op:9s} n={len(times):4d}  median {statistics.median(times) * 1000:6.3f} ms"
            f"  mean {statistics.mean(times) * 1000:6.3f} ms"
        )
    for part, spent in parts.items():
        print(f"  part {part:8s} {spent / count * 1000:6.3f} ms a change")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=2_000)
    args = parser.parse_args()
    asyncio.run(run(args.policies, args.changes))


if __name__ == "__main__":
    main()
