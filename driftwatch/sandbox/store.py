"""The in-memory object store: objects by resource type, one global resourceVersion counter
(as etcd's revision), a bounded event history for watches, the open watchers, and the change
log that tests compare against.

Stored objects are never modified in place: every write stores a new dict, so an object
handed to a watcher or a response stays as it was. All methods run on the event loop's
thread; nothing here awaits, so each write is atomic with respect to watches.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from driftwatch.sandbox.errors import ApiError, bad_request, expired
from driftwatch.sandbox.resources import Registry, ResourceType, TypeKey
from driftwatch.sandbox.selectors import Selector

__all__ = ["Change", "Event", "EventType", "Store", "Watcher"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]
Key = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True, slots=True)
class Event:
    """A committed write. ``obj`` is the new state (the last state for DELETED)."""

    type: EventType
    rtype: ResourceType
    obj: Obj
    old: Obj | None
    resource_version: int


@dataclass(frozen=True, slots=True)
class Change:
    """One line of the change log: what every committed write did."""

    type: EventType
    group: str
    version: str
    resource: str
    namespace: str
    name: str
    resource_version: str
    uid: str
    manager: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def as_dict(self) -> dict[str, str]:
        return {
            "type": self.type,
            "group": self.group,
            "version": self.version,
            "resource": self.resource,
            "namespace": self.namespace,
            "name": self.name,
            "resourceVersion": self.resource_version,
            "uid": self.uid,
            "manager": self.manager,
        }


def object_key(obj: Obj) -> Key:
    meta = obj["metadata"]
    return (str(meta.get("namespace") or ""), str(meta["name"]))


@dataclass(eq=False)
class Watcher:
    """One open watch: events it selects are queued for its HTTP stream.

    A ``None`` in the queue ends the stream cleanly; ``abrupt`` asks the stream to drop
    the connection instead.
    """

    rtype: ResourceType
    namespace: str | None
    selector: Selector
    queue: asyncio.Queue[tuple[str, Obj] | None] = field(default_factory=asyncio.Queue)
    abrupt: bool = False

    def offer(self, event: Event) -> None:
        if event.rtype.key != self.rtype.key:
            return
        if self.namespace is not None and event.obj["metadata"].get("namespace") != self.namespace:
            return
        now = self.selector.matches(event.obj)
        if event.type != "MODIFIED" or event.old is None:
            if now:
                self.queue.put_nowait((event.type, event.obj))
            return
        before = self.selector.matches(event.old)
        if now and before:
            self.queue.put_nowait(("MODIFIED", event.obj))
        elif now:
            self.queue.put_nowait(("ADDED", event.obj))
        elif before:
            self.queue.put_nowait(("DELETED", event.obj))

    def close(self, *, abrupt: bool = False) -> None:
        self.abrupt = abrupt
        self.queue.put_nowait(None)


class Store:
    """Objects, resourceVersions, history and watchers. See the module docstring."""

    def __init__(self, registry: Registry, *, history_limit: int = 10_000) -> None:
        self.registry = registry
        self.history_limit = history_limit
        self._objects: dict[TypeKey, dict[Key, Obj]] = {t.key: {} for t in registry}
        self._revision = 0
        self._selected: dict[tuple[Any, ...], list[Obj]] = {}
        """``select`` answers by (type, namespace, revision, count): see there."""
        self._history: deque[Event] = deque()
        self._compacted = 0
        self._watchers: set[Watcher] = set()
        self._encoded: dict[int, tuple[Obj, bytes]] = {}
        self.changes: list[Change] = []
        self.listeners: list[Callable[[Event], None]] = []
        """Called after every commit (the CRD controller registers kinds from here)."""

    def _bucket(self, rtype: ResourceType) -> dict[Key, Obj]:
        return self._objects.setdefault(rtype.key, {})

    # --- reading ------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The resourceVersion of the last committed write."""
        return self._revision

    @property
    def compacted(self) -> int:
        """Watches must start at or after this resourceVersion; older ones get 410."""
        return self._compacted

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        return self._bucket(rtype).get((namespace or "", name))

    def select(
        self, rtype: ResourceType, namespace: str | None = None, selector: Selector | None = None
    ) -> list[Obj]:
        """Matching objects in etcd key order (namespace, then name)."""
        objects = self._bucket(rtype)
        # A paged list asks again for every page: between two writes the answer is the same
        # (every write moves the revision), so it is kept rather than sorted again, which
        # made listing n objects in pages O(n^2).
        cache_key = (rtype.key, namespace, self._revision, len(objects))
        cached = self._selected.get(cache_key)
        if cached is None:
            keys = (
                sorted(objects)
                if namespace is None
                else sorted(k for k in objects if k[0] == namespace)
            )
            cached = [objects[k] for k in keys]
            if len(self._selected) >= 8:
                self._selected.clear()
            self._selected[cache_key] = cached
        if selector is not None and not selector.is_empty:
            return [o for o in cached if selector.matches(o)]
        return list(cached)  # the caller's to change

    def count(self, rtype: ResourceType) -> int:
        return len(self._bucket(rtype))

    # --- writing ------------------------------------------------------------------------

    def next_revision(self) -> int:
        return self._revision + 1

    def commit(
        self, type_: EventType, rtype: ResourceType, obj: Obj, old: Obj | None, manager: str
    ) -> Obj:
        """Store a write: ``obj`` gets the next resourceVersion, watchers and the log see it."""
        self._revision += 1
        rv = str(self._revision)
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": rv}}
        key = object_key(obj)
        bucket = self._bucket(rtype)
        replaced = bucket.get(key)
        if replaced is not None:
            self._encoded.pop(id(replaced), None)
        if type_ == "DELETED":
            bucket.pop(key, None)
        else:
            bucket[key] = obj
        event = Event(type_, rtype, obj, old, self._revision)
        self._history.append(event)
        while len(self._history) > self.history_limit:
            self._compacted = self._history.popleft().resource_version
        for watcher in list(self._watchers):
            watcher.offer(event)
        meta = obj["metadata"]
        self.changes.append(
            Change(
                type_,
                rtype.group,
                rtype.version,
                rtype.plural,
                key[0],
                key[1],
                rv,
                str(meta.get("uid", "")),
                manager,
            )
        )
        log.debug("%s %s %s/%s rv=%s by %s", type_, rtype.plural, key[0], key[1], rv, manager)
        for listener in list(self.listeners):
            listener(event)
        return obj

    def encoded(self, obj: Obj, encode: Callable[[Obj], bytes]) -> bytes:
        """``encode(obj)`` for a stored object, computed once per stored version."""
        cached = self._encoded.get(id(obj))
        if cached is not None and cached[0] is obj:
            return cached[1]
        data = encode(obj)
        self._encoded[id(obj)] = (obj, data)
        return data

    # --- watching -----------------------------------------------------------------------

    def parse_revision(self, text: str) -> int:
        if not text.isdigit():
            raise bad_request(f'invalid resource version "{text}"')
        return int(text)

    def watch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        selector: Selector,
        since: int | None,
    ) -> tuple[Watcher, list[tuple[str, Obj]]]:
        """Register a watcher; return it with the events to send first.

        ``since=None`` ("" or "0" on the wire) starts with a synthetic ADDED per existing
        object; otherwise the history after ``since`` is replayed, and a ``since`` older
        than the retained history raises 410 Expired.
        """
        watcher = Watcher(rtype, namespace, selector)
        if since is None:
            initial = [("ADDED", o) for o in self.select(rtype, namespace, selector)]
        else:
            if since < self._compacted:
                raise expired(f"too old resource version: {since} ({self._compacted})")
            if since > self._revision:
                raise ApiError(
                    504,
                    "Timeout",
                    f"Too large resource version: {since}, current: {self._revision}",
                )
            probe = Watcher(rtype, namespace, selector)
            for event in self._history:
                if event.resource_version > since:
                    probe.offer(event)
            initial = []
            while not probe.queue.empty():
                item = probe.queue.get_nowait()
                if item is not None:
                    initial.append(item)
        self._watchers.add(watcher)
        return watcher, initial

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    @property
    def watchers(self) -> Iterator[Watcher]:
        return iter(list(self._watchers))

    def watcher_count(self, rtype: ResourceType | None = None) -> int:
        return sum(1 for w in self._watchers if rtype is None or w.rtype.key == rtype.key)

    # --- faults -------------------------------------------------------------------------

    def cut_watches(self, *, abrupt: bool = False, rtype: ResourceType | None = None) -> int:
        """End every open watch stream (of ``rtype``); returns how many there were."""
        watchers = [w for w in self._watchers if rtype is None or w.rtype.key == rtype.key]
        for watcher in watchers:
            watcher.close(abrupt=abrupt)
            self._watchers.discard(watcher)
        return len(watchers)

    def compact(self, revision: int | None = None) -> int:
        """Forget history up to ``revision`` (default: all of it); returns the new floor."""
        target = self._revision if revision is None else min(revision, self._revision)
        while self._history and self._history[0].resource_version <= target:
            self._history.popleft()
        self._compacted = max(self._compacted, target)
        return self._compacted
