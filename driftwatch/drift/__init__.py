"""Compare desired and live state key by key, and call the rules on what differs.

Pure code: no I/O, no event loop.
"""

from driftwatch.drift.compare import (
    all_keys,
    compare,
    compare_all,
    compare_keys,
    status_of,
    unified_diff,
)
from driftwatch.drift.events import DriftEvent, EventKind, ResolveReason
from driftwatch.drift.ignore import IGNORE_ANNOTATION, IgnoreRules, PolicyMatcher
from driftwatch.drift.model import Drift, Report
from driftwatch.drift.payload import drift_json, event_json, origin_json, source_json
from driftwatch.drift.tracker import DriftTracker

__all__ = [
    "IGNORE_ANNOTATION",
    "Drift",
    "DriftEvent",
    "DriftTracker",
    "EventKind",
    "IgnoreRules",
    "PolicyMatcher",
    "Report",
    "ResolveReason",
    "all_keys",
    "compare",
    "compare_all",
    "compare_keys",
    "drift_json",
    "event_json",
    "origin_json",
    "source_json",
    "status_of",
    "unified_diff",
]
