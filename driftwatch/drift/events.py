"""The events the drift tracker emits: a drift opened, updated or resolved."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from driftwatch.drift.model import Drift
from driftwatch.policy import LiveOrigin, NetworkPolicy, PolicyKey
from driftwatch.rules import Status

__all__ = ["DriftEvent", "EventKind", "ResolveReason", "opened_reason", "updated_reason"]


class EventKind(enum.StrEnum):
    """What happened to one key's drift."""

    OPENED = "opened"
    """The key went from in sync (or absent on both sides, or ignored) to drifted."""
    UPDATED = "updated"
    """An open drift's status or findings (and so maybe its severity) changed."""
    RESOLVED = "resolved"
    """The key is no longer drifted."""


class ResolveReason(enum.StrEnum):
    """Why an open drift was resolved, in plain words (the event's ``reason``)."""

    LIVE_MATCHES_GIT = "live matches Git again"
    """The live side changed (re-applied, edited back, deleted) and now agrees with Git."""
    GIT_MATCHES_LIVE = "Git changed to match the live policy"
    """Git changed and now agrees with a live side that did not change."""
    DELETED = "deleted on both sides"
    """Neither Git nor the cluster holds the policy any more."""
    IGNORED = "now ignored"
    """The ignore annotation or the configured ignore rules now cover the key."""
    REVERTED = "reverted by driftwatch"
    """driftwatch's remediation put Git's version back (the daemon tells this from "live
    matches Git again" and "deleted on both sides": the tracker cannot, see
    :meth:`driftwatch.daemon.remediation.Remediator.explain`)."""


_STATUS_WORDS = {
    Status.MODIFIED: "the live policy differs from Git",
    Status.MISSING: "in Git but not in the cluster",
    Status.UNMANAGED: "in the cluster but not in Git",
}


def opened_reason(drift: Drift) -> str:
    """``in Git but not in the cluster``: what is wrong with a newly drifted key."""
    return _STATUS_WORDS.get(drift.status, str(drift.status))


def updated_reason(previous: Drift, drift: Drift) -> str:
    """What changed in an open drift: its status, else its severity, else its findings."""
    if previous.status is not drift.status:
        return f"status changed from {previous.status} to {drift.status}"
    before, after = previous.severity, drift.severity
    if before != after:
        rank = [-1 if s is None else int(s) for s in (before, after)]
        verb = "rose" if rank[1] > rank[0] else "fell"
        words = ["none" if s is None else str(s) for s in (before, after)]
        return f"severity {verb} from {words[0]} to {words[1]}"
    return "findings changed"


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """One transition of one key, emitted once per real transition.

    ``drift`` is the new drift for ``opened`` and ``updated``, and the last open drift (what
    was wrong) for ``resolved``. ``previous`` is the open drift this event replaces or
    closes: ``None`` for ``opened``, the drift before the change for ``updated``, and the
    same as ``drift`` for ``resolved``. ``live`` is the live policy at the moment of the
    event (``None`` when absent), so that its ``origin`` names who fixed a resolved drift.
    ``sequence`` increases by one with every event of a tracker, starting at 1.
    """

    kind: EventKind
    key: PolicyKey
    drift: Drift
    previous: Drift | None
    reason: str
    sequence: int
    live: NetworkPolicy | None = None

    @property
    def origin(self) -> LiveOrigin | None:
        """The last writer of the live policy at the moment of the event."""
        return self.live.origin if self.live is not None else None
