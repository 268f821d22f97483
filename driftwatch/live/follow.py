"""List-then-watch, shared by the watchers (:class:`~driftwatch.live.watcher.PolicyWatcher`,
:class:`~driftwatch.live.topology.TopologyWatcher`).

A :class:`Follower` runs one list+watch per :class:`Scope` (a resource, cluster-wide or in one
namespace): it lists (retrying transient failures with backoff), watches from the list's
resourceVersion, resumes from the last resourceVersion seen (bookmarks included) after a
stream ends or fails, backs off with jitter (reset once a watch makes progress), and lists
again after 410 Gone. What a list holds and what an event changes are the subclass's: it
implements :meth:`Follower._fetch`, :meth:`Follower._applier` and
:meth:`Follower._reconcile`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import structlog
from kubernetes_asyncio.client import ApiClient

from driftwatch.live.errors import LiveError, LiveExpiredError, LiveUnavailableError
from driftwatch.live.listing import Slicer, resource_version
from driftwatch.live.options import Backoff, WatchOptions
from driftwatch.live.transport import Transport
from driftwatch.manifests import paused_gc

__all__ = [
    "CHANGES",
    "Follower",
    "Listed",
    "Scope",
    "WatchHealth",
    "WatchStats",
    "connection_limit",
]

STEADY_SECONDS = 1.0  # a watch that lasted this long made progress, events or not
CHANGES = ("ADDED", "MODIFIED", "DELETED")


@dataclass(slots=True)
class WatchStats:
    """Counters for metrics. ``received``: watch events by type (ADDED, MODIFIED, DELETED,
    BOOKMARK, ERROR); ``emitted``: yielded events by class name; ``restarts``: restarted
    watches and retried lists by reason (``closed``, ``expired``, ``too_large``,
    ``unreachable``, ``disconnected``, ``read_timeout``, ``server_error``, ``throttled``,
    ``stream_error``, ``bad_stream``); ``lists``/``relists``: complete lists, and those
    made after a 410."""

    received: Counter[str] = field(default_factory=Counter)
    emitted: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    lists: int = 0
    relists: int = 0


@dataclass(frozen=True, slots=True)
class WatchHealth:
    """Whether the watcher is connected to the API server, for readiness.

    ``connected``: every scope has a watch stream open (the server answered 200) or has
    just listed successfully; it turns false when a watch or list fails (refused, dropped,
    5xx, 429, timed out), when a 410 forces a relist (until the list succeeds), and when a
    stream ends cleanly (until the next one opens, normally at once). ``since``: the
    ``time.monotonic()`` at which it last changed (while disconnected: when the longest
    outage of any scope began). ``reason``: the restart reason (as in :class:`WatchStats`)
    that disconnected it, or ``starting`` before the first list."""

    connected: bool
    since: float
    reason: str | None = None


@dataclass(slots=True)
class Scope:
    """One list+watch: the whole cluster (``namespace`` None) or one namespace; ``what``
    names the resource in logs when a watcher follows several."""

    namespace: str | None
    what: str = ""
    version: str = ""
    attempt: int = 0
    connected: bool = False
    changed: float = field(default_factory=time.monotonic)
    reason: str | None = "starting"

    def label(self) -> str:
        where = self.namespace if self.namespace is not None else "*"
        return f"{self.what}:{where}" if self.what else where

    def mark(self, connected: bool, reason: str | None = None) -> None:
        """Record the connection state; ``changed`` moves only when it flips."""
        if connected != self.connected:
            self.connected = connected
            self.changed = time.monotonic()
        self.reason = None if connected else reason


def connection_limit(api: ApiClient) -> int:
    """How many connections the client's pool allows (0: no limit, or unknown)."""
    session: Any = getattr(getattr(api, "rest_client", None), "pool_manager", None)
    limit = getattr(getattr(session, "connector", None), "limit", 0)
    return limit if isinstance(limit, int) else 0


class Listed(Protocol):
    """What a list gives a follower: at least the resourceVersion to watch from."""

    @property
    def resource_version(self) -> str: ...


L = TypeVar("L", bound=Listed)
C = TypeVar("C")


