"""``driftwatch sandbox``: the in-memory Kubernetes API server, in the foreground.

Prints one line with its URL (and the kubeconfig written) when ready; SIGINT/SIGTERM stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "sandbox",
        help="serve the in-memory Kubernetes API server (for kubectl and tests)",
        description="A Kubernetes-API-compatible in-memory API server on 127.0.0.1 serving "
        "NetworkPolicies, Namespaces, Pods and Leases. Stops on SIGINT/SIGTERM.",
    )
    p.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    p.add_argument(
        "--seed", action="append", default=[], metavar="PATH", help="manifests to load first"
    )
    p.add_argument("--kubeconfig-out", type=Path, metavar="FILE", help="write a kubeconfig here")
    p.add_argument("--token", default=None, help="bearer token clients may send")
    p.add_argument("--bookmark-interval", type=float, default=1.0, metavar="SECONDS")
    p.set_defaults(handler=run)


async def _serve(args: argparse.Namespace) -> None:
    from driftwatch.sandbox import DEFAULT_TOKEN, Sandbox

    sandbox = Sandbox(
        port=args.port,
        seed=args.seed,
        token=args.token or DEFAULT_TOKEN,
        bookmark_interval=args.bookmark_interval,
        auto_create_namespaces=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sandbox:
        line = f"sandbox API server on {sandbox.url}"
        if args.kubeconfig_out is not None:
            args.kubeconfig_out.parent.mkdir(parents=True, exist_ok=True)
            sandbox.kubeconfig_path(args.kubeconfig_out.parent).replace(args.kubeconfig_out)
            line += f" (kubeconfig: {args.kubeconfig_out})"
        print(line, flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    from driftwatch.sandbox import SeedError

    try:
        asyncio.run(_serve(args))
    except SeedError as error:
        print(f"driftwatch sandbox: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"driftwatch sandbox: error: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0
