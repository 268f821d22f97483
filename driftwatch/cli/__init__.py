"""The ``driftwatch`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from driftwatch import __version__
from driftwatch.cli import (
    bench,
    catalogue,
    check,
    config,
    connectivity,
    demo,
    incidents,
    notify,
    run,
    sandbox,
)

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (exit status 2), as every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="driftwatch",
        description="Catch drift between the NetworkPolicies in Git and the live cluster.",
    )
    parser.add_argument("--version", action="version", version=f"driftwatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check.add_parser(commands)
    run.add_parser(commands)
    demo.add_parser(commands)
    sandbox.add_parser(commands)
    notify.add_parser(commands)
    config.add_parser(commands)
    catalogue.add_parsers(commands)
    connectivity.add_parser(commands)
    incidents.add_parsers(commands)
    bench.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `driftwatch check ... | head`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return status
