"""The incident body: one documented, versioned JSON shape (``schema_version`` 1) that the
webhook sends as is and every other receiver renders from."""

from __future__ import annotations

from typing import Any

from driftwatch.drift import DriftEvent, drift_json, origin_json
from driftwatch.incidents import iso_time
from driftwatch.policy import PolicyKey
from driftwatch.rules import Finding

__all__ = ["SCHEMA_VERSION", "incident_body", "problem_body"]

SCHEMA_VERSION = 1


def incident_body(
    event: DriftEvent,
    *,
    kind: str,
    incident_id: str,
    occurred_at: str,
    opened_at: str,
    resolved_at: str | None,
    link: str | None,
    reason: str | None = None,
) -> dict[str, Any]:
    """``{"schema_version": 1, "type": "drift.<kind>", "incident_id", "cluster",
    "namespace", "name", "status", "severity", "findings", "diff", "desired_source",
    "live_change", "occurred_at", "reason", "link", "opened_at", "resolved_at",
    "blast_radius"}``.

    ``live_change`` is the live policy's last writer at the event: who made the change, or
    for ``resolved`` who fixed it. ``blast_radius`` (added within schema version 1: a new
    key, null where the topology is unknown) lists the workload pairs and external ranges
    whose allowed connections the drift changes.
    """
    drift = drift_json(event.drift)
    return {
        "schema_version": SCHEMA_VERSION,
        "type": f"drift.{kind}",
        "incident_id": incident_id,
        "cluster": drift["cluster"],
        "namespace": drift["namespace"],
        "name": drift["name"],
        "status": drift["status"],
        "severity": drift["severity"],
        "findings": drift["findings"],
        "diff": drift["diff"],
        "desired_source": drift["desired_source"],
        "live_change": origin_json(event.origin),
        "occurred_at": occurred_at,
        "reason": reason if reason is not None else event.reason,
        "link": link,
        "opened_at": opened_at,
        "resolved_at": resolved_at,
        "blast_radius": drift["blast_radius"],
    }


def problem_body(
    key: PolicyKey,
    kind: str,
    iid: str,
    *,
    status: str,
    findings: tuple[Finding, ...],
    reason: str,
    now: float,
    opened_at: str,
    resolved_at: float | None,
) -> dict[str, Any]:
    """The incident body (``notify.body``'s shape) of a problem that is not a drift."""
    severity = max((f.severity for f in findings), default=None)
    return {
        "schema_version": SCHEMA_VERSION,
        "type": f"drift.{kind}",
        "incident_id": iid,
        "cluster": key.cluster,
        "namespace": key.namespace,
        "name": key.name,
        "status": status,
        "severity": None if severity is None else str(severity),
        "findings": [f.to_json() for f in findings],
        "diff": "",
        "desired_source": None,
        "live_change": None,
        "occurred_at": iso_time(now),
        "reason": reason,
        "link": None,
        "opened_at": opened_at,
        "resolved_at": None if resolved_at is None else iso_time(resolved_at),
        "blast_radius": None,
    }
