"""``driftwatch demo``: the daemon against the built-in sandbox cluster, no cluster needed.

The implementation lives in :mod:`driftwatch.cli._demo`, imported only when the command
runs (the daemon's dependencies take a second to import; ``check`` should not pay for them).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "demo",
        help="watch drift detection work against a built-in sandbox cluster",
        description="Start a sandbox Kubernetes API server holding the example policies, "
        "run the daemon against it and show drift alerts as they happen.",
    )
    p.add_argument(
        "--scripted",
        action="store_true",
        help="make the drift itself, a few seconds apart, then exit when it has resolved",
    )
    p.add_argument(
        "--pause", type=float, default=3.0, metavar="SECONDS", help="between scripted steps"
    )
    p.add_argument("--port", type=int, default=0, help="sandbox port (default: any free port)")
    p.add_argument(
        "--kubeconfig-out",
        type=Path,
        metavar="FILE",
        help="write the sandbox's kubeconfig here (default: a temporary file)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from driftwatch.cli import _demo

    return _demo.run(args)
