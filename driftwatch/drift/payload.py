"""Drifts and drift events as JSON-ready dicts: the one shape ``check --format json``, the
daemon's JSON console output and (later) webhook bodies share."""

from __future__ import annotations

from typing import Any

from driftwatch.drift.events import DriftEvent
from driftwatch.drift.model import Drift
from driftwatch.policy import LiveOrigin, Provenance

__all__ = ["drift_json", "event_json", "origin_json", "source_json"]


def source_json(source: Provenance | None) -> dict[str, Any] | None:
    if source is None:
        return None
    return {"path": source.path, "line": source.line, "commit": source.commit}


def origin_json(origin: LiveOrigin | None) -> dict[str, Any] | None:
    if origin is None or origin.manager is None:
        return None
    return {"manager": origin.manager, "operation": origin.operation, "time": origin.time}


def drift_json(drift: Drift) -> dict[str, Any]:
    return {
        "cluster": drift.key.cluster,
        "namespace": drift.key.namespace,
        "name": drift.key.name,
        "status": str(drift.status),
        "severity": None if drift.severity is None else str(drift.severity),
        "findings": [f.to_json() for f in drift.findings],
        "diff": drift.diff,
        "desired_source": source_json(drift.source),
        "live_change": origin_json(drift.live.origin if drift.live is not None else None),
        "blast_radius": None if drift.blast_radius is None else drift.blast_radius.to_json(),
    }


def event_json(event: DriftEvent) -> dict[str, Any]:
    """One drift event: its kind, why, when in the sequence, and the drift it concerns.

    For ``resolved``, ``drift`` is what was wrong and ``live_change`` who fixed it.
    """
    return {
        "event": str(event.kind),
        "sequence": event.sequence,
        "reason": event.reason,
        "drift": drift_json(event.drift),
        "live_change": origin_json(event.origin),
    }
