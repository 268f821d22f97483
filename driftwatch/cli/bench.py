"""``driftwatch bench``: measure driftwatch end to end on this machine (issue #7).

Starts the sandbox API server with ``--policies`` policies, the daemon with a webhook
receiver on loopback, applies ``--changes`` changes at ``--rate`` per second, then as a
backlog; prints latency, saturation throughput against a minimal watch client, initial
sync times, the daemon's peak RSS and missed/duplicate notifications. Exit status 0, or 1
when a notification was missed, duplicated or unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "bench",
        help="benchmark the daemon end to end on this machine",
        description="Start a sandbox API server and the daemon, apply changes through the "
        "API and measure change-to-webhook latency, saturation throughput, initial sync "
        "time and memory. Takes minutes at the default sizes.",
    )
    p.add_argument("--policies", type=int, default=10_000, metavar="N")
    p.add_argument("--namespaces", type=int, default=50, metavar="M")
    p.add_argument("--changes", type=int, default=2_000, metavar="K")
    p.add_argument("--rate", type=float, default=200.0, metavar="R", help="changes per second")
    p.add_argument(
        "--sync-sizes",
        type=_sizes,
        default=(10_000, 50_000),
        metavar="N1,N2",
        help="policy counts to time the initial sync at (default 10000,50000)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--profile", type=Path, metavar="FILE", help="cProfile the daemon's drain")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from driftwatch.bench import BenchOptions, format_table, run_bench

    for name in ("policies", "namespaces", "changes", "rate"):
        if getattr(args, name) <= 0:
            print(f"driftwatch bench: error: --{name} must be positive", file=sys.stderr)
            return 2
    options = BenchOptions(
        policies=args.policies,
        namespaces=args.namespaces,
        changes=args.changes,
        rate=args.rate,
        sync_sizes=args.sync_sizes,
        seed=args.seed,
        profile=args.profile,
    )

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"bench: {line}", file=sys.stderr, flush=True)

    result = asyncio.run(run_bench(options, progress))
    if args.json:
        print(json.dumps(result.figures))
    else:
        print(format_table(result.figures, result.detail))
    if not result.correct:
        print(
            f"driftwatch bench: deliveries went wrong: {result.detail.get('tally')}",
            file=sys.stderr,
        )
        return 1
    return 0
