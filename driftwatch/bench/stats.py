"""Percentiles and the latency summary."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["latency_summary", "percentile"]


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(len(ordered), rank) - 1]


def latency_summary(values_ms: Sequence[float]) -> dict[str, float]:
    """``{"p50", "p95", "p99", "max"}`` in ms, to 0.1 ms (all 0 when there are none)."""
    if not values_ms:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    return {
        "p50": round(percentile(values_ms, 50), 1),
        "p95": round(percentile(values_ms, 95), 1),
        "p99": round(percentile(values_ms, 99), 1),
        "max": round(max(values_ms), 1),
    }
