"""A watch as an HTTP stream: chunked JSON lines ``{"type": ..., "object": ...}``.

Query parameters, as the real server reads them: ``resourceVersion`` (absent or ``0``:
synthetic ADDED events for what exists, then changes; ``N``: every change after N, or an
ERROR event with a 410 ``Expired`` Status when N is older than the retained history),
``allowWatchBookmarks=true`` (a BOOKMARK carrying the current resourceVersion whenever the
stream has been idle, or busy, for the bookmark interval), ``sendInitialEvents=true``
(with bookmarks: the initial ADDED events end with a BOOKMARK annotated
``k8s.io/initial-events-end``) and ``timeoutSeconds`` (the stream ends cleanly then).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from driftwatch.sandbox.errors import ApiError, bad_request
from driftwatch.sandbox.routing import Target
from driftwatch.sandbox.selectors import Selector
from driftwatch.sandbox.store import Store, Watcher

__all__ = ["WatchSettings", "stream_watch"]

Obj = dict[str, Any]

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """``bookmark_interval`` seconds between bookmarks; ``max_seconds`` caps every watch
    (the real server ends watches after 30-60 minutes; None: never)."""

    bookmark_interval: float = 1.0
    max_seconds: float | None = None


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _event(type_: str, obj: Obj) -> bytes:
    return json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _bookmark(target: Target, revision: int, *, initial_end: bool = False) -> bytes:
    meta: Obj = {"resourceVersion": str(revision)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    rtype = target.rtype
    return _event(
        "BOOKMARK", {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta}
    )


async def _error_stream(request: web.Request, error: ApiError) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(_event("ERROR", error.status()))
    await response.write_eof()
    return response


def _timeout(query: Mapping[str, str], settings: WatchSettings) -> float | None:
    timeout = settings.max_seconds
    if "timeoutSeconds" in query:
        text = query["timeoutSeconds"]
        if not text.isdigit():
            raise bad_request(f'timeoutSeconds: invalid value "{text}"')
        timeout = float(text) if timeout is None else min(float(text), timeout)
    return timeout


async def stream_watch(
    request: web.Request,
    store: Store,
    target: Target,
    selector: Selector,
    settings: WatchSettings,
    *,
    transform: Callable[[Obj], Obj] | None = None,
) -> web.StreamResponse:
    """Serve one watch request until it times out, is cut, or the client goes away.

    ``transform`` renders event objects (as tables, say); bookmarks and errors stay as is.
    """
    query = request.query
    raw_rv = query.get("resourceVersion", "")
    since = None if raw_rv in ("", "0") else store.parse_revision(raw_rv)
    bookmarks = _truthy(query.get("allowWatchBookmarks"))
    timeout = _timeout(query, settings)
    try:
        watcher, initial = store.watch(target.rtype, target.namespace, selector, since)
    except ApiError as error:
        if error.code in (410, 504):
            return await _error_stream(request, error)
        raise
    stream = _Stream(request, store, target, watcher, transform)
    try:
        await stream.response.prepare(request)
        for type_, obj in initial:
            await stream.send(type_, obj)
        if bookmarks and _truthy(query.get("sendInitialEvents")):
            await stream.bookmark(initial_end=True)
        if await stream.follow(timeout, settings.bookmark_interval if bookmarks else None):
            await stream.response.write_eof()
    except ConnectionError:
        pass
    finally:
        store.unwatch(watcher)
    return stream.response


class _Stream:
    """The response of one watch and the loop that feeds it."""

    def __init__(
        self,
        request: web.Request,
        store: Store,
        target: Target,
        watcher: Watcher,
        transform: Callable[[Obj], Obj] | None,
    ) -> None:
        self.request = request
        self.store = store
        self.target = target
        self.watcher = watcher
        self.transform = transform
        self.response = web.StreamResponse(status=200)
        self.response.content_type = "application/json"
        self.response.enable_chunked_encoding()

    async def send(self, type_: str, obj: Obj) -> None:
        await self.response.write(
            _event(type_, obj if self.transform is None else self.transform(obj))
        )

    async def bookmark(self, *, initial_end: bool = False) -> None:
        await self.response.write(
            _bookmark(self.target, self.store.revision, initial_end=initial_end)
        )

    def _client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def follow(self, timeout: float | None, interval: float | None) -> bool:
        """Send events until the deadline or a cut; False if the connection was dropped."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        last_bookmark = loop.time()
        while True:
            wait = interval if interval is not None else 1.0
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    return True
            try:
                item = await asyncio.wait_for(self.watcher.queue.get(), timeout=wait)
            except TimeoutError:
                if self._client_gone():
                    return False
            else:
                if item is None:
                    if self.watcher.abrupt and self.request.transport is not None:
                        self.request.transport.abort()
                        return False
                    return True
                await self.send(*item)
            idle = loop.time() - last_bookmark
            if interval is not None and idle >= interval and self.watcher.queue.empty():
                await self.bookmark()
                last_bookmark = loop.time()
