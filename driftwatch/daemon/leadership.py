"""High availability: of several replicas, only the Lease holder turns drift into incidents
and delivers them; the others watch and compare all the same (warm caches) and take over.

Every replica runs the desired-state loader, the watcher and the engine. The incident side
is gated:

* while following, :class:`~driftwatch.daemon.notifications.IncidentNotifier` drops drift
  events (the leader records them in the shared store) and no outbox runs;
* on winning the Lease, :meth:`Leadership.lead` waits until this replica is in sync,
  reloads the shared store (what the last leader wrote), and asks the engine for a
  *catch-up*: in the engine's own task, so no drift event can interleave, the gate opens and
  every open drift is handed to the pipeline as ``opened`` — an incident the last leader
  already announced as it is changes nothing (its fingerprint), one it never saw opens, one
  that changed meanwhile is updated — then incidents no longer drifted are resolved. Then
  the outbox delivers what the last leader left pending (``due_now``), and reminders run;
* on losing the Lease (or past its renew deadline, whatever the loop is doing) the gate
  closes at once and the term's tasks are cancelled.

A delivery the old leader made but could not record may be sent again by the new one; it
carries the same notification id (the webhook's ``webhook-id``) and incident id
(PagerDuty's ``dedup_key``), so receivers can tell.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from kubernetes_asyncio.client import ApiClient

from driftwatch.daemon.notifications import Notifications
from driftwatch.drift import DriftEvent, DriftTracker, EventKind
from driftwatch.incidents.kubernetes import KubernetesStore
from driftwatch.live import LeaderElector, LeaseTiming, connect
from driftwatch.notify.pipeline import fingerprint
from driftwatch.server import Role
from driftwatch.settings import Settings

__all__ = ["Leadership", "SharedState", "open_shared_state", "record_open_drifts"]

RESYNC_SECONDS = 60.0
"""How often a leader runs the catch-up again (it writes only what differs)."""
RETRY_SECONDS = 5.0
"""How long a leader waits after its store failed before it starts the term over."""


class Leadership:
    """One replica's part in the election, and what it does while it leads."""

    def __init__(self, elector: LeaderElector, *, log: Any = None) -> None:
        self.elector = elector
        self._log = log if log is not None else structlog.get_logger("driftwatch.daemon")
        self._campaigned = False

    def role(self) -> Role | None:
        """``leader`` or ``follower`` (``None`` until the first campaign has run)."""
        if self.elector.is_leader:
            return "leader"
        return "follower" if self._campaigned else None

    def leading(self) -> bool:
        return self.elector.is_leader

    async def campaign(self) -> None:
        """The ``election`` task: campaign, lead, campaign again, until cancelled."""
        self._campaigned = True
        await self.elector.run()

    async def lead(
        self,
        notifications: Notifications,
        *,
        in_sync: asyncio.Event,
        catch_up: Callable[[], Awaitable[None]],
        recheck: Callable[[], Awaitable[None]] | None = None,
        resync: float = RESYNC_SECONDS,
        retry: float = RETRY_SECONDS,
    ) -> None:
        """The ``leading`` task: during every term, take over the incident side.

        A store that fails (the API server down or throttling) never ends the daemon: the
        term logs it, waits ``retry`` seconds and starts over (reload, catch up, deliver)
        for as long as this replica leads. While leading, the catch-up runs again every
        ``resync`` seconds (``recheck``: the catch-up without fetching Git first), so an
        incident change a store failure lost is made good."""

        async def deliver_and_resync() -> None:
            async with asyncio.TaskGroup() as group:
                group.create_task(notifications.outbox_task())
                group.create_task(notifications.reminder_task())
                while True:
                    await asyncio.sleep(resync)
                    await (recheck or catch_up)()

        async def term() -> None:
            try:
                await in_sync.wait()
                while True:
                    try:
                        await notifications.store.reload()  # what the last leader wrote
                        await catch_up()
                        self._log.info(
                            "leading: delivering and reminding", identity=self.elector.identity
                        )
                        await deliver_and_resync()
                    except* OSError as group:  # the store's errors (KubernetesStoreError)
                        self._log.error(
                            "leading: the incident store failed; starting over",
                            error="; ".join(str(e) for e in group.exceptions),
                            retry_in=retry,
                        )
                    notifications.notifier.active = False
                    await asyncio.sleep(retry)
            finally:
                notifications.notifier.active = False

        await self.elector.while_leading(term)


async def record_open_drifts(
    tracker: DriftTracker, notifications: Notifications, *, log: Any
) -> None:
    """A leader's catch-up (run by the engine, between two inputs): open the gate, hand
    every open drift whose incident does not already say it to the pipeline as ``opened``
    (sequence 0: not one of the tracker's own events), and resolve the incidents no longer
    drifted. Unchanged incidents cost a cache read, no write."""
    notifier = notifications.notifier
    notifier.active = True
    store = notifications.store
    changed = 0
    for key, drift in list(tracker.open.items()):
        if not notifier.recording:
            return  # the term ended meanwhile
        current = await store.open_incident(key)
        if current is not None and current.fingerprint == fingerprint(drift):
            continue
        live = tracker.live_policy(key)
        reason = "open when this replica took over"
        await notifier.send(DriftEvent(EventKind.OPENED, key, drift, None, reason, 0, live))
        changed += 1
    if notifier.recording:
        resolved = await notifications.pipeline.reconcile(tracker.open.keys())
        log.info(
            "caught up as leader",
            open_drifts=len(tracker.open),
            recorded=changed,
            resolved=len(resolved),
        )


@dataclass(slots=True)
class SharedState:
    """What ``ha:`` asks for: an API client, the DriftIncident store on it, and (with
    ``ha.enabled``) this replica's :class:`Leadership`. Close :attr:`api` when done."""

    api: ApiClient
    store: KubernetesStore
    leadership: Leadership | None


async def open_shared_state(settings: Settings, *, log: Any) -> SharedState:
    """Connect to the cluster, load the DriftIncident store, and prepare the election.
    Raises ``OSError`` (the store's errors) or ``LiveError`` (connecting), naming what."""
    cluster, ha = settings.cluster, settings.ha
    token = cluster.token.get_secret_value() if cluster.token is not None else None
    api = await connect(cluster.kubeconfig, context=cluster.context, token=token)
    try:
        store = await KubernetesStore(api, ha.incidents_namespace()).open()
    except BaseException:
        await api.close()
        raise
    leadership = None
    if ha.enabled:
        timing = LeaseTiming(ha.lease_duration, ha.renew_deadline, ha.retry_period)
        elector = LeaderElector(
            api, ha.lease_name, ha.namespace(), identity=ha.holder(), timing=timing, log=log
        )
        leadership = Leadership(elector, log=log)
    return SharedState(api, store, leadership)
