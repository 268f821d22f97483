"""Workload-level connectivity: what each workload may open to each other workload and to
external address ranges, under a set of NetworkPolicies, and how two states differ
(np-guard/netpol-analyzer's connectivity diff, whose reference cases it agrees with).

Pure code: no I/O, no event loop.
"""

from driftwatch.connectivity.blast import BlastRadius, blast_radius
from driftwatch.connectivity.conns import ALL, NONE, Conns
from driftwatch.connectivity.diff import Connection, PairDiff, connection_list, connectivity_diff
from driftwatch.connectivity.engine import Connectivity, External
from driftwatch.connectivity.render import FORMATS, Format, render_diff, render_list

__all__ = [
    "ALL",
    "FORMATS",
    "NONE",
    "BlastRadius",
    "Connection",
    "Connectivity",
    "Conns",
    "External",
    "Format",
    "PairDiff",
    "blast_radius",
    "connection_list",
    "connectivity_diff",
    "render_diff",
    "render_list",
]
