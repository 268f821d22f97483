"""``driftwatch run``: the desired-state loader, the live watcher and the drift engine, each a
named task under one :class:`~driftwatch.daemon.supervisor.Supervisor`.

::

    desired ──(DesiredState per commit)──┐
    watcher ──(LiveSynced, LivePut, ...)─┼─► queue ─► engine: DriftTracker ─► notifiers
    topology ──(TopologyUpdate)──────────┘
    server: /healthz, /readyz, /metrics, /api/v1 (the store), /hooks/git (sets ``refresh``)

The engine is the only task that touches the tracker, so the tracker needs no lock; it
drains pending keys in small slices and yields to the event loop between them, so a
10,000-policy start-up never blocks the loop for long. Comparing a whole new desired state
with the previous one runs in a worker thread (the engine waits for it, so the tracker is
still touched by one task at a time).

With ``cluster.watch_topology`` (the default), a ``topology`` task watches pods and
namespaces (:class:`~driftwatch.daemon.topology.TopologyFeed`) and queues each new topology
for the engine, which hands it to the tracker: drifts then carry their blast radius. It is
not part of readiness, and a cluster whose pods may not be listed is watched without it.

With ``server:`` configured (or a :class:`~driftwatch.server.HttpServer` passed in), a
fourth task serves HTTP; the daemon feeds :class:`~driftwatch.server.Metrics` through plain
callbacks (the watcher's events and restarts, the outbox's outcomes, the engine's
latencies, the Git poller's fetches) and sets the store-backed gauges at each scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from kubernetes_asyncio.client import ApiClient

from driftwatch import __version__
from driftwatch.daemon.actions import EngineRequest, IncidentActions, slack_signing_secrets
from driftwatch.daemon.leadership import Leadership, record_open_drifts
from driftwatch.daemon.notifications import Notifications
from driftwatch.daemon.notifier import Notifier
from driftwatch.daemon.remediation import Remediator
from driftwatch.daemon.supervisor import Supervisor
from driftwatch.daemon.topology import TopologyFeed
from driftwatch.desired import (
    DesiredState,
    DesiredStateError,
    fetch_commit,
    load_git,
    load_path,
)
from driftwatch.drift import DriftEvent, DriftTracker
from driftwatch.drift.admission import DesiredLookup
from driftwatch.incidents import Incident
from driftwatch.live import (
    Backoff,
    LiveDeleted,
    LiveEvent,
    LiveInvalid,
    LivePut,
    LiveResynced,
    LiveSynced,
    PolicyWatcher,
    TopologyWatcher,
    WatchOptions,
    connect,
)
from driftwatch.manifests import paused_gc
from driftwatch.rules import RuleEngine
from driftwatch.server import (
    Backend,
    DriftAges,
    GitTrigger,
    HttpServer,
    Metrics,
    Readiness,
    Role,
    RoleProvider,
    summarise_incidents,
)
from driftwatch.server.admission import AdmissionBackend, AdmissionServer
from driftwatch.settings import Settings
from driftwatch.topology import Topology

__all__ = ["Daemon", "DaemonTuning", "DesiredUpdate", "TopologyUpdate"]


@dataclass(frozen=True, slots=True)
class DesiredUpdate:
    """A new desired state (the first load, or a new commit)."""

    state: DesiredState


@dataclass(frozen=True, slots=True)
class TopologyUpdate:
    """The cluster's workloads and namespaces now (``None``: no longer known)."""

    topology: Topology | None


@dataclass(frozen=True, slots=True)
class DaemonTuning:
    """Knobs the configuration file does not expose (tests and benchmarks turn them)."""

    slice_keys: int = 64
    """Most pending keys evaluated between two yields to the event loop."""
    slice_seconds: float = 0.01
    """Longest stretch of evaluation between two yields: an in-sync key costs one ``==``,
    but a drifted one a rule evaluation (a millisecond or more), so a count alone would let a
    slice of drifted keys block the loop for 100 ms."""
    grace: float = 4.0
    """Seconds the supervisor waits for tasks to stop (SIGTERM must end within 5 s)."""
    watch: WatchOptions = field(default_factory=WatchOptions)
    backoff: Backoff = field(default_factory=Backoff)
    disconnected_grace: float = 2.0
    """Seconds the watcher may be away from the API server (reconnecting, relisting, or
    unable to reach it) before ``/readyz`` says so: a cut stream is resumed in
    milliseconds, and a probe need not flap for it."""
    topology_coalesce: float = 0.1
    """At most one new topology per this many seconds (a burst of pod events is one)."""


