"""The live watcher: the cluster's NetworkPolicies as a stream of changes.

:meth:`PolicyWatcher.events` lists (page by page), yields the whole state once
(:class:`LiveSynced`), then watches from the list's resourceVersion and yields every change
of content (:class:`LivePut`, :class:`LiveDeleted`), forever:

* a watch that ends (server timeout, a cut, a dropped or silent connection, 5xx, a refused
  connection) is resumed from the last resourceVersion seen, bookmarks included, after an
  exponential backoff with jitter for failures (reset once a watch makes progress);
* 410 Gone (an HTTP status or an in-stream ``ERROR``) means the resume point has been
  compacted away: the watcher lists again, yields one event per difference from its own
  view and then :class:`LiveResynced`;
* 401/403 end it with :class:`LiveAccessError` naming the RBAC it needs; 404 with
  :class:`LiveNotFoundError`; other unexpected answers with :class:`LiveApiError`.

With ``namespaces``, each is listed and watched on its own (one connection each) and the
events are merged. Counters for metrics are in :attr:`PolicyWatcher.stats`; ``on_event``
and ``on_restart`` hand the same facts to a metrics exporter as they happen (plain callables:
this layer knows nothing of Prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import structlog
from kubernetes_asyncio.client import ApiClient

from driftwatch.live.cache import PolicyCache
from driftwatch.live.errors import LiveError, LiveExpiredError, LiveUnavailableError
from driftwatch.live.events import LiveEvent, LiveResynced, LiveSynced
from driftwatch.live.listing import Key, Listing, Slicer, resource_version
from driftwatch.live.options import Backoff, WatchOptions
from driftwatch.live.transport import Transport
from driftwatch.manifests import paused_gc
from driftwatch.policy import NetworkPolicy

__all__ = ["PolicyWatcher", "WatchHealth", "WatchStats"]

_QUEUE_SIZE = 1024
_STEADY_SECONDS = 1.0  # a watch that lasted this long made progress, events or not
_CHANGES = ("ADDED", "MODIFIED", "DELETED")


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
class _Scope:
    """One list+watch: the whole cluster (``namespace`` None) or one namespace."""

    namespace: str | None
    version: str = ""
    attempt: int = 0
    connected: bool = False
    changed: float = field(default_factory=time.monotonic)
    reason: str | None = "starting"

    def label(self) -> str:
        return self.namespace if self.namespace is not None else "*"

    def mark(self, connected: bool, reason: str | None = None) -> None:
        """Record the connection state; ``changed`` moves only when it flips."""
        if connected != self.connected:
            self.connected = connected
            self.changed = time.monotonic()
        self.reason = None if connected else reason


def _connection_limit(api: ApiClient) -> int:
    """How many connections the client's pool allows (0: no limit, or unknown)."""
    session: Any = getattr(getattr(api, "rest_client", None), "pool_manager", None)
    limit = getattr(getattr(session, "connector", None), "limit", 0)
    return limit if isinstance(limit, int) else 0


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


Put = Callable[[LiveEvent], Awaitable[None]]


