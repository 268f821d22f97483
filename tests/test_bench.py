"""``driftwatch bench`` end to end at a small size, and its pure parts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from driftwatch.bench.harness import BenchOptions, run_bench
from driftwatch.bench.hook import Arrival
from driftwatch.bench.stats import latency_summary, percentile
from driftwatch.bench.truth import tally
from driftwatch.bench.world import ChangePlanner, Expected, make_world

KEYS = {
    "policies",
    "changes",
    "rate",
    "latency_ms",
    "events_per_s",
    "limit_events_per_s",
    "ratio",
    "initial_sync_s",
    "rss_mb",
    "missed",
    "duplicates",
}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert latency_summary([]) == {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}


def test_tally_counts_missed_duplicates_and_resends_apart() -> None:
    expected = [Expected("c/n/a#1", "opened"), Expected("c/n/b#1", "opened")]
    arrivals = [
        Arrival("id-1", "c/n/a#1", "opened", 1.0),
        Arrival("id-1", "c/n/a#1", "opened", 2.0),  # the outbox retried: a resend
        Arrival("id-2", "c/n/a#1", "opened", 3.0),  # another id: a duplicate
        Arrival("id-3", "c/n/x#1", "resolved", 4.0),
    ]
    t = tally(expected, arrivals)
    assert (t.missed, t.duplicates, t.resends, t.unexpected) == (1, 1, 1, 1)


def test_the_plan_never_touches_a_key_twice_within_the_gap() -> None:
    world = make_world(400, 4, seed=3, cluster="c")
    changes = ChangePlanner(world, seed=3, gap=20).changes(300)
    last: dict[str, int] = {}
    for i, change in enumerate(changes):
        key = change.path.rsplit("/", 1)[-1] if change.method != "POST" else change.body
        assert isinstance(key, str | bytes)
        name = key if isinstance(key, str) else json.loads(key)["metadata"]["name"]
        assert i - last.get(name, -100) >= 20
        last[name] = i
    kinds = {c.op for c in changes}
    assert {"world", "all-ns", "port", "delete", "touch", "revert", "recreate"} <= kinds
    assert all((c.expected is None) == (c.op == "touch") for c in changes)
    assert changes[-1].expected is not None


@pytest.mark.slow
def test_bench_small_run_json() -> None:
    out = subprocess.run(
        [
            *(sys.executable, "-m", "driftwatch", "bench", "--json", "--quiet"),
            *("--policies", "300", "--namespaces", "5", "--changes", "60", "--rate", "50"),
            *("--sync-sizes", "300"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == KEYS
    assert (result["policies"], result["changes"], result["rate"]) == (300, 60, 50.0)
    assert set(result["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert result["latency_ms"]["p99"] <= result["latency_ms"]["max"]
    assert result["events_per_s"] > 0
    assert result["limit_events_per_s"] > 0
    assert result["ratio"] > 0
    assert set(result["initial_sync_s"]) == {"300"}
    assert result["initial_sync_s"]["300"] > 0
    assert result["rss_mb"] > 0
    assert result["missed"] == 0
    assert result["duplicates"] == 0


@pytest.mark.slow
@pytest.mark.skipif(
    len(getattr(os, "sched_getaffinity", lambda _: {0})(0)) < 2,
    reason="needs two CPUs: the daemon is placed on one of its own only where there are two",
)
def test_the_daemon_gets_a_cpu_of_its_own() -> None:
    """The daemon has a CPU of its own, as the method says: the sandbox and the harness
    run on the others (they once all shared one, and every figure measured the test rig's
    contention)."""
    before = os.sched_getaffinity(0)
    options = BenchOptions(policies=200, namespaces=4, changes=40, rate=40, sync_sizes=(200,))
    result = asyncio.run(run_bench(options))
    assert os.sched_getaffinity(0) == before  # the harness gave its own CPUs back
    placement = result.detail["placement"]
    assert len(placement["daemon"]) == 1
    assert not set(placement["daemon"]) & set(placement["sandbox"])
    assert not set(placement["daemon"]) & set(placement["harness"])
    assert result.correct
