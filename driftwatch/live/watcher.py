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
this layer knows nothing of Prometheus). The list/watch/resume/relist loop is
:class:`~driftwatch.live.follow.Follower`'s, shared with the topology watcher.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kubernetes_asyncio.client import ApiClient

from driftwatch.live.cache import PolicyCache
from driftwatch.live.events import LiveEvent, LiveResynced, LiveSynced
from driftwatch.live.follow import Follower, Scope, WatchHealth, WatchStats, connection_limit
from driftwatch.live.listing import Key, Listing, Slicer
from driftwatch.live.options import Backoff, WatchOptions
from driftwatch.live.transport import Transport
from driftwatch.policy import NetworkPolicy

__all__ = ["PolicyWatcher", "WatchHealth", "WatchStats"]

_QUEUE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


Put = Callable[[LiveEvent], Awaitable[None]]


class PolicyWatcher(Follower[Listing, LiveEvent]):
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
        limit = connection_limit(api)
        if limit and len(names) >= limit:
            raise ValueError(
                f"watching {len(names)} namespaces takes {len(names)} connections, and the"
                f" client allows {limit}: restrict to fewer namespaces, or watch all of them"
            )
        super().__init__(
            options=options,
            backoff=backoff,
            log=log,
            rng=rng,
            on_event=on_event,
            on_restart=on_restart,
        )
        self.namespaces = names
        self._transport = Transport(api, self.options, names)
        self._cache = PolicyCache()
        self._running = False
        self._scopes = [Scope(n) for n in names] or [Scope(None)]

    @property
    def server(self) -> str:
        """The API server's URL."""
        return self._transport.server

    @property
    def policies(self) -> Mapping[Key, NetworkPolicy]:
        """The watcher's current view (read-only, kept up to date by :meth:`events`)."""
        return MappingProxyType(self._cache.policies)

    async def events(self) -> AsyncGenerator[LiveEvent, None]:
        """:class:`LiveSynced` first, then changes, until cancelled or closed; raises a
        :class:`LiveError` the watcher cannot recover from."""
        if self._running:
            raise RuntimeError("PolicyWatcher.events() is already running")
        self._running = True
        self._cache = PolicyCache()
        scopes = self._scopes = [Scope(n) for n in self.namespaces] or [Scope(None)]
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

    async def _run(self, scope: Scope, queue: asyncio.Queue[LiveEvent | _Failed]) -> None:
        try:
            await self._follow(scope, queue.put)
        except Exception as error:  # handed to the consumer of events()
            await queue.put(_Failed(error))

    # --- what the follower asks ---------------------------------------------------------

    async def _fetch(self, scope: Scope) -> Listing:
        return await self._transport.list_all(scope.namespace)

    def _transport_of(self, scope: Scope) -> Transport:
        return self._transport

    def _applier(self, scope: Scope) -> Callable[[str, Mapping[str, Any]], LiveEvent | None]:
        return self._cache.apply

    async def _reconcile(self, scope: Scope, listing: Listing, put: Put, since: str) -> None:
        """Yield what differs from the watcher's view after a relist, then
        :class:`LiveResynced`."""
        changed = 0
        slicer = Slicer()
        for event in self._cache.reconcile(scope.namespace, listing):
            if event is not None:
                changed += 1
                await put(event)
            await slicer.tick()
        version = listing.resource_version
        self._log.info(
            "live state relisted",
            namespace=scope.label(),
            since=since,
            resource_version=version,
            changed=changed,
        )
        await put(LiveResynced(version, changed, since))
