"""Remediation: driftwatch puts Git's version back (``remediation:``), and people revert an
incident's policy on demand (:meth:`Remediator.revert`: the API, Slack, the CLI).

The engine hands every drift event to :meth:`Remediator.observe` (after the notifiers, so
the incident exists), which only queues the key when this replica leads and the
configuration's first matching matcher says ``revert``: the write happens in the
``remediation`` task's workers, never on the engine's path, one revert per key at a time.
A worker re-reads the key's drift from the tracker when it starts (the newest, not the
event's), skips it when it is gone, approved, or the drift is driftwatch's own write not
seen yet, and then

* ``modified`` or ``missing``: server-side applies Git's version
  (:class:`~driftwatch.live.apply.PolicyWriter`); ``unmanaged``: deletes the policy;
* records ``reverted`` on the incident (``Pipeline.act``: "reverted by driftwatch at ..."),
  which is announced; the watch then sees the policy back as in Git and the incident
  resolves, its reason rewritten by :meth:`Remediator.explain` to "reverted by driftwatch"
  (the tracker only sees that the live policy matches Git again).

**Fight loops.** Reverts of a key are counted over ``window``; when one more is needed
after ``max_reverts``, the key is left alone and a ``revert-loop`` action is recorded once,
naming the other writer (the managers whose changes were reverted, from the live policy's
``managedFields``). The count empties when ``window`` passes without a revert; the key's
next drift event is reverted again.

**Start-up.** When a matcher says ``revert`` and ``dry_run`` is off, the task first asks
``SelfSubjectAccessReview`` whether patch, create and delete on NetworkPolicies are allowed
(in the matchers' namespaces when they are all literal, else cluster-wide) and fails the
daemon with one line naming what is missing. ``dry_run`` logs and records what would be
reverted and writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import structlog
from kubernetes_asyncio.client import ApiClient

from driftwatch.daemon.notifications import Notifications
from driftwatch.drift import Drift, DriftEvent, EventKind, ResolveReason
from driftwatch.incidents import (
    Action,
    Incident,
    IncidentActionError,
    IncidentResolved,
    NotLeading,
    UnknownIncident,
)
from driftwatch.live import LiveAccessError, LiveError, LiveUnavailableError, connect
from driftwatch.live.apply import FIELD_MANAGER, Applied, PolicyWriter
from driftwatch.policy import NetworkPolicy, PolicyKey
from driftwatch.rules import Status
from driftwatch.settings import ClusterSettings, format_duration
from driftwatch.settings.remediation import Mode, RemediationSettings

__all__ = ["RBAC_FILES", "RemediationStats", "Remediator", "RevertFailed", "Writer"]

RBAC_FILES = (
    "config/kubernetes/remediation-clusterrole.yaml",
    "config/kubernetes/remediation-clusterrolebinding.yaml",
)
"""What grants the write verbs (named by the start-up error)."""
WORKERS = 4
"""Reverts in flight at once (of different keys)."""
RETRIES = (0.2, 1.0)
"""Pauses before retrying a write the API server failed transiently."""
_RESOLVED_BY_US = (ResolveReason.LIVE_MATCHES_GIT, ResolveReason.DELETED)


class Writer(Protocol):
    """What reverts write with (:class:`~driftwatch.live.apply.PolicyWriter`)."""

    async def apply(self, desired: NetworkPolicy) -> Applied: ...
    async def delete(self, namespace: str, name: str) -> bool: ...
    async def denied(self, namespaces: Sequence[str] | None) -> list[tuple[str, str | None]]: ...


class RevertFailed(IncidentActionError):
    """The cluster refused or failed a revert (the message says why, one line)."""


@dataclass(slots=True)
class RemediationStats:
    """Counters, for logs and tests."""

    reverted: int = 0
    failed: int = 0
    loops: int = 0
    dry_runs: int = 0


@dataclass(slots=True)
class _Key:
    """What the remediator remembers of one key."""

    reverts: deque[float] = field(default_factory=deque)
    """When it was reverted (monotonic), within the window."""
    writers: Counter[str] = field(default_factory=Counter)
    """Managers whose changes were reverted within the window."""
    looping: bool = False
    ours: frozenset[str] = frozenset()
    """resourceVersions of driftwatch's last writes (their watch events are its own)."""
    deleted: bool = False
    """driftwatch deleted it last, and the watch has not said so yet."""
    writing: bool = False
    """A write of driftwatch's is in flight."""
    users: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Remediator:
    """One daemon's remediation; see the module docstring."""

    def __init__(
        self,
        settings: RemediationSettings,
        *,
        drift_of: Callable[[PolicyKey], Drift | None],
        approved: Callable[[PolicyKey], bool] = lambda _: False,
        notifications: Notifications | None = None,
        log: Any = None,
        clock: Callable[[], float] = time.monotonic,
        workers: int = WORKERS,
    ) -> None:
        """``drift_of``/``approved``: the tracker's view of a key; ``notifications``:
        where reverts are recorded (and, with HA, whether this replica leads)."""
        self.settings = settings
        self.stats = RemediationStats()
        self._drift_of = drift_of
        self._approved = approved
        self._notifications = notifications
        self._log = log if log is not None else structlog.get_logger("driftwatch.daemon")
        self._clock = clock
        self._workers = workers
        self._queue: asyncio.Queue[PolicyKey] = asyncio.Queue()
        self._queued: set[PolicyKey] = set()
        self._keys: dict[PolicyKey, _Key] = {}
        self._writer: Writer | None = None
        self._ready = asyncio.Event()
        self._wanted = asyncio.Event()
        """Set when a revert is asked for: without revert mode the task connects only then."""
        self._reverting = any(m.mode == "revert" for m in settings.matchers)

    @property
    def leading(self) -> bool:
        """Whether this replica records incidents (always, without leader election)."""
        notifications = self._notifications
        return notifications is None or notifications.notifier.recording

    def mode_for(self, drift: Drift) -> Mode:
        return self.settings.mode_for(
            drift.key.namespace, drift.severity, (f.rule for f in drift.findings)
        )

    # --- the engine's side (cheap, synchronous) ------------------------------------------

    def observe(self, event: DriftEvent) -> None:
        """Queue the key of an ``opened`` or ``updated`` drift in revert mode."""
        if (
            self._reverting
            and event.kind is not EventKind.RESOLVED
            and self.leading
            and self.mode_for(event.drift) == "revert"
        ):
            self._enqueue(event.key)

    def sweep(self, drifts: Mapping[PolicyKey, Drift]) -> int:
        """Queue every open drift in revert mode (a new leader's catch-up: drifts the last
        leader did not revert); returns how many."""
        if not self._reverting or not self.leading:
            return 0
        keys = [k for k, d in list(drifts.items()) if self.mode_for(d) == "revert"]
        for key in keys:
            self._enqueue(key)
        return len(keys)

    def explain(self, event: DriftEvent) -> DriftEvent:
        """A resolve that driftwatch's own revert caused, with the reason saying so."""
        if event.kind is not EventKind.RESOLVED or event.reason not in _RESOLVED_BY_US:
            return event
        state = self._keys.get(event.key)
        if state is None:
            return event
        origin = event.live.origin if event.live is not None else None
        ours = origin is not None and origin.resource_version in state.ours
        if ours or (event.live is None and state.deleted) or state.writing:
            state.deleted = False
            return replace(event, reason=str(ResolveReason.REVERTED))
        return event

    def _enqueue(self, key: PolicyKey) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    # --- the task --------------------------------------------------------------------------

    async def run(self, api: ApiClient | None, cluster: ClusterSettings) -> None:
        """The ``remediation`` task: check write access (revert mode), then revert queued
        keys until cancelled. ``api``: the client to write with (else one is connected: at
        once in revert mode, else when a revert is first asked for)."""
        await self._run(lambda: self._connected(api, cluster))

    async def serve(self, writer: Writer) -> None:
        """:meth:`run` with the writer given (tests)."""
        await self._run(lambda: self._provide(writer))

    async def _run(self, provide: Callable[[], Awaitable[None]]) -> None:
        # Workers run from the start (a dry run writes nothing); a write waits for the writer.
        workers = [
            asyncio.create_task(self._work(), name=f"remediation-{n}") for n in range(self._workers)
        ]
        try:
            await provide()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _connected(self, api: ApiClient | None, cluster: ClusterSettings) -> None:
        if not self.settings.writes:
            await self._wanted.wait()
        if api is not None:
            await self._provide(PolicyWriter(api))
            return
        token = cluster.token.get_secret_value() if cluster.token is not None else None
        async with await connect(cluster.kubeconfig, context=cluster.context, token=token) as own:
            await self._provide(PolicyWriter(own))

    async def _provide(self, writer: Writer) -> None:
        """Check access (revert mode), hand ``writer`` out, and keep it until cancelled."""
        if self.settings.writes:
            await self._check_access(writer)
        self._writer = writer
        self._ready.set()
        await asyncio.Event().wait()

    async def _check_access(self, writer: Writer) -> None:
        scope = self.settings.write_scope()
        for pause in (*RETRIES, 5.0, 10.0):
            try:
                denied = await writer.denied(scope)
                break
            except LiveUnavailableError as error:
                self._log.warning("cannot check write access yet", error=str(error))
                await asyncio.sleep(pause)
        else:
            denied = await writer.denied(scope)
        if not denied:
            self._log.info(
                "remediation: write access checked",
                namespaces=list(scope) if scope is not None else "all",
            )
            return
        where = f"in namespaces {', '.join(scope)}" if scope is not None else "cluster-wide"
        verbs = list(dict.fromkeys(verb for verb, _ in denied))
        namespaces = sorted({ns for _, ns in denied if ns is not None})
        lacking = f"{', '.join(verbs)}" + (f" (in {', '.join(namespaces)})" if namespaces else "")
        raise LiveAccessError(
            f"remediation reverts {where} (a matcher has mode revert), but the API server"
            f" denies driftwatch {lacking} on networkpolicies.networking.k8s.io"
            f" (SelfSubjectAccessReview); apply {' and '.join(RBAC_FILES)} (or bind the"
            " driftwatch-remediation ClusterRole in those namespaces), or set"
            " remediation.dry_run: true"
        )

    async def _work(self) -> None:
        if self.settings.writes:
            await self._ready.wait()  # access checked
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                async with self._hold(key) as state:
                    await self._auto(key, state)
            except Exception as error:  # one key's trouble must not end the task
                self.stats.failed += 1
                self._log.error(
                    "remediation failed",
                    namespace=key.namespace,
                    policy=key.name,
                    error=f"{type(error).__name__}: {error}",
                )

    @contextlib.asynccontextmanager
    async def _hold(self, key: PolicyKey) -> AsyncIterator[_Key]:
        """The key's state, locked: one revert per key at a time."""
        state = self._keys.setdefault(key, _Key())
        state.users += 1
        try:
            async with state.lock:
                yield state
        finally:
            state.users -= 1
            idle = not (state.users or state.reverts or state.looping or state.deleted)
            if idle and not state.ours:
                self._keys.pop(key, None)

    async def _auto(self, key: PolicyKey, state: _Key) -> None:
        drift = self._drift_of(key)
        if drift is None or not self.leading or self._approved(key):
            return
        if self.mode_for(drift) != "revert":
            return
        origin = drift.live.origin if drift.live is not None else None
        if origin is not None and origin.resource_version in state.ours:
            return  # driftwatch's own write, before the watch showed the next one
        now = self._clock()
        window = self.settings.window
        while state.reverts and state.reverts[0] <= now - window:
            state.reverts.popleft()
        if not state.reverts:
            state.looping, state.writers = False, Counter()
        writer = origin.manager if origin is not None else None
        if len(state.reverts) >= self.settings.max_reverts:
            if not state.looping:
                state.looping = True
                await self._loop(key, state, writer)
            return
        what = _what(drift)
        if self.settings.dry_run:
            self.stats.dry_runs += 1
            self._log.warning(
                "remediation dry run: would revert",
                namespace=key.namespace,
                policy=key.name,
                action=what,
                changed_by=writer,
            )
            reason = f"dry run, nothing was changed: driftwatch would have {what}"
            await self._record(key, Action.REVERTED, "driftwatch (dry run)", reason)
            return
        reason = f"{what} (remediation: mode revert)"
        incident = await self._incident_id(key)
        await self._write(key, state, drift)
        state.reverts.append(self._clock())
        if writer and writer != FIELD_MANAGER:
            state.writers[writer] += 1
        self.stats.reverted += 1
        self._log.info(
            "reverted to Git", namespace=key.namespace, policy=key.name, action=what, undid=writer
        )
        if incident is not None:
            await self._act(incident, Action.REVERTED, FIELD_MANAGER, reason)

    async def _loop(self, key: PolicyKey, state: _Key, writer: str | None) -> None:
        self.stats.loops += 1
        seen = [w for w, _ in state.writers.most_common()]
        if writer and writer != FIELD_MANAGER and writer not in seen:
            seen.insert(0, writer)
        other = ", ".join(seen) if seen else "an unknown writer"
        window = format_duration(self.settings.window)
        reason = (
            f"reverted {len(state.reverts)} times within {window} and changed back each time"
            f" by {other}; driftwatch stops reverting {key.namespace}/{key.name} until {window}"
            f" pass without a revert: stop the other writer or change Git"
        )
        self._log.error(
            "remediation: revert loop, not reverting",
            namespace=key.namespace,
            policy=key.name,
            other_writer=other,
            reverts=len(state.reverts),
        )
        await self._record(key, Action.REVERT_LOOP, FIELD_MANAGER, reason)

    async def _write(self, key: PolicyKey, state: _Key, drift: Drift) -> None:
        """Put Git's version of ``key`` back; raises :class:`LiveError`."""
        writer = await self._writer_ready()
        for pause in (*RETRIES, None):
            state.writing = True
            try:
                if drift.desired is None:
                    state.ours, state.deleted = frozenset(), True
                    await writer.delete(key.namespace, key.name)
                else:
                    applied = await writer.apply(drift.desired)
                    state.ours, state.deleted = frozenset(applied.resource_versions), False
                    if applied.policy != drift.desired:
                        self._log.warning(
                            "after the revert the policy still differs from Git (changed on"
                            " the server, e.g. by a mutating admission webhook)",
                            namespace=key.namespace,
                            policy=key.name,
                        )
                return
            except LiveUnavailableError:
                if pause is None:
                    raise
            finally:
                state.writing = False
            await asyncio.sleep(pause)

    async def _writer_ready(self, timeout: float = 30.0) -> Writer:
        self._wanted.set()
        async with asyncio.timeout(timeout):
            await self._ready.wait()
        assert self._writer is not None  # noqa: S101 - set before _ready
        return self._writer

    # --- incidents -------------------------------------------------------------------------

    async def _incident_id(self, key: PolicyKey) -> str | None:
        notifications = self._notifications
        if notifications is None:
            return None
        incident = await notifications.store.open_incident(key)
        return incident.id if incident is not None else None

    async def _record(self, key: PolicyKey, action: Action, actor: str, reason: str) -> None:
        incident = await self._incident_id(key)
        if incident is not None:
            await self._act(incident, action, actor, reason)

    async def _act(self, incident: str, action: Action, actor: str, reason: str) -> None:
        notifications = self._notifications
        if notifications is None:
            return
        try:
            await notifications.pipeline.act(incident, action, actor=actor, reason=reason)
        except (IncidentActionError, ValueError) as error:
            self._log.warning(
                "could not record on the incident",
                incident=incident,
                action=str(action),
                error=str(error),
            )

    # --- on demand ---------------------------------------------------------------------------

    async def revert(self, incident_id: str, *, actor: str, reason: str | None = None) -> Incident:
        """Put Git's version of an open incident's policy back now, whatever its mode
        (``dry_run`` and the loop limits are for automatic reverts), and record
        ``reverted`` by ``actor``. Returns the incident as recorded. Raises
        :class:`~driftwatch.incidents.UnknownIncident`,
        :class:`~driftwatch.incidents.IncidentResolved`,
        :class:`~driftwatch.incidents.NotLeading` (a follower: the leader writes),
        :class:`RevertFailed` (nothing to revert, or the cluster refused: the message says
        which; it is an ``IncidentActionError`` too), ``ValueError`` (an empty actor)."""
        if not actor or not actor.strip():
            raise ValueError("a revert needs an actor")
        notifications = self._notifications
        if notifications is None:
            raise IncidentActionError("incidents are not stored: configure notifiers")
        if not notifications.notifier.recording:
            raise NotLeading()
        incident = await notifications.store.get(incident_id)
        if incident is None:
            raise UnknownIncident(incident_id)
        if not incident.is_open:
            raise IncidentResolved(incident_id)
        key = incident.key
        async with self._hold(key) as state:
            drift = self._drift_of(key)
            if drift is None:
                raise RevertFailed(f"{key.namespace}/{key.name} matches Git now: nothing to revert")
            try:
                await self._write(key, state, drift)
            except (LiveError, TimeoutError) as error:
                self.stats.failed += 1
                raise RevertFailed(
                    f"could not revert {key.namespace}/{key.name}: {error}"
                ) from error
            self.stats.reverted += 1
        self._log.info(
            "reverted to Git on request", incident=incident_id, actor=actor, action=_what(drift)
        )
        text = f"{reason} ({_what(drift)})" if reason else _what(drift)
        return await notifications.pipeline.act(
            incident_id, Action.REVERTED, actor=actor, reason=text
        )


def _what(drift: Drift) -> str:
    """What a revert of ``drift`` does, in words, naming whose change it undoes."""
    origin = drift.live.origin if drift.live is not None else None
    writer = origin.manager if origin is not None else None
    if drift.desired is None:
        text = "deleted the policy, which is not in Git"
        return f"{text} (written by {writer})" if writer else text
    if drift.status is Status.MISSING:
        return "recreated the policy from Git"
    text = "re-applied Git's version"
    return f"{text} over the change by {writer}" if writer else text
