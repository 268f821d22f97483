"""The live topology: the cluster's pods, grouped by their top-level owner, and its
namespaces with their labels, as a stream of :class:`~driftwatch.topology.Topology` values.

:meth:`TopologyWatcher.events` lists the pods (of every namespace, or of each of
``namespaces``) and the namespaces (cluster-wide), yields the first topology at once, then
watches both and yields a new topology whenever it changes, at most one per ``coalesce``
seconds (a burst of pod events, a rollout, is one new value). The list/watch/resume/relist
loop, its timeouts and its backoff are :class:`~driftwatch.live.follow.Follower`'s, as for
the NetworkPolicies.

* A pod counts as the workload :func:`~driftwatch.topology.workload_of` makes of it with
  ``top_level=True`` (a Deployment's pods are the Deployment); a workload with several pods
  is there once, with the labels and ports of the pod changed last, until its last pod is
  gone. Pods in phase Succeeded or Failed do not count.
* A pod that cannot be read (:class:`~driftwatch.topology.TopologyError`) is logged once
  (per message) with its namespace and name, and left out; never fatal.
* Namespaces that may not be listed (403): one warning, and every namespace has only its
  implicit ``kubernetes.io/metadata.name`` label. Pods that may not be listed end
  :meth:`~TopologyWatcher.events` with :class:`~driftwatch.live.errors.LiveAccessError`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio.client import ApiClient

from driftwatch.live.errors import LiveAccessError
from driftwatch.live.follow import Follower, Scope, connection_limit
from driftwatch.live.listing import Key, Slicer, object_key
from driftwatch.live.options import Backoff, WatchOptions
from driftwatch.live.transport import NAMESPACES, PODS, Transport
from driftwatch.topology import Topology, TopologyError, Workload, namespace_of, workload_of

__all__ = ["TopologyWatcher"]

COALESCE_SECONDS = 0.1
_ENDED = ("Succeeded", "Failed")

PodEntry = Workload | str | None
"""A pod as read: its workload, the reason it cannot be read, or None (it does not count)."""
NamespaceEntry = dict[str, str] | str
"""A namespace as read: its labels, or the reason it cannot be read."""


@dataclass(slots=True)
class _Listed:
    """One complete list of pods or of namespaces."""

    resource_version: str = ""
    pods: dict[Key, PodEntry] = field(default_factory=dict)
    namespaces: dict[str, NamespaceEntry] = field(default_factory=dict)


def _read_pod(obj: Mapping[str, Any]) -> PodEntry:
    status = obj.get("status")
    if isinstance(status, Mapping) and status.get("phase") in _ENDED:
        return None
    if obj.get("kind") != "Pod":  # list items carry no kind
        obj = {**obj, "kind": "Pod"}
    try:
        return workload_of(obj, top_level=True)
    except TopologyError as error:
        return str(error)


def _read_namespace(obj: Mapping[str, Any]) -> tuple[str, NamespaceEntry]:
    if obj.get("kind") != "Namespace":
        obj = {**obj, "kind": "Namespace"}
    try:
        read = namespace_of(obj)
    except TopologyError as error:
        return object_key(obj)[1], str(error)
    assert read is not None  # noqa: S101 - the kind is Namespace
    return read[0], dict(read[1])


class TopologyWatcher(Follower[_Listed, object]):
    """Lists and watches pods and namespaces through ``api``; see the module docstring.

    ``async with contextlib.aclosing(watcher.events()) as topologies: async for topology in
    topologies: ...`` — closing the iterator (or cancelling its consumer) stops every
    request. ``on_event`` and ``on_restart`` are as for
    :class:`~driftwatch.live.watcher.PolicyWatcher`."""

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
        coalesce: float = COALESCE_SECONDS,
    ) -> None:
        if isinstance(namespaces, str):
            raise TypeError("namespaces must be a sequence of names, not a string")
        names = tuple(dict.fromkeys(namespaces))
        if any(not n for n in names):
            raise ValueError("a namespace name is empty")
        limit = connection_limit(api)
        if limit and len(names) + 1 >= limit:
            raise ValueError(
                f"watching the pods of {len(names)} namespaces and the namespaces takes"
                f" {len(names) + 1} connections, and the client allows {limit}"
            )
        if not coalesce >= 0:
            raise ValueError("coalesce must be 0 or more seconds")
        super().__init__(
            options=options,
            backoff=backoff,
            log=log,
            rng=rng,
            on_event=on_event,
            on_restart=on_restart,
        )
        self.namespaces = names
        self.coalesce = coalesce
        self._pods = Transport(api, self.options, names, resource=PODS)
        self._namespaces = Transport(api, self.options, resource=NAMESPACES)
        self._running = False
        self._reset()

    def _reset(self) -> None:
        self._pod_of: dict[Key, str] = {}
        """Each counted pod's workload (``str(workload)``)."""
        self._groups: dict[str, dict[str, Workload]] = {}
        """Workload -> its pods (name -> the workload as that pod makes it), last changed last."""
        self._unreadable: dict[Key, str] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._bad_namespaces: dict[str, str] = {}
        self._forbidden = False
        self._last: Topology | None = None
        self._dirty = asyncio.Event()
        self._error: Exception | None = None

    @property
    def server(self) -> str:
        """The API server's URL."""
        return self._pods.server

    @property
    def topology(self) -> Topology | None:
        """The topology last yielded (``None`` before the first)."""
        return self._last

    @property
    def namespaces_forbidden(self) -> bool:
        """Whether listing namespaces was refused (403): implicit labels only."""
        return self._forbidden

    def build(self) -> Topology:
        """The topology as the watcher sees it now."""
        workloads = [next(reversed(pods.values())) for pods in self._groups.values()]
        return Topology.build(workloads, self._labels)

    async def events(self) -> AsyncGenerator[Topology, None]:
        """The topology after the first lists, then each new one, until cancelled or
        closed; raises a :class:`LiveError` the watcher cannot recover from."""
        if self._running:
            raise RuntimeError("TopologyWatcher.events() is already running")
        self._running = True
        self._reset()
        pods = [Scope(n, "pods") for n in self.namespaces] or [Scope(None, "pods")]
        scopes = self._scopes = [*pods, Scope(None, "namespaces")]
        tasks: list[asyncio.Task[None]] = []
        try:
            slicer = Slicer()
            for scope in pods:
                listing = await self._list(scope)
                scope.version = listing.resource_version
                for key, entry in listing.pods.items():
                    self._set_pod(key, entry)
                    await slicer.tick()
            try:
                listing = await self._list(scopes[-1])
            except LiveAccessError as error:
                self._forbid(error)
                scopes = self._scopes = pods
            else:
                scopes[-1].version = listing.resource_version
                for name, labels in listing.namespaces.items():
                    self._set_namespace(name, labels)
            self._last = topology = self.build()
            self._log.info(
                "topology listed",
                server=self.server,
                namespaces=list(self.namespaces) or "all",
                pods=len(self._pod_of),
                workloads=len(topology.workloads),
                namespace_labels=not self._forbidden,
            )
            self.stats.emitted["Topology"] += 1
            yield topology
            tasks = [
                asyncio.create_task(self._run(scope), name=f"watch {scope.label()}")
                for scope in scopes
            ]
            while True:
                await self._dirty.wait()
                if self._error is None:
                    await asyncio.sleep(self.coalesce)  # let the burst end
                if self._error is not None:
                    raise self._error
                self._dirty.clear()
                topology = self.build()
                if topology == self._last:
                    continue
                self._last = topology
                self.stats.emitted["Topology"] += 1
                yield topology
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for scope in self._scopes:
                scope.mark(False, "stopped")
            self._running = False

    async def _run(self, scope: Scope) -> None:
        try:
            await self._follow(scope, self._ignore)
        except LiveAccessError as error:
            if scope.what != "namespaces":
                self._fail(error)
                return
            if self._forbid(error):
                self._dirty.set()
            self._scopes = [s for s in self._scopes if s is not scope]
        except Exception as error:  # handed to the consumer of events()
            self._fail(error)

    def _fail(self, error: Exception) -> None:
        self._error = error
        self._dirty.set()

    async def _ignore(self, change: object) -> None:
        """Changes are not queued: the appliers mark the view dirty."""

    def _forbid(self, error: LiveAccessError) -> bool:
        """Carry on without namespace labels; True if some were known."""
        if not self._forbidden:
            self._forbidden = True
            self._log.warning(
                "cannot list namespaces; namespace selectors see only the"
                " kubernetes.io/metadata.name label",
                error=str(error),
            )
        had = bool(self._labels)
        self._labels.clear()
        return had

    # --- the view -----------------------------------------------------------------------

    def _rep(self, workload: str) -> Workload | None:
        pods = self._groups.get(workload)
        return next(reversed(pods.values())) if pods else None

    def _set_pod(self, key: Key, entry: PodEntry) -> bool:
        """Record one pod as read; True if the topology changed."""
        if isinstance(entry, str):
            if self._unreadable.get(key) != entry:
                self._unreadable[key] = entry
                self._log.warning(
                    "cannot read a pod; leaving it out of the topology",
                    namespace=key[0],
                    name=key[1],
                    error=entry,
                )
            return self._drop(key)
        self._unreadable.pop(key, None)
        if entry is None:
            return self._drop(key)
        new, old = str(entry), self._pod_of.get(key)
        if old == new and self._groups[new].get(key[1]) == entry:
            return False
        affected = (new,) if old is None or old == new else (new, old)
        before = [self._rep(w) for w in affected]
        if old is not None:
            self._remove(key, old)
        self._groups.setdefault(new, {})[key[1]] = entry
        self._pod_of[key] = new
        return before != [self._rep(w) for w in affected]

    def _drop(self, key: Key) -> bool:
        """Forget one pod; True if the topology changed."""
        workload = self._pod_of.get(key)
        if workload is None:
            return False
        before = self._rep(workload)
        self._remove(key, workload)
        return self._rep(workload) != before

    def _remove(self, key: Key, workload: str) -> None:
        del self._pod_of[key]
        pods = self._groups[workload]
        del pods[key[1]]
        if not pods:
            del self._groups[workload]

    def _set_namespace(self, name: str, entry: NamespaceEntry) -> bool:
        if isinstance(entry, str):
            if self._bad_namespaces.get(name) != entry:
                self._bad_namespaces[name] = entry
                self._log.warning(
                    "cannot read a namespace; it has only its implicit label",
                    name=name,
                    error=entry,
                )
            return self._labels.pop(name, None) is not None
        self._bad_namespaces.pop(name, None)
        if self._labels.get(name) == entry:
            return False
        self._labels[name] = entry
        return True

    def _apply_pod(self, type_: str, obj: Mapping[str, Any]) -> None:
        key = object_key(obj)
        if type_ == "DELETED":
            self._unreadable.pop(key, None)
            changed = self._drop(key)
        else:
            changed = self._set_pod(key, _read_pod(obj))
        if changed:
            self._dirty.set()

    def _apply_namespace(self, type_: str, obj: Mapping[str, Any]) -> None:
        name, entry = _read_namespace(obj)
        if type_ == "DELETED":
            self._bad_namespaces.pop(name, None)
            changed = self._labels.pop(name, None) is not None
        else:
            changed = self._set_namespace(name, entry)
        if changed:
            self._dirty.set()

    # --- what the follower asks ---------------------------------------------------------

    def _transport_of(self, scope: Scope) -> Transport:
        return self._namespaces if scope.what == "namespaces" else self._pods

    def _applier(self, scope: Scope) -> Callable[[str, Mapping[str, Any]], object | None]:
        return self._apply_namespace if scope.what == "namespaces" else self._apply_pod

    async def _fetch(self, scope: Scope) -> _Listed:
        listed = _Listed()
        slicer = Slicer()
        if scope.what == "namespaces":

            async def namespaces(items: list[Any]) -> None:
                for obj in items:
                    if isinstance(obj, Mapping):
                        name, entry = _read_namespace(obj)
                        listed.namespaces[name] = entry
                    await slicer.tick()

            reset = listed.namespaces.clear
            version = await self._namespaces.list_pages(None, namespaces, reset, slicer)
        else:

            async def pods(items: list[Any]) -> None:
                for obj in items:
                    if isinstance(obj, Mapping):
                        listed.pods[object_key(obj)] = _read_pod(obj)
                    await slicer.tick()

            reset = listed.pods.clear
            version = await self._pods.list_pages(scope.namespace, pods, reset, slicer)
        listed.resource_version = version
        return listed

    async def _reconcile(
        self, scope: Scope, listing: _Listed, put: Callable[[object], Awaitable[None]], since: str
    ) -> None:
        """Make the view of ``scope`` what the relist says."""
        changed = False
        slicer = Slicer()
        if scope.what == "namespaces":
            for name, entry in listing.namespaces.items():
                changed |= self._set_namespace(name, entry)
                await slicer.tick()
            for name in [n for n in self._labels if n not in listing.namespaces]:
                changed |= self._labels.pop(name, None) is not None
            for name in [n for n in self._bad_namespaces if n not in listing.namespaces]:
                del self._bad_namespaces[name]
        else:
            for key, pod in listing.pods.items():
                changed |= self._set_pod(key, pod)
                await slicer.tick()

            def gone(key: Key) -> bool:
                in_scope = scope.namespace is None or key[0] == scope.namespace
                return in_scope and key not in listing.pods

            for key in [k for k in self._pod_of if gone(k)]:
                changed |= self._drop(key)
            for key in [k for k in self._unreadable if gone(k)]:
                del self._unreadable[key]
        if changed:
            self._dirty.set()
        self._log.info(
            "topology relisted",
            scope=scope.label(),
            since=since,
            resource_version=listing.resource_version,
            changed=changed,
        )
