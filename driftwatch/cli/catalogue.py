"""``driftwatch rules`` and ``driftwatch explain``: the catalogue, and policies in plain English."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from driftwatch.desired import DesiredStateError, load_path
from driftwatch.rules import CATALOGUE
from driftwatch.semantic.explain import explain, explain_json

__all__ = ["add_parsers"]


def add_parsers(commands: Any) -> None:
    p = commands.add_parser("rules", help="list the rule catalogue")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=_rules)
    e = commands.add_parser(
        "explain", help="say what the policies in a manifest allow and isolate, in plain English"
    )
    e.add_argument("file", type=Path, metavar="FILE", help="manifest file or directory")
    e.add_argument("--format", choices=["text", "json"], default="text")
    e.add_argument("--default-namespace", default="default", metavar="NS")
    e.set_defaults(handler=_explain)


def _rules(args: argparse.Namespace) -> int:
    if args.format == "json":
        rows = [
            {
                "id": r.id,
                "severity": str(r.severity),
                "direction": str(r.direction),
                "description": r.description,
            }
            for r in CATALOGUE
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    width = max(len(r.id) for r in CATALOGUE)
    for r in CATALOGUE:
        print(f"{r.id:<{width}}  {r.severity!s:<8}  {r.direction!s:<9}  {r.description}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    try:
        state = load_path(args.file, default_namespace=args.default_namespace)
    except DesiredStateError as e:
        print(f"driftwatch explain: error: {e}", file=sys.stderr)
        return 2
    policies = sorted(state.policies.values(), key=lambda p: (p.namespace, p.name))
    if args.format == "json":
        sys.stdout.write(json.dumps([explain_json(p) for p in policies], indent=2) + "\n")
    elif policies:
        sys.stdout.write("\n\n".join(explain(p) for p in policies) + "\n")
    else:
        # Not a blank line on stdout: say so, as `kubectl get` does when nothing matches.
        print(f"driftwatch explain: no NetworkPolicy in {args.file}", file=sys.stderr)
    return 0
