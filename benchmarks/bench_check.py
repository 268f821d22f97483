"""Benchmark: `driftwatch check` over 10,000 desired and 10,000 live policies.

Run: python -m benchmarks.bench_check [--policies N] [--drifts N] [--repeat N]
Prints the median wall time of the whole command (a fresh interpreter each time, as a CI
job would run it) for a YAML and a JSON live snapshot, and the in-process phase medians.
Goal (issue #2): under 5 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.generate import generate
from driftwatch.desired import load_path
from driftwatch.drift import compare_all
from driftwatch.live import load_snapshot
from driftwatch.rules import RuleEngine


def _median_run(cmd: list[str], repeat: int) -> tuple[float, int]:
    times = []
    code = 0
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        code = done.returncode
        if code == 2:
            sys.exit(f"check failed: {done.stderr.decode().strip()}")
    return statistics.median(times), code


def _phases(desired: Path, live: Path, repeat: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {"desired": [], "live": [], "compare": []}
    for _ in range(repeat):
        t0 = time.perf_counter()
        d = load_path(desired)
        t1 = time.perf_counter()
        lv = load_snapshot(live)
        t2 = time.perf_counter()
        compare_all(d.policies, lv, RuleEngine())
        t3 = time.perf_counter()
        samples["desired"].append(t1 - t0)
        samples["live"].append(t2 - t1)
        samples["compare"].append(t3 - t2)
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=10_000)
    parser.add_argument("--drifts", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for fmt in ("json", "yaml"):
            desired, live = generate(
                root / fmt, policies=args.policies, drifts=args.drifts, live_format=fmt
            )
            size = live.stat().st_size / 1e6
            cmd = [sys.executable, "-m", "driftwatch", "check", "--desired", str(desired)]
            cmd += ["--live", str(live), "--format", "json"]
            wall, code = _median_run(cmd, args.repeat)
            phases = _phases(desired, live, args.repeat)
            print(
                f"check {args.policies} desired vs {args.policies} live ({args.drifts} drifts), "
                f"live as {fmt} ({size:.1f} MB): median {wall:.2f} s over {args.repeat} runs "
                f"(exit {code}); in-process medians: desired {phases['desired']:.2f} s, "
                f"live {phases['live']:.2f} s, compare {phases['compare']:.2f} s"
            )


if __name__ == "__main__":
    main()
