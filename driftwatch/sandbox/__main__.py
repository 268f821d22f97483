"""``python -m driftwatch.sandbox [--port N] [--seed PATH ...] [--kubeconfig FILE]``:
run the sandbox API server in the foreground until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from driftwatch.sandbox.seed import SeedError
from driftwatch.sandbox.server import DEFAULT_TOKEN, Sandbox


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m driftwatch.sandbox",
        description="A Kubernetes-API-compatible in-memory API server on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--seed", action="append", default=[], help="manifest file or directory")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig to this file")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="bearer token clients must send")
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a token")
    parser.add_argument("--bookmark-interval", type=float, default=1.0, help="seconds")
    parser.add_argument("--verbose", "-v", action="store_true", help="log every request")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    sandbox = Sandbox(
        port=args.port,
        seed=args.seed,
        token=None if args.no_auth else args.token,
        bookmark_interval=args.bookmark_interval,
    )
    async with sandbox:
        print(f"sandbox API server on {sandbox.url}", flush=True)
        if args.kubeconfig is not None:
            path = sandbox.kubeconfig_path(args.kubeconfig.parent)
            path.replace(args.kubeconfig)
            print(f"kubeconfig: {args.kubeconfig}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    try:
        asyncio.run(_serve(args))
    except SeedError as error:
        print(f"sandbox: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"sandbox: error: {error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