class PolicyWatcher:
    """Lists and watches NetworkPolicies through ``api``; see the module docstring.

    ``async with contextlib.aclosing(watcher.events()) as events: async for event in
    events: ...`` — closing the iterator (or cancelling its consumer) stops every request.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        namespaces: Sequence[str] = (),
        options: WatchOptions | None = None,
        backoff: Backoff | None = None,
        log: Any = None,
        rng: random.Random | None = None,
        on_event: Callable[[str], None] | None = None,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        """``on_event(type)``: called for each watch event received (``ADDED``,
        ``MODIFIED``, ``DELETED``, ``BOOKMARK``, ``ERROR``); ``on_restart(reason)``: for each
        restarted watch or retried list (the reasons of :class:`WatchStats`). Both run on
        the loop, in the watch's path: they must be cheap and must not raise."""
        if isinstance(namespaces, str):
            raise TypeError("namespaces must be a sequence of names, not a string")
        names = tuple(dict.fromkeys(namespaces))
        if any(not n for n in names):
            raise ValueError("a namespace name is empty")
        limit = _connection_limit(api)
        if limit and len(names) >= limit:
            raise ValueError(
                f"watching {len(names)} namespaces takes {len(names)} connections, and the"
                f" client allows {limit}: restrict to fewer namespaces, or watch all of them"
            )
        self.namespaces = names
        self.options = options if options is not None else WatchOptions()
        self.backoff = backoff if backoff is not None else Backoff()
        self.stats = WatchStats()
        self._transport = Transport(api, self.options, names)
        self._log = log if log is not None else structlog.get_logger("driftwatch.live")
        self._rng = rng if rng is not None else random.Random()  # noqa: S311  (jitter)
        self._cache = PolicyCache()
        self._running = False
        self._scopes: list[_Scope] = [_Scope(n) for n in names] or [_Scope(None)]
        self._on_event = on_event
        self._on_restart = on_restart

    @property
    def server(self) -> str:
        """The API server's URL."""
        return self._transport.server

    @property
    def policies(self) -> Mapping[Key, NetworkPolicy]:
        """The watcher's current view (read-only, kept up to date by :meth:`events`)."""
        return MappingProxyType(self._cache.policies)

    @property
    def health(self) -> WatchHealth:
        """The connection state now (see :class:`WatchHealth`); cheap, for ``/readyz``."""
        scopes = self._scopes
        down = [s for s in scopes if not s.connected]
        if not down:
            return WatchHealth(True, max(s.changed for s in scopes))
        first = min(down, key=lambda s: s.changed)
        return WatchHealth(False, first.changed, first.reason)

    async def events(self) -> AsyncGenerator[LiveEvent, None]:
        """:class:`LiveSynced` first, then changes, until cancelled or closed; raises a
        :class:`LiveError` the watcher cannot recover from."""
        if self._running:
            raise RuntimeError("PolicyWatcher.events() is already running")
        self._running = True
        self._cache = PolicyCache()
        scopes = self._scopes = [_Scope(n) for n in self.namespaces] or [_Scope(None)]
        tasks: list[asyncio.Task[None]] = []
        try:
            reports = []
            for scope in scopes:
                listing = await self._list(scope)
                scope.version = listing.resource_version
                reports.extend(self._cache.load(listing))
            synced = LiveSynced(MappingProxyType(dict(self._cache.policies)), scopes[-1].version)
            self._log.info(
                "live state listed",
                server=self.server,
                namespaces=list(self.namespaces) or "all",
                policies=len(synced.policies),
                invalid=len(reports),
                resource_version=synced.resource_version,
            )
            initial: list[LiveEvent] = [synced, *reports]
            for event in initial:
                self.stats.emitted[type(event).__name__] += 1
                yield event
            queue: asyncio.Queue[LiveEvent | _Failed] = asyncio.Queue(_QUEUE_SIZE)
            tasks = [
                asyncio.create_task(self._run(scope, queue), name=f"watch {scope.label()}")
                for scope in scopes
            ]
            while True:
                item = await queue.get()
                if isinstance(item, _Failed):
                    raise item.error
                self.stats.emitted[type(item).__name__] += 1
                yield item
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for scope in scopes:
                scope.mark(False, "stopped")
            self._running = False

    # --- one scope ----------------------------------------------------------------------

    async def _run(self, scope: _Scope, queue: asyncio.Queue[LiveEvent | _Failed]) -> None:
        try:
            await self._follow(scope, queue.put)
        except Exception as error:  # handed to the consumer of events()
            await queue.put(_Failed(error))

    async def _follow(self, scope: _Scope, put: Put) -> None:
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

    async def _watch_once(self, scope: _Scope, put: Put) -> bool:
        """Follow one watch stream to its clean end; True if it made progress."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        progressed = False
        slicer = Slicer()
        cache, received, on_event = self._cache, self.stats.received, self._on_event
        async with contextlib.aclosing(
            self._transport.watch(scope.namespace, scope.version, on_open=lambda: scope.mark(True))
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
                change = cache.apply(type_, obj) if type_ in _CHANGES else None
                if version:
                    scope.version = version
                if change is not None:
                    await put(change)
                await slicer.tick()
        return progressed or loop.time() - started >= _STEADY_SECONDS

    async def _relist(self, scope: _Scope, put: Put, since: str) -> None:
        """List again after 410 and yield what differs from the watcher's view."""
        listing = await self._list(scope)
        self.stats.relists += 1
        changed = 0
        slicer = Slicer()
        for event in self._cache.reconcile(scope.namespace, listing):
            if event is not None:
                changed += 1
                await put(event)
            await slicer.tick()
        scope.version = version = listing.resource_version
        self._log.info(
            "live state relisted",
            namespace=scope.label(),
            since=since,
            resource_version=version,
            changed=changed,
        )
        await put(LiveResynced(version, changed, since))

    async def _list(self, scope: _Scope) -> Listing:
        """A complete list, retried (with backoff) until it succeeds or fails for good."""
        while True:
            try:
                # Thousands of long-lived objects: no collection passes while they are
                # built, and none over them afterwards (see WatchOptions.freeze_gc).
                with paused_gc(freeze=self.options.freeze_gc):
                    listing = await self._transport.list_all(scope.namespace)
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

    def _restarted(self, scope: _Scope, reason: str, error: LiveError | None = None) -> None:
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

    async def _wait(self, scope: _Scope, retry_after: float | None = None) -> None:
        delay = self.backoff.next_delay(scope.attempt, self._rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff.maximum))
        scope.attempt += 1
        await asyncio.sleep(delay)
