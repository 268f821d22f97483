"""Compare desired and live state key by key, and call the rules on what differs.

Pure code: no I/O, no event loop.
"""

from driftwatch.drift.compare import compare, compare_all, status_of, unified_diff
from driftwatch.drift.ignore import IGNORE_ANNOTATION, IgnoreRules, PolicyMatcher
from driftwatch.drift.model import Drift, Report

__all__ = [
    "IGNORE_ANNOTATION",
    "Drift",
    "IgnoreRules",
    "PolicyMatcher",
    "Report",
    "compare",
    "compare_all",
    "status_of",
    "unified_diff",
]
