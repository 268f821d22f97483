"""Benchmark: `driftwatch check` when every one of 10,000 policies has drifted.

Run: python -m benchmarks.bench_drifted_check [--policies N] [--repeat N] [--formats json,yaml]

Like ``bench_check`` (same generated policies, same served-object decoration), but each
live copy differs from Git, cycling through varied changes: a port changed, a peer added,
an ipBlock split in two (cosmetic: same addresses), a label added (metadata only), a
0.0.0.0/0 peer added, the egress rule dropped (egress deny-all), the pod selector
broadened, a port range widened. So every pair goes through the connectivity model, the
change set, every rule and the unified diff, and the report holds 10,000 drifts.

Prints the median wall time of the whole command (a fresh interpreter each time, as a CI
job runs it) and the in-process phase medians: load desired, load live, compare, render
the JSON report (the model cache cleared before each repetition, as in a new process).
Goal: under 5 s.
"""

from __future__ import annotations

import argparse
import collections
import copy
import gc
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.generate import _as_served, _policy, write_state
from driftwatch.cli.output import render_json
from driftwatch.desired import load_path
from driftwatch.drift import compare_all
from driftwatch.live import load_snapshot
from driftwatch.manifests.collector import paused_gc
from driftwatch.policy._fast_parse import clear_caches as clear_parse_caches
from driftwatch.rules import RuleEngine
from driftwatch.semantic.model import clear_caches

Obj = dict[str, Any]


def _port_changed(obj: Obj) -> None:
    obj["spec"]["ingress"][0]["ports"][0]["port"] = 9999


def _peer_added(obj: Obj) -> None:
    obj["spec"]["ingress"][1]["from"].append(
        {"podSelector": {"matchLabels": {"app": "debug-shell"}}}
    )


def _cidr_split(obj: Obj) -> None:
    # 10.0.0.0/8 except 10.1.0.0/16 == 10.0.0.0/9 except 10.1.0.0/16 + 10.128.0.0/9
    obj["spec"]["egress"][0]["to"] = [
        {"ipBlock": {"cidr": "10.0.0.0/9", "except": ["10.1.0.0/16"]}},
        {"ipBlock": {"cidr": "10.128.0.0/9"}},
    ]


def _label_added(obj: Obj) -> None:
    obj["metadata"]["labels"]["owner"] = "someone"


def _world_added(obj: Obj) -> None:
    obj["spec"]["ingress"][0]["from"].append({"ipBlock": {"cidr": "0.0.0.0/0"}})


def _egress_dropped(obj: Obj) -> None:
    obj["spec"]["egress"] = []
    obj["spec"]["policyTypes"] = ["Ingress", "Egress"]  # kept: egress is now deny-all


def _target_broadened(obj: Obj) -> None:
    app = obj["spec"]["podSelector"]["matchLabels"]["app"]
    obj["spec"]["podSelector"] = {
        "matchExpressions": [{"key": "app", "operator": "In", "values": [app, "canary"]}]
    }


def _range_widened(obj: Obj) -> None:
    port = obj["spec"]["ingress"][1]["ports"][0]
    port["endPort"] = port["port"] + 100


CHANGES: dict[str, Callable[[Obj], None]] = {
    "port changed": _port_changed,
    "peer added": _peer_added,
    "cidr split (cosmetic)": _cidr_split,
    "label added": _label_added,
    "0.0.0.0/0 added": _world_added,
    "egress dropped": _egress_dropped,
    "target broadened": _target_broadened,
    "port range widened": _range_widened,
}


def generate_drifted(
    root: Path, *, policies: int, namespaces: int = 100, seed: int = 1, live_format: str
) -> tuple[Path, Path, collections.Counter[str]]:
    """``root/desired/<ns>.yaml`` and ``root/live.<fmt>``: every live copy modified."""
    rng = random.Random(seed)
    desired_dir = root / "desired"
    desired_dir.mkdir(parents=True, exist_ok=True)
    by_ns: dict[str, list[Obj]] = {}
    for i in range(policies):
        ns = f"ns-{i % namespaces}"
        by_ns.setdefault(ns, []).append(_policy(rng, ns, i))
    kinds = list(CHANGES.items())
    counts: collections.Counter[str] = collections.Counter()
    live: list[Obj] = []
    for idx, obj in enumerate(p for items in by_ns.values() for p in items):
        name, change = kinds[idx % len(kinds)]
        changed = copy.deepcopy(obj)
        change(changed)
        served = _as_served(changed, 1000 + idx)
        if name != "label added":
            served["metadata"]["managedFields"].append(
                {"manager": "kubectl-edit", "operation": "Update", "time": "2026-11-27T03:00:00Z"}
            )
        counts[name] += 1
        live.append(served)
    return desired_dir, write_state(root, by_ns, live, live_format), counts


def _median_run(cmd: list[str], repeat: int) -> tuple[float, list[float], int, bytes]:
    times = []
    code = 0
    out = b""
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        code, out = done.returncode, done.stdout
        if code == 2:
            sys.exit(f"check failed: {done.stderr.decode().strip()}")
    return statistics.median(times), times, code, out


def _phases(desired: Path, live: Path, repeat: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {"desired": [], "live": [], "compare": [], "render": []}
    for _ in range(repeat):
        # Fresh, as in a new `driftwatch check`: the model cache would otherwise hand the
        # second and later repetitions every view computed by the first.
        clear_caches()
        clear_parse_caches()
        gc.collect()
        with paused_gc():  # as check runs them
            _phase_times(desired, live, samples)
        gc.collect()
    return {k: statistics.median(v) for k, v in samples.items()}


def _phase_times(desired: Path, live: Path, samples: dict[str, list[float]]) -> None:
    t0 = time.perf_counter()
    d = load_path(desired)
    t1 = time.perf_counter()
    lv = load_snapshot(live)
    t2 = time.perf_counter()
    report = compare_all(d.policies, lv, RuleEngine())
    t3 = time.perf_counter()
    render_json(report)
    t4 = time.perf_counter()
    samples["desired"].append(t1 - t0)
    samples["live"].append(t2 - t1)
    samples["compare"].append(t3 - t2)
    samples["render"].append(t4 - t3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="json,yaml", help="live snapshot formats to try")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for fmt in args.formats.split(","):
            desired, live, counts = generate_drifted(
                root / fmt, policies=args.policies, live_format=fmt
            )
            size = live.stat().st_size / 1e6
            cmd = [sys.executable, "-m", "driftwatch", "check", "--desired", str(desired)]
            cmd += ["--live", str(live), "--format", "json"]
            wall, times, code, out = _median_run(cmd, args.repeat)
            summary = json.loads(out)["summary"]
            phases = _phases(desired, live, args.repeat)
            in_process = sum(phases.values())
            print(
                f"check {args.policies} desired vs {args.policies} live, every pair drifted, "
                f"live as {fmt} ({size:.1f} MB), report {len(out) / 1e6:.1f} MB"
            )
            print(f"  changes: {', '.join(f'{k} {v}' for k, v in counts.items())}")
            print(f"  summary: {', '.join(f'{k} {v}' for k, v in summary.items())}; exit {code}")
            print(
                f"  end to end (subprocess): median {wall:.2f} s over {args.repeat} runs "
                f"({', '.join(f'{t:.2f}' for t in times)}); goal < 5 s: "
                f"{'met' if wall < 5 else 'missed'}"
            )
            print(
                "  in-process medians (one process, no workers, collector paused): "
                + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items())
                + f"; total {in_process:.2f} s; compare per pair "
                + f"{phases['compare'] / args.policies * 1e3:.2f} ms"
            )


if __name__ == "__main__":
    main()