@dataclass(frozen=True, slots=True)
class CatchUp:
    """A new leader's catch-up, done by the engine (see ``daemon.leadership``)."""

    done: asyncio.Future[None]


Input = DesiredUpdate | LiveEvent | CatchUp | TopologyUpdate | EngineRequest
_WATCHED = (LivePut, LiveDeleted, LiveInvalid)
"""Inputs whose drift events count in the detection latency (one watch event each)."""
DEAD_LETTER_SCAN = 10_000
"""``driftwatch_dead_letters`` counts at most this many (the store lists, it does not count)."""


async def _nothing(commit: str | None, error: DesiredStateError | None) -> None:
    return None


def _gated(
    leadership: Leadership | None, notifications: Notifications | None
) -> RoleProvider | None:
    """Close the incident gate of a replica until it leads (and caught up); its role."""
    if leadership is None:
        return None
    if notifications is None:
        raise ValueError("leader election needs notifications (a shared store)")
    notifications.notifier.active = False
    notifications.notifier.gate = leadership.leading
    notifications.outbox.gate = leadership.leading
    return leadership.role


def _single() -> Role:
    return "single"


class Daemon:
    """One cluster, one desired state, the notifiers; ``await Daemon(...).run()``."""

    _desired_state: DesiredState | None = None
    """The desired state last loaded: what the admission webhook compares writes with."""

    def __init__(
        self,
        settings: Settings,
        *,
        notifiers: Sequence[Notifier],
        tuning: DaemonTuning | None = None,
        log: Any = None,
        git_cache: Path | None = None,
        executor: Executor | None = None,
        api: ApiClient | None = None,
        notifications: Notifications | None = None,
        metrics: Metrics | None = None,
        server: HttpServer | None = None,
        role: RoleProvider | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        """``api``: a client to watch with instead of one built from ``settings.cluster``
        (tests and embedders; the daemon does not close it). ``server``: serve HTTP with it
        (default: one built from ``settings.server``, if any); ``metrics``: instrument into
        it (default: a new one when there is a server, else none); ``role``: this replica's
        role for ``/readyz`` and ``driftwatch_leader`` (default: always ``single``, or
        ``leadership``'s); ``leadership``: one of several replicas, notifying only while it
        holds the Lease (needs ``notifications``, on a store the replicas share)."""
        if settings.desired is None:
            raise ValueError("the configuration has no desired: section")
        self.settings = settings
        self.notifications = notifications
        """Incidents and their delivery (``None``: events go to ``notifiers`` only)."""
        extra = [notifications.notifier] if notifications is not None else []
        self.notifiers = (*notifiers, *extra)
        self.tuning = tuning or DaemonTuning()
        self.log = log if log is not None else structlog.get_logger("driftwatch.daemon")
        self.tracker = DriftTracker(
            RuleEngine(settings.rules.to_options()),
            cluster=settings.cluster.name,
            ignore=settings.ignore.to_rules(),
            sensitivity=settings.rules.sensitive_workloads.to_sensitivity(),
        )
        self.supervisor = Supervisor(grace=self.tuning.grace, log=self.log)
        # Reverts to Git (``remediation:``, :meth:`revert`), off the engine's path.
        self.remediator = Remediator(
            settings.remediation,
            drift_of=self.tracker.drift_of,
            approved=self.tracker.is_approved,
            notifications=notifications,
            log=self.log,
        )
        self.ready = asyncio.Event()
        """Set once the desired state is loaded, the live state listed and both compared."""
        self.desired_commit: str | None = None
        self.events_sent = 0
        self.refresh = asyncio.Event()
        """Set it to fetch Git now instead of at the next poll (the push hook does)."""
        self.on_event: Callable[[DriftEvent, float], None] | None = None
        """Called with each event and the ``time.perf_counter()`` its input arrived at
        (for latency measurement), before the notifiers."""
        self.on_desired: Callable[[str | None, DesiredStateError | None], Awaitable[None]]
        self.on_desired = _nothing
        """Awaited after every Git fetch: ``(commit, None)`` when the desired state at
        ``commit`` was read (or was already current), ``(commit or None, error)`` when the
        fetch (commit ``None``) or the commit's reading failed."""
        self._queue: asyncio.Queue[tuple[Input, float]] = asyncio.Queue()
        # Approve and snooze (the API, the Slack buttons); an approval via the engine.
        self.actions = IncidentActions(
            self.tracker,
            notifications,
            lambda request: self._queue.put_nowait((request, time.perf_counter())),
        )
        self._git_cache = git_cache
        self._executor = executor
        self._watcher: PolicyWatcher | None = None
        self._topology = TopologyFeed(
            settings.cluster,
            self._put_topology,
            options=self.tuning.watch,
            backoff=self.tuning.backoff,
            coalesce=self.tuning.topology_coalesce,
            log=self.log,
        )
        self._api = api
        self._first_load = asyncio.Event()
        self._fetched = asyncio.Event()
        """Set after every Git fetch attempt (its result queued for the engine)."""
        if server is None and settings.server is not None:
            server = HttpServer(
                settings.server, log=self.log, shutdown_timeout=self.tuning.grace / 2
            )
        self.server = server
        # The validating admission webhook (``admission:``; a TLS listener of its own),
        # which compares writes with the desired state last loaded.
        self.admission = (
            AdmissionServer(
                settings.admission, log=self.log, shutdown_timeout=self.tuning.grace / 2
            )
            if settings.admission is not None
            else None
        )
        if metrics is None and server is not None:
            metrics = Metrics(version=__version__)
        self.metrics = metrics
        self.leadership = leadership
        gated = _gated(leadership, notifications)  # before anything is recorded
        self.role: RoleProvider = role or gated or _single
        self.git_fetches = 0
        """Git fetches attempted after the first load (by the poll or the push hook)."""
        self._ages = DriftAges()
        if metrics is not None and notifications is not None:
            notifications.observe(metrics.notification)
            metrics.declare_receivers(notifications.receivers)

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until :meth:`stop` (returns) or a task fails (raises ``TaskFailed``)."""
        if self.server is not None:
            server = self.server
            self.supervisor.add("server", lambda: server.serve(self.backend()))
        if self.admission is not None:
            admission = self.admission
            self.supervisor.add("admission", lambda: admission.serve(self.admission_backend()))
        self.supervisor.add("desired", self._desired_task)
        self.supervisor.add("watcher", self._watch_task)
        self.supervisor.add("engine", self._engine_task)
        cluster = self.settings.cluster  # remediation: a write access check, then reverts
        self.supervisor.add("remediation", lambda: self.remediator.run(self._api, cluster))
        if self.settings.cluster.watch_topology:
            # One-shot: a cluster whose pods cannot be watched is watched without them.
            self.supervisor.add("topology", self._topology_task, daemon=False)
        notifications, leadership = self.notifications, self.leadership
        if notifications is not None and leadership is not None:
            self.supervisor.add("election", leadership.campaign)
            self.supervisor.add(
                "leading",
                lambda: leadership.lead(
                    notifications, in_sync=self.ready, catch_up=self.catch_up, recheck=self.recheck
                ),
            )
        elif notifications is not None:
            self.supervisor.add("outbox", notifications.outbox_task)
            self.supervisor.add("reminders", notifications.reminder_task)
        await self.supervisor.run()

    def stop(self, reason: str = "stop requested") -> None:
        self.supervisor.stop(reason)

    async def revert(self, incident_id: str, actor: str, reason: str | None = None) -> Incident:
        """Put Git's version of the incident's policy back now, whatever the remediation
        mode, and record ``reverted`` by ``actor`` (the server's ``Backend.revert``); see
        :meth:`Remediator.revert` for what it raises."""
        return await self.remediator.revert(incident_id, actor=actor, reason=reason)

    @property
    def watcher(self) -> PolicyWatcher | None:
        return self._watcher

    @property
    def topology_watcher(self) -> TopologyWatcher | None:
        return self._topology.watcher

    # --- what the server asks ----------------------------------------------------------------

    def readiness(self) -> Readiness:
        """Ready once the desired state is loaded, the live state listed and compared, the
        store (if any) open and the role known, and while the watcher is connected to the
        API server (a disconnection shorter than ``tuning.disconnected_grace`` is not
        reported: a cut watch is resumed at once). A follower is ready too."""
        reasons = []
        if not self._first_load.is_set():
            reasons.append("desired state not loaded")
        if not self.ready.is_set():
            reasons.append("live state not listed and compared yet")
        elif self._watcher is not None:
            health = self._watcher.health
            away = time.monotonic() - health.since
            if not health.connected and away >= self.tuning.disconnected_grace:
                reasons.append(
                    f"not connected to the Kubernetes API server for {away:.0f} s"
                    f" ({health.reason or 'unknown'}): changes are not seen until it is back"
                )
        if self.notifications is not None and not self.notifications.is_open:
            reasons.append("incident store not open")
        role = self.role()
        if role is None:
            reasons.append("role not known yet (leader election)")
        return Readiness(tuple(reasons), role)

    def backend(self) -> Backend:
        """The server's view of this daemon (called when the server starts; a daemon built
        without metrics gets them now, before its watcher starts)."""
        if self.metrics is None:
            self.metrics = Metrics(version=__version__)
        metrics = self.metrics
        git = self.settings.desired.git if self.settings.desired is not None else None
        return Backend(
            metrics=metrics,
            readiness=self.readiness,
            refresh_metrics=self._refresh_metrics,
            incidents=self.notifications.store if self.notifications is not None else None,
            git=GitTrigger(self.refresh.set, git.ref) if git is not None else None,
            act=self.actions.act if self.notifications is not None else None,
            live=self.actions.live,
            slack_signing_secrets=slack_signing_secrets(self.settings),
            revert=self.revert if self.notifications is not None else None,
        )

    def admission_backend(self) -> AdmissionBackend:
        """The admission webhook's view of this daemon: the desired state last loaded (a
        reference swapped on the loop, never a tracker being updated in a worker thread),
        the tracker's rule engine and ignore rules."""

        def desired() -> DesiredLookup | None:
            state = self._desired_state
            if state is None:
                return None
            policies = state.policies
            return lambda namespace, name: policies.get((namespace, name))

        tracker = self.tracker
        return AdmissionBackend(
            desired=desired,
            engine=lambda: tracker.engine,
            ignore=lambda: tracker.ignore,
            cluster=self.settings.cluster.name,
        )

    async def _refresh_metrics(self) -> None:
        """The gauges read at scrape time: open drifts (from the store, which knows when
        each opened, else from the drift events), the outbox, the role."""
        metrics = self.metrics
        if metrics is None:
            return
        metrics.set_leader(self.role() in ("leader", "single"))
        now = time.time()
        notifications = self.notifications
        if notifications is None or not notifications.is_open or self.role() == "follower":
            # A follower's copy of the shared store is as old as its start or last term:
            # its own drift events are current.
            metrics.set_open_drifts(*self._ages.summary(now))
            return
        store = notifications.store
        metrics.set_open_drifts(*summarise_incidents(await store.open_incidents(), now))
        metrics.set_outbox(
            pending=await store.pending_count(),
            dead_letters=len(await store.dead_letters(limit=DEAD_LETTER_SCAN)),
        )

    # --- desired state ---------------------------------------------------------------------

    def _load(self, commit: str | None = None) -> DesiredState:
        desired = self.settings.desired
        assert desired is not None  # noqa: S101 - checked in __init__
        namespace = self.settings.default_namespace
        if desired.git is not None:
            git = desired.git
            return load_git(
                git.url,
                ref=commit or git.ref,
                subpath=git.path,
                cache_dir=self._git_cache,
                default_namespace=namespace,
                executor=self._executor,
            )
        assert desired.path is not None  # noqa: S101 - the model requires one of the two
        return load_path(desired.path, default_namespace=namespace, executor=self._executor)

    async def _load_off_loop(self, commit: str | None = None) -> DesiredState:
        # No collections while 10,000 manifests are parsed (they would find nothing).
        with paused_gc(freeze=self.tuning.watch.freeze_gc):
            return await asyncio.to_thread(self._load, commit)

    async def _desired_task(self) -> None:
        desired = self.settings.desired
        assert desired is not None  # noqa: S101 - checked in __init__
        # The first load must succeed: there is no last good state to keep.
        try:
            state = await self._load_off_loop()
        except DesiredStateError:
            if desired.git is not None and self.metrics is not None:
                self.metrics.git_sync_failed()
            raise
        if desired.git is not None and self.metrics is not None:
            self.metrics.git_synced(time.time())
        self._accept(state)
        if desired.git is None:
            await asyncio.Event().wait()  # a directory is read once; nothing to poll
            return
        git = desired.git
        failed: str | None = None  # a commit that could not be read: reported once
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.refresh.wait(), timeout=git.poll_interval)
            self.refresh.clear()
            commit: str | None = None
            self.git_fetches += 1
            try:
                # Fetch and resolve first: the tree is read only when the commit changed.
                commit = await asyncio.to_thread(
                    fetch_commit, git.url, ref=git.ref, cache_dir=self._git_cache
                )
                if self.metrics is not None:
                    self.metrics.git_synced(time.time())
                if commit == failed:
                    self._fetched.set()
                    continue
                if commit == self.desired_commit:
                    self._fetched.set()
                    await self.on_desired(commit, None)
                    continue
                state = await self._load_off_loop(commit)
            except DesiredStateError as error:
                self.log.error(
                    "cannot read the desired state; keeping the last good one",
                    error=str(error),
                    commit=self.desired_commit,
                )
                if self.metrics is not None and commit is None:
                    self.metrics.git_sync_failed()
                elif self.metrics is not None:
                    self.metrics.desired_load_failed()  # fetched, but the commit is broken
                failed = commit  # None when the fetch itself failed: retried next time
                self._fetched.set()
                await self.on_desired(commit, error)
                continue
            failed = None
            self._accept(state)
            self._fetched.set()
            await self.on_desired(commit, None)

    def _accept(self, state: DesiredState) -> None:
        self.log.info(
            "desired state loaded",
            source=state.source,
            commit=state.commit,
            policies=len(state.policies),
        )
        self.desired_commit = state.commit
        self._desired_state = state
        self._queue.put_nowait((DesiredUpdate(state), time.perf_counter()))
        self._first_load.set()

    # --- live state ------------------------------------------------------------------------

    async def _watch_task(self) -> None:
        # The list waits for the first desired state: parsing 10,000 manifests in the loader
        # thread holds the interpreter lock most of the time, and the loop would wait for it
        # on every step of the list. (Later Git loads overlap the watch; they are rare.)
        await self._first_load.wait()
        if self._api is not None:
            await self._watch(self._api)
            return
        cluster = self.settings.cluster
        token = cluster.token.get_secret_value() if cluster.token is not None else None
        async with await connect(cluster.kubeconfig, context=cluster.context, token=token) as api:
            await self._watch(api)

    async def _watch(self, api: ApiClient) -> None:
        cluster = self.settings.cluster
        watcher = PolicyWatcher(
            api,
            namespaces=cluster.namespaces,
            options=self.tuning.watch,
            backoff=self.tuning.backoff,
            log=self.log,
            on_event=self.metrics.watch_event if self.metrics is not None else None,
            on_restart=self.metrics.watch_restart if self.metrics is not None else None,
        )
        self._watcher = watcher
        self.log.info("watching", server=watcher.server, cluster=cluster.name)
        events = watcher.events()
        async with contextlib.aclosing(events):
            async for event in events:
                self._queue.put_nowait((event, time.perf_counter()))

    async def _topology_task(self) -> None:
        await self._first_load.wait()  # as the policy watch, and after it: it matters less
        await self._topology.run(self._api)

    def _put_topology(self, topology: Topology | None) -> None:
        self._queue.put_nowait((TopologyUpdate(topology), time.perf_counter()))

    # --- the engine ------------------------------------------------------------------------

    async def _engine_task(self) -> None:
        while True:
            item, arrived = await self._queue.get()
            if self.ready.is_set():
                await self._process(item, arrived)
                continue
            # The initial sync builds a drift for every differing key of 10,000: no cyclic
            # collection while it runs (a full one then takes 100 ms), and what it leaves
            # behind is frozen out of later collections' way, as the watcher does for its list.
            with paused_gc(freeze=self.tuning.watch.freeze_gc):
                await self._process(item, arrived)

    async def _process(self, item: Input, arrived: float) -> None:
        await self._apply(item)
        # Detection latency: a watch event's drift events, once the start-up is behind.
        await self._drain(arrived, measured=self.ready.is_set() and isinstance(item, _WATCHED))
        if not self.ready.is_set() and self.tracker.ready and not self.tracker.pending:
            if self.notifications is not None and self.notifications.notifier.recording:
                # What was open before a restart and is fixed now resolves here.
                await self.notifications.reconcile(self.tracker.open.keys())
                await self.actions.rearm()  # approvals the tracker forgot in a restart
            self.ready.set()
            self.log.info(
                "in sync with the cluster",
                open_drifts=len(self.tracker.open),
                commit=self.desired_commit,
            )

    async def catch_up(self) -> None:
        """Record every open drift as a leader must (see ``daemon.leadership``), against
        a desired state fetched just now (replicas poll Git on their own: this one may be
        behind the last leader); done by the engine, between two inputs. Returns when done;
        raises what the store raised."""
        await self.fetch_desired()
        await self.recheck()
        self.remediator.sweep(self.tracker.open)  # drifts the last leader did not revert

    async def recheck(self) -> None:
        """The catch-up without a fetch: what a leader runs now and then, to make good an
        incident change a store failure lost."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((CatchUp(done), time.perf_counter()))
        await done

    async def fetch_desired(self, timeout: float = 30.0) -> None:
        """Fetch Git now and wait until the result is queued for the engine (at most
        ``timeout`` seconds; nothing to do for a directory)."""
        desired = self.settings.desired
        if desired is None or desired.git is None:
            return
        self._fetched.clear()
        self.refresh.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._fetched.wait(), timeout)

    async def _catch_up(self, item: CatchUp) -> None:
        if item.done.cancelled():
            return  # asked for by a term that has ended
        try:
            if self.notifications is not None:
                await record_open_drifts(self.tracker, self.notifications, log=self.log)
                await self.actions.rearm()
        except Exception as error:  # the store's: the term retries; the engine goes on
            if not item.done.done():
                item.done.set_exception(error)
            return
        if not item.done.done():
            item.done.set_result(None)

    async def _apply(self, item: Input) -> None:
        tracker = self.tracker
        if isinstance(item, EngineRequest):
            await self.actions.apply(item)
        elif isinstance(item, CatchUp):
            await self._catch_up(item)
        elif isinstance(item, TopologyUpdate):
            tracker.set_topology(item.topology)
        elif isinstance(item, DesiredUpdate):
            # Comparing 10,000 policies with the last state takes a while: off the loop.
            await asyncio.to_thread(tracker.set_desired, item.state.policies)
        elif isinstance(item, LivePut):
            tracker.put_live(item.policy)
        elif isinstance(item, LiveDeleted):
            tracker.delete_live(item.namespace, item.name)
        elif isinstance(item, LiveSynced):
            # Marking 10,000 keys pending takes tens of milliseconds: off the loop too.
            await asyncio.to_thread(tracker.set_live, item.policies)
        elif isinstance(item, LiveInvalid):
            self.log.error(
                "the cluster holds a NetworkPolicy driftwatch cannot read; treating it as absent",
                namespace=item.namespace,
                name=item.name,
                error=item.message,
            )
            tracker.delete_live(item.namespace, item.name)
        elif isinstance(item, LiveResynced):
            self.log.info(
                "relisted after the watch expired",
                since=item.since,
                resource_version=item.resource_version,
                changed=item.changed,
            )

    async def _drain(self, arrived: float, *, measured: bool = False) -> None:
        tracker, tuning = self.tracker, self.tuning
        while tracker.pending:
            deadline = time.perf_counter() + tuning.slice_seconds
            for _ in range(tuning.slice_keys):
                for event in tracker.drain(1):
                    await self._emit(event, arrived, measured=measured)
                if not tracker.pending or time.perf_counter() >= deadline:
                    break
            if tracker.pending:
                await asyncio.sleep(0)

    async def _emit(self, event: DriftEvent, arrived: float, *, measured: bool = False) -> None:
        self.events_sent += 1
        event = self.remediator.explain(event)  # a resolve its revert caused says so
        if self.metrics is not None:
            if measured:
                self.metrics.drift_detected(time.perf_counter() - arrived)
            self._ages.observe(event, time.time())
        if self.on_event is not None:
            self.on_event(event, arrived)
        for notifier in self.notifiers:
            try:
                await notifier.send(event)
            except Exception as error:
                self.log.error(
                    "notifier failed",
                    receiver=notifier.name,
                    error=f"{type(error).__name__}: {error}",
                    cluster=event.key.cluster,
                    namespace=event.key.namespace,
                    policy=event.key.name,
                )
        self.remediator.observe(event)  # after the notifiers: the incident exists
