"""``driftwatch connectivity diff REF1 REF2`` and ``driftwatch connectivity list REF``:
workload-level connectivity of directories of manifests (policies, namespaces, workloads).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from driftwatch.connectivity import (
    FORMATS,
    Connectivity,
    connection_list,
    connectivity_diff,
    render_diff,
    render_list,
)
from driftwatch.desired import DesiredStateError
from driftwatch.desired.cluster_dir import ClusterState, load_cluster_dir

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "connectivity",
        help="what workloads may reach each other under the policies, and how two states differ",
        description=(
            "Workload-level connectivity of a directory of manifests (NetworkPolicies, "
            "Namespaces, Pods and workloads), or the difference between two; the txt "
            "format is np-guard/netpol-analyzer's."
        ),
    )
    sub = p.add_subparsers(dest="connectivity_command", required=True, parser_class=type(p))
    d = sub.add_parser("diff", help="pairs whose allowed connections differ from REF1 to REF2")
    d.add_argument("ref1", type=Path, metavar="REF1", help="directory (or file) of manifests")
    d.add_argument("ref2", type=Path, metavar="REF2", help="directory (or file) of manifests")
    d.add_argument("--format", choices=FORMATS, default="txt")
    d.add_argument("--default-namespace", default="default", metavar="NS")
    d.set_defaults(handler=_diff)
    li = sub.add_parser("list", help="every allowed connection of one state")
    li.add_argument("ref", type=Path, metavar="REF", help="directory (or file) of manifests")
    li.add_argument("--format", choices=FORMATS, default="txt")
    li.add_argument("--default-namespace", default="default", metavar="NS")
    li.set_defaults(handler=_list)


def _load(path: Path, args: argparse.Namespace) -> ClusterState:
    return load_cluster_dir(path, default_namespace=args.default_namespace)


def _diff(args: argparse.Namespace) -> int:
    try:
        one, two = _load(args.ref1, args), _load(args.ref2, args)
    except DesiredStateError as e:
        print(f"driftwatch connectivity diff: error: {e}", file=sys.stderr)
        return 2
    diffs = connectivity_diff(
        Connectivity(one.topology, one.policies), Connectivity(two.topology, two.policies)
    )
    sys.stdout.write(render_diff(diffs, args.format, ref1=str(args.ref1), ref2=str(args.ref2)))
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        state = _load(args.ref, args)
    except DesiredStateError as e:
        print(f"driftwatch connectivity list: error: {e}", file=sys.stderr)
        return 2
    connections = connection_list(Connectivity(state.topology, state.policies))
    sys.stdout.write(render_list(connections, args.format))
    return 0
