"""People's actions on incidents, as the daemon carries them out (the API's and Slack's
``approve``, ``snooze``; the live policy for ``driftwatch export``).

The engine task is the only one touching the tracker, so what needs the tracker is queued
for it like the watch's inputs (:class:`EngineRequest`) and done between two inputs: an
approval records the incident's action (``Pipeline.act``) and tells the tracker
(``DriftTracker.approve``) in one step, so no drift event of the key can come between.
A snooze, a revert's record, needs no tracker: it goes to the pipeline directly.

After a restart (or a new leader's catch-up) the tracker knows no approvals:
:meth:`IncidentActions.rearm` approves again the drifts whose (Git, live) pair is still the
one an approved incident pinned, and hands the pipeline those whose pair changed (a
restart's first evaluation did so already; a catch-up skips drifts whose incident says
the same), which reopens them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from driftwatch.daemon.notifications import Notifications
from driftwatch.drift import DriftEvent, DriftTracker, EventKind
from driftwatch.incidents import (
    Action,
    Incident,
    IncidentActionError,
    IncidentState,
    NotLeading,
    UnknownIncident,
)
from driftwatch.notify.actions import active_approval, pair_digest
from driftwatch.policy import NetworkPolicy, PolicyKey
from driftwatch.settings import Settings

__all__ = ["EngineRequest", "IncidentActions", "slack_signing_secrets"]


@dataclass(frozen=True, slots=True)
class _Approve:
    incident_id: str
    actor: str
    reason: str | None
    done: asyncio.Future[Incident]


@dataclass(frozen=True, slots=True)
class _Live:
    key: PolicyKey
    done: asyncio.Future[NetworkPolicy | None]


EngineRequest = _Approve | _Live
"""What :class:`IncidentActions` queues for the engine (see :meth:`IncidentActions.apply`)."""


class IncidentActions:
    """What the server (API, Slack buttons) asks of the daemon about incidents."""

    def __init__(
        self,
        tracker: DriftTracker,
        notifications: Notifications | None,
        put: Callable[[EngineRequest], None],
    ) -> None:
        """``put``: queue a request for the engine task, which calls :meth:`apply`."""
        self._tracker = tracker
        self._notifications = notifications
        self._put = put

    def _recording(self) -> Notifications:
        notifications = self._notifications
        if notifications is None:
            raise IncidentActionError("incidents are not stored: configure notifiers")
        if not notifications.notifier.recording:
            raise NotLeading()
        return notifications

    async def act(
        self,
        incident_id: str,
        action: str,
        *,
        actor: str,
        reason: str | None = None,
        until: float | None = None,
    ) -> Incident:
        """Do ``action`` (``approved``, ``snoozed``, ``reverted``, ``revert-loop``) as
        ``Pipeline.act`` does; an approval through the engine. Raises what it raises, and
        :class:`~driftwatch.incidents.NotLeading` on a follower."""
        notifications = self._recording()
        if Action(action) is not Action.APPROVED:
            return await notifications.pipeline.act(
                incident_id, action, actor=actor, reason=reason, until=until
            )
        done: asyncio.Future[Incident] = asyncio.get_running_loop().create_future()
        self._put(_Approve(incident_id, actor, reason, done))
        return await done

    async def live(self, key: PolicyKey) -> NetworkPolicy | None:
        """The live policy of ``key`` as the tracker last saw it (``None``: absent)."""
        done: asyncio.Future[NetworkPolicy | None] = asyncio.get_running_loop().create_future()
        self._put(_Live(key, done))
        return await done

    async def apply(self, request: EngineRequest) -> None:
        """Called by the engine task, between two inputs."""
        if request.done.done():
            return  # the asker went away
        try:
            result: Any = await self._apply(request)
        except Exception as error:  # the asker's to report
            if not request.done.done():
                request.done.set_exception(error)
            return
        if not request.done.done():
            request.done.set_result(result)

    async def _apply(self, request: EngineRequest) -> Incident | NetworkPolicy | None:
        if isinstance(request, _Live):
            return self._tracker.live_policy(request.key)
        notifications = self._recording()
        incident = await notifications.store.get(request.incident_id)
        if incident is None:
            raise UnknownIncident(request.incident_id)
        drift = self._tracker.drift_of(incident.key) if incident.is_open else None
        approved = await notifications.pipeline.act(
            request.incident_id,
            Action.APPROVED,
            actor=request.actor,
            reason=request.reason,
            drift=drift,
        )
        if drift is not None:
            self._tracker.approve(incident.key)
        return approved

    async def rearm(self) -> int:
        """Approve again, in the tracker, the approved incidents' drifts still as approved,
        and reopen those changed since (called by the engine after the first evaluation
        and after a catch-up); returns how many were approved again."""
        notifications = self._notifications
        if notifications is None or not notifications.notifier.recording:
            return 0
        count = 0
        for incident in await notifications.store.open_incidents():
            if incident.state is not IncidentState.APPROVED:
                continue
            drift = self._tracker.drift_of(incident.key)
            approval = active_approval(incident.body)
            if drift is None or approval is None or not approval.get("pair"):
                continue
            if approval["pair"] == pair_digest(drift):
                count += self._tracker.approve(incident.key)
                continue
            live = self._tracker.live_policy(incident.key)
            reason = "Git or the live policy changed after the approval"
            event = DriftEvent(EventKind.UPDATED, incident.key, drift, None, reason, 0, live)
            await notifications.pipeline.handle(event)
        return count


def slack_signing_secrets(settings: Settings) -> tuple[str, ...]:
    """The ``signing_secret`` of every Slack notifier (their buttons' clicks are signed
    with it)."""
    found = []
    for notifier in settings.notifiers:
        secret = getattr(notifier.config, "signing_secret", None)
        if notifier.type == "slack" and isinstance(secret, SecretStr):
            found.append(secret.get_secret_value())
    return tuple(found)
