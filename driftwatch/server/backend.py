"""What the HTTP server needs from the daemon, as plain values and callables.

The server sits below the daemon (it never imports it): the daemon hands it a
:class:`Backend` when it starts serving. Tests build one by hand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from driftwatch.incidents import Incident, IncidentStore
from driftwatch.policy import NetworkPolicy, PolicyKey
from driftwatch.server.metrics import Metrics

__all__ = [
    "Act",
    "Backend",
    "GitTrigger",
    "LivePolicy",
    "Readiness",
    "Revert",
    "Role",
    "RoleProvider",
]

Role = Literal["leader", "follower", "single"]
"""This replica's part: ``single`` without high availability; with it, the Lease holder
is the ``leader`` and the others ``follower`` (ready too: they keep their caches warm)."""
RoleProvider = Callable[[], Role | None]
"""Returns the replica's role, or ``None`` while it is not known yet (not ready)."""


@dataclass(frozen=True, slots=True)
class Readiness:
    """The answer of ``/readyz``: ready when ``reasons`` is empty."""

    reasons: tuple[str, ...] = ()
    """Why the replica is not ready (``desired state not loaded``, ...)."""
    role: Role | None = "single"

    @property
    def ready(self) -> bool:
        return not self.reasons


@dataclass(frozen=True, slots=True)
class GitTrigger:
    """The Git push hook's side of the desired-state loader."""

    fetch: Callable[[], None]
    """Fetch now (sets the daemon's ``refresh`` event; returns at once)."""
    ref: str | None = None
    """The configured ``desired.git.ref`` (``None``: the remote's default branch)."""


class Act(Protocol):
    """Does an action on an incident (``Pipeline.act``'s contract): ``approved``,
    ``snoozed`` (with ``until``, Unix time). Raises ``UnknownIncident``,
    ``IncidentResolved``, ``NotLeading`` (all ``IncidentActionError``) or ValueError."""

    async def __call__(
        self,
        incident_id: str,
        action: str,
        *,
        actor: str,
        reason: str | None = None,
        until: float | None = None,
    ) -> Incident: ...


Revert = Callable[[str, str, str | None], Awaitable[object]]
"""``revert(incident_id, actor, reason)``: put the incident's live policy back to Git's
version (the remediation side); may return the incident. Raises ``IncidentActionError``
(its one-line message is shown: 404 for ``UnknownIncident``, 409 otherwise) or ValueError
(400)."""
LivePolicy = Callable[[PolicyKey], Awaitable[NetworkPolicy | None]]
"""The live policy of a key as the daemon last saw it (``None``: absent)."""


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Backend:
    """The daemon's side of the server."""

    metrics: Metrics
    readiness: Callable[[], Readiness] = Readiness
    """Called for every ``/readyz``: cheap, no I/O."""
    refresh_metrics: Callable[[], Awaitable[None]] = field(default=_nothing)
    """Sets the gauges read from the store and the role provider; awaited before each
    ``/metrics`` answer (bounded by a timeout)."""
    incidents: IncidentStore | None = None
    """The incident store (``None``: no notifications configured, the API lists nothing
    and answers 404 for every id)."""
    git: GitTrigger | None = None
    """``None``: the desired state is not a Git repository (no push hook)."""
    act: Act | None = None
    """Approve and snooze (``None``: incidents are not stored; the action endpoints and
    the Slack buttons answer that they are not available)."""
    revert: Revert | None = None
    """Revert an incident's live policy to Git (``None``: not available, 501)."""
    live: LivePolicy | None = None
    """The live policies (``None``: ``/incidents/{id}/live`` answers 404)."""
    slack_signing_secrets: tuple[str, ...] = ()
    """Signing secrets of the Slack apps whose buttons ``POST /hooks/slack`` accepts,
    besides ``server.slack_signing_secret`` (the Slack notifiers' ``signing_secret``)."""