class Follower(Generic[L, C]):
    """The list/watch/resume/relist loop of every scope (see the module docstring).

    ``put(change)`` receives what :meth:`_applier`'s function returns for a watch event
    (when not ``None``) and whatever :meth:`_reconcile` puts after a relist."""

    def __init__(
        self,
        *,
        options: WatchOptions | None,
        backoff: Backoff | None,
        log: Any,
        rng: random.Random | None,
        on_event: Callable[[str], None] | None,
        on_restart: Callable[[str], None] | None,
    ) -> None:
        self.options = options if options is not None else WatchOptions()
        self.backoff = backoff if backoff is not None else Backoff()
        self.stats = WatchStats()
        self._log = log if log is not None else structlog.get_logger("driftwatch.live")
        self._rng = rng if rng is not None else random.Random()  # noqa: S311  (jitter)
        self._scopes: list[Scope] = []
        self._on_event = on_event
        self._on_restart = on_restart

    @property
    def health(self) -> WatchHealth:
        """The connection state now (see :class:`WatchHealth`); cheap, for ``/readyz``."""
        scopes = self._scopes
        if not scopes:
            return WatchHealth(False, time.monotonic(), "starting")
        down = [s for s in scopes if not s.connected]
        if not down:
            return WatchHealth(True, max(s.changed for s in scopes))
        first = min(down, key=lambda s: s.changed)
        return WatchHealth(False, first.changed, first.reason)

    # --- what a subclass provides -------------------------------------------------------

    async def _fetch(self, scope: Scope) -> L:
        """One complete list of ``scope`` (raise a :class:`LiveError` on failure)."""
        raise NotImplementedError

    def _transport_of(self, scope: Scope) -> Transport:
        """The transport that lists and watches ``scope``."""
        raise NotImplementedError

    def _applier(self, scope: Scope) -> Callable[[str, Mapping[str, Any]], C | None]:
        """What turns one watch event (type, object) of ``scope`` into a change, if any."""
        raise NotImplementedError

    async def _reconcile(
        self, scope: Scope, listing: L, put: Callable[[C], Awaitable[None]], since: str
    ) -> None:
        """Make the view of ``scope`` what a relist (after 410) says."""
        raise NotImplementedError

    # --- one scope ----------------------------------------------------------------------

    async def _follow(self, scope: Scope, put: Callable[[C], Awaitable[None]]) -> None:
        """Watch, resume, relist: forever."""
        while True:
            since = scope.version
            try:
                steady = await self._watch_once(scope, put)
            except LiveExpiredError as error:
                scope.mark(False, error.reason)
                self._restarted(scope, error.reason, error)
                await self._relist(scope, put, since)
                continue
            except LiveUnavailableError as error:
                scope.mark(False, error.reason)
                self._restarted(scope, error.reason, error)
                await self._wait(scope, error.retry_after)
                continue
            scope.mark(False, "closed")
            self._restarted(scope, "closed")
            if not steady:  # ended at once: do not hammer a server that keeps doing that
                await self._wait(scope)

    async def _watch_once(self, scope: Scope, put: Callable[[C], Awaitable[None]]) -> bool:
        """Follow one watch stream to its clean end; True if it made progress."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        progressed = False
        slicer = Slicer()
        apply, received, on_event = self._applier(scope), self.stats.received, self._on_event
        transport = self._transport_of(scope)
        async with contextlib.aclosing(
            transport.watch(scope.namespace, scope.version, on_open=lambda: scope.mark(True))
        ) as stream:
            async for event in stream:
                if not progressed:
                    progressed = True
                    scope.attempt = 0
                type_ = str(event.get("type"))
                received[type_] += 1
                if on_event is not None:
                    on_event(type_)
                obj = event["object"]
                version = resource_version(obj)
                change = apply(type_, obj) if type_ in CHANGES else None
                if version:
                    scope.version = version
                if change is not None:
                    await put(change)
                await slicer.tick()
        return progressed or loop.time() - started >= STEADY_SECONDS

    async def _relist(self, scope: Scope, put: Callable[[C], Awaitable[None]], since: str) -> None:
        """List again after 410 and make the view what the list says."""
        listing = await self._list(scope)
        self.stats.relists += 1
        await self._reconcile(scope, listing, put, since)
        scope.version = listing.resource_version

    async def _list(self, scope: Scope) -> L:
        """A complete list, retried (with backoff) until it succeeds or fails for good."""
        while True:
            try:
                # Thousands of long-lived objects: no collection passes while they are
                # built, and none over them afterwards (see WatchOptions.freeze_gc).
                with paused_gc(freeze=self.options.freeze_gc):
                    listing = await self._fetch(scope)
            except (LiveUnavailableError, LiveExpiredError) as error:
                scope.mark(False, error.reason)
                self._restarted(scope, error.reason, error)
                retry = error.retry_after if isinstance(error, LiveUnavailableError) else None
                await self._wait(scope, retry)
                continue
            scope.attempt = 0
            scope.mark(True)
            self.stats.lists += 1
            return listing

    # --- bookkeeping --------------------------------------------------------------------

    def _restarted(self, scope: Scope, reason: str, error: LiveError | None = None) -> None:
        self.stats.restarts[reason] += 1
        if self._on_restart is not None:
            self._on_restart(reason)
        if error is None:
            self._log.debug("live watch ended", namespace=scope.label(), reason=reason)
        else:
            self._log.warning(
                "live watch interrupted",
                namespace=scope.label(),
                reason=reason,
                error=str(error),
                attempt=scope.attempt,
            )

    async def _wait(self, scope: Scope, retry_after: float | None = None) -> None:
        delay = self.backoff.next_delay(scope.attempt, self._rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff.maximum))
        scope.attempt += 1
        await asyncio.sleep(delay)
