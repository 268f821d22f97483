"""``driftwatch bench``: the end-to-end benchmark (issue #7), runnable on any machine.

A sandbox API server (its own process) holds N generated NetworkPolicies, Git (a directory)
the same but for a few; the daemon (its own process, so its RSS and its event loop are its
own) watches them and delivers incidents to a webhook receiver in this process. Then K
changes go through the API, paced, then as a backlog; see :mod:`driftwatch.bench.harness`.
"""

from __future__ import annotations

from driftwatch.bench.harness import BenchOptions, run_bench
from driftwatch.bench.report import format_table

__all__ = ["BenchOptions", "format_table", "run_bench"]
