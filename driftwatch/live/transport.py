"""Lists and watches over kubernetes_asyncio, read as raw JSON: NetworkPolicies (the
default), and Pods and Namespaces for the topology (:data:`PODS`, :data:`NAMESPACES`).

The generated client is asked for the bare aiohttp response (``_preload_content=False``),
so nothing goes through its model deserialisation: list pages are ``json.loads``-ed (and,
for NetworkPolicies, parsed with :func:`~driftwatch.policy.parse_policy`; other resources
hand each page's raw items to the caller, :meth:`Transport.list_pages`), and watch streams
are split into JSON lines here. Every failure becomes one
:class:`~driftwatch.live.errors.LiveError`: transient ones (:class:`LiveUnavailableError`,
:class:`LiveExpiredError`) for the watcher to retry, the rest final. Long parses hand the
event loop back every few milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from kubernetes_asyncio.client import ApiClient, CoreV1Api, NetworkingV1Api

from driftwatch.live.errors import (
    LiveAccessError,
    LiveApiError,
    LiveError,
    LiveExpiredError,
    LiveNotFoundError,
    LiveUnavailableError,
)
from driftwatch.live.listing import Key, Listing, Slicer, parse_items
from driftwatch.live.options import WatchOptions
from driftwatch.policy import NetworkPolicy

__all__ = ["NAMESPACES", "NETWORK_POLICIES", "PODS", "Resource", "Transport", "rbac_needed"]

Obj = dict[str, Any]
_ERROR_BODY_LIMIT = 64 * 1024
_MAX_LINE = 64 * 1024 * 1024  # etcd stores objects up to 1.5 MiB; anything this long is junk
_LIST_RESTARTS = 5  # a paginated list restarted after 410 on its continue token
_TOO_LARGE = "too large resource version"


@dataclass(frozen=True, slots=True)
class Resource:
    """What a :class:`Transport` lists and watches: ``title`` (plural, for messages),
    ``singular``, ``rbac`` (``resource.group``), ``served`` (``group/version``), the
    generated API class and its list methods (``namespaced`` None: cluster-scoped)."""

    title: str
    singular: str
    rbac: str
    served: str
    api: Callable[[ApiClient], Any]
    cluster_wide: str
    namespaced: str | None


NETWORK_POLICIES = Resource(
    "NetworkPolicies",
    "NetworkPolicy",
    "networkpolicies.networking.k8s.io",
    "networking.k8s.io/v1",
    NetworkingV1Api,
    "list_network_policy_for_all_namespaces",
    "list_namespaced_network_policy",
)
PODS = Resource(
    "pods", "Pod", "pods", "v1", CoreV1Api, "list_pod_for_all_namespaces", "list_namespaced_pod"
)
NAMESPACES = Resource(
    "namespaces", "Namespace", "namespaces", "v1", CoreV1Api, "list_namespace", None
)

Items = Callable[[list[Any]], Awaitable[None]]
"""Takes one page's raw items (:meth:`Transport.list_pages`)."""


def rbac_needed(namespaces: Sequence[str], resource: str = NETWORK_POLICIES.rbac) -> str:
    """The RBAC sentence for error messages."""
    what = f"driftwatch needs list and watch on {resource}"
    if not namespaces:
        return f"{what} cluster-wide (a ClusterRole with those verbs and a ClusterRoleBinding)"
    names = ", ".join(namespaces)
    return f"{what} in namespaces {names} (a Role with those verbs and a RoleBinding in each)"


def _status_of(body: bytes) -> tuple[str, str]:
    """(reason, message) of a ``Status`` body, as far as there is one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        text = body.decode("utf-8", "replace").strip()
        return "", text[:200]
    if not isinstance(data, Mapping):
        return "", ""
    return str(data.get("reason") or ""), str(data.get("message") or "")[:300]


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class Transport:
    """Requests to one API server for the objects of ``resource`` (NetworkPolicies by
    default) of the whole cluster (``namespace=None``) or of one namespace. ``namespaces``
    is the daemon's whole restriction, for the RBAC text of errors."""

    def __init__(
        self,
        api: ApiClient,
        options: WatchOptions,
        namespaces: Sequence[str] = (),
        *,
        default_namespace: str = "default",
        resource: Resource = NETWORK_POLICIES,
    ) -> None:
        self.resource = resource
        self.api: Any = resource.api(api)
        self.server = str(api.configuration.host)
        self.options = options
        self.namespaces = tuple(namespaces) if resource.namespaced is not None else ()
        self.default_namespace = default_namespace

    def _rbac(self) -> str:
        return rbac_needed(self.namespaces, self.resource.rbac)

    # --- errors -------------------------------------------------------------------------

    def _where(self, namespace: str | None) -> str:
        return "cluster-wide" if namespace is None else f"in namespace {namespace}"

    def status_error(
        self,
        code: int,
        reason: str,
        message: str,
        namespace: str | None,
        *,
        retry_after: float | None = None,
    ) -> LiveError:
        """The exception for an error ``Status`` (an HTTP answer or an in-stream ERROR)."""
        server = f"the Kubernetes API server at {self.server}"
        said = f"{code} {reason}".strip()
        if message and message != reason:
            said = f"{said}: {message}"
        if code == 401:
            return LiveAccessError(
                f"{server} rejected driftwatch's credentials ({said}); use a kubeconfig user or"
                f" token it accepts; {self._rbac()}"
            )
        served = f"{self.resource.served} {self.resource.title}"
        if code == 403:
            return LiveAccessError(
                f"{server} forbids listing {self.resource.title} {self._where(namespace)}"
                f" ({said}); {self._rbac()}"
            )
        if code == 404:
            if namespace is not None:
                return LiveNotFoundError(
                    f"{server} has no namespace {namespace!r} or does not serve {served} ({said})"
                )
            return LiveNotFoundError(f"{server} does not serve {served} ({said})")
        if code == 410:
            return LiveExpiredError(f"{server}: {said}")
        if code == 504 and _TOO_LARGE in message.lower():
            return LiveExpiredError(f"{server}: {said}", reason="too_large")
        if code == 429:
            return LiveUnavailableError(
                f"{server} is throttling requests ({said})",
                reason="throttled",
                retry_after=retry_after,
            )
        if code >= 500 or code == 408:
            return LiveUnavailableError(
                f"{server} failed ({said})", reason="server_error", retry_after=retry_after
            )
        return LiveApiError(
            f"{server} answered {said} to a {self.resource.singular} list {self._where(namespace)}"
        )

    def _connection_error(self, error: BaseException, *, waiting: str) -> LiveUnavailableError:
        server = f"the Kubernetes API server at {self.server}"
        if isinstance(error, aiohttp.ClientConnectorError):
            cause = error.os_error
            if isinstance(cause, ssl.SSLError):
                why = getattr(cause, "verify_message", None) or cause.reason or str(cause)
                detail = f"TLS failed: {why}"
            else:
                if cause.errno is not None and cause.errno > 0:  # asyncio rewords these
                    detail = os.strerror(cause.errno)
                else:  # a resolver error (negative codes) or no code at all
                    detail = cause.strerror or str(cause) or type(error).__name__
                detail = detail[:1].lower() + detail[1:]
            return LiveUnavailableError(f"cannot reach {server}: {detail}", reason="unreachable")
        if isinstance(error, TimeoutError):
            return LiveUnavailableError(
                f"{server} timed out {waiting} (read timeout {self.options.read_timeout:g}s,"
                f" request timeout {self.options.request_timeout:g}s)",
                reason="read_timeout",
            )
        detail = str(error) or type(error).__name__
        return LiveUnavailableError(f"lost {server} {waiting}: {detail}", reason="disconnected")

    # --- requests -----------------------------------------------------------------------

    async def _request(
        self, namespace: str | None, timeout: aiohttp.ClientTimeout, **params: Any
    ) -> aiohttp.ClientResponse:
        """Send one list/watch request; a non-200 answer is raised as its error."""
        params.update(_preload_content=False, _request_timeout=timeout)
        try:
            resource = self.resource
            if namespace is None or resource.namespaced is None:
                response = await getattr(self.api, resource.cluster_wide)(**params)
            else:
                response = await getattr(self.api, resource.namespaced)(namespace, **params)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise self._connection_error(error, waiting="for an answer") from error
        if not isinstance(response, aiohttp.ClientResponse):  # what _preload_content=False gives
            raise TypeError(f"kubernetes_asyncio returned {type(response).__name__}")
        if response.status == 200:
            return response
        try:
            body = await response.content.read(_ERROR_BODY_LIMIT)
        except (aiohttp.ClientError, TimeoutError):
            body = b""
        finally:
            response.close()
        reason, message = _status_of(body)
        retry = _retry_after(response.headers.get("Retry-After"))
        raise self.status_error(
            response.status,
            reason or str(response.reason or ""),
            message,
            namespace,
            retry_after=retry,
        )

    async def list_page(self, namespace: str | None, token: str | None) -> Obj:
        """One page of a list, as JSON."""
        options = self.options
        timeout = aiohttp.ClientTimeout(
            total=options.request_timeout, sock_read=options.read_timeout
        )
        params: dict[str, Any] = {"limit": options.page_size}
        if token:
            params["_continue"] = token
        response = await self._request(namespace, timeout, **params)
        try:
            body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            response.close()
            raise self._connection_error(error, waiting="reading a list") from error
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as error:  # not JSON, or nested beyond reason
            raise LiveApiError(
                f"the Kubernetes API server at {self.server} sent a list that is not JSON"
            ) from error
        if not isinstance(data, dict) or not isinstance(data.get("items") or [], list):
            raise LiveApiError(
                f"the Kubernetes API server at {self.server} sent a list without items"
            )
        return data

    async def list_all(self, namespace: str | None, slicer: Slicer | None = None) -> Listing:
        """Every page of a NetworkPolicy list, parsed; restarted from the top when a
        continue token expires (410) part-way through."""
        slicer = slicer if slicer is not None else Slicer()
        policies: dict[Key, NetworkPolicy] = {}
        invalid: dict[Key, str] = {}

        async def parse(items: list[Any]) -> None:
            await parse_items(items, policies, invalid, slicer, self.default_namespace)

        def reset() -> None:
            policies.clear()
            invalid.clear()

        version = await self.list_pages(namespace, parse, reset, slicer)
        return Listing(policies, version, invalid)

    async def list_pages(
        self,
        namespace: str | None,
        items: Items,
        reset: Callable[[], None],
        slicer: Slicer | None = None,
    ) -> str:
        """Every page of a list: each page's raw items are handed to ``items``; returns
        the list's resourceVersion. When a continue token expires (410) part-way through,
        ``reset()`` is called and the list starts again from the top."""
        slicer = slicer if slicer is not None else Slicer()
        restarts = 0
        while True:
            try:
                return await self._list_once(namespace, items, slicer)
            except _ContinueExpired as error:
                restarts += 1
                if restarts > _LIST_RESTARTS:
                    raise error.cause from None
                reset()
                await slicer.pause()

    async def _list_once(self, namespace: str | None, items: Items, slicer: Slicer) -> str:
        token: str | None = None
        version: str | None = None
        while True:
            try:
                page = await self.list_page(namespace, token)
            except LiveExpiredError as error:
                if token is None:
                    raise
                raise _ContinueExpired(error) from error
            raw_meta = page.get("metadata")
            meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
            if version is None:
                version = str(meta.get("resourceVersion") or "")
            await slicer.tick()
            await items(page.get("items") or [])
            token = str(meta.get("continue") or "") or None
            if token is None:
                return version
            await slicer.pause()

    async def watch(
        self, namespace: str | None, since: str, on_open: Callable[[], None] | None = None
    ) -> AsyncGenerator[Obj, None]:
        """The events of one watch from resourceVersion ``since``, as JSON objects with
        ``type`` and ``object``, until the server ends the stream cleanly. An in-stream
        ``ERROR`` is raised as its error; a dropped or silent connection as
        :class:`LiveUnavailableError`. ``on_open()`` is called once the server answered
        200 (the stream is open). Use with :func:`contextlib.aclosing`."""
        options = self.options
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=options.request_timeout,
            sock_read=options.read_timeout,
        )
        response = await self._request(
            namespace,
            timeout,
            watch=True,
            resource_version=since,
            allow_watch_bookmarks=True if options.bookmarks else None,
            timeout_seconds=options.timeout_seconds,
        )
        if on_open is not None:
            on_open()
        clean = False
        try:
            async with contextlib.aclosing(self._lines(response)) as lines:
                async for line in lines:
                    try:
                        event = orjson.loads(line)  # several times json.loads' speed
                    except (ValueError, RecursionError) as error:  # not JSON, or too deep
                        raise LiveUnavailableError(
                            f"the Kubernetes API server at {self.server} sent a watch event"
                            " that is not JSON",
                            reason="bad_stream",
                        ) from error
                    if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
                        raise LiveUnavailableError(
                            f"the Kubernetes API server at {self.server} sent a malformed"
                            " watch event",
                            reason="bad_stream",
                        )
                    if event.get("type") == "ERROR":
                        raise self._stream_error(event["object"], namespace)
                    yield event
            clean = True
        finally:
            if clean:
                response.release()
            else:
                response.close()

    def _stream_error(self, status: Mapping[str, Any], namespace: str | None) -> LiveError:
        code = status.get("code")
        reason = str(status.get("reason") or "")
        message = str(status.get("message") or "")[:300]
        if not isinstance(code, int):
            code = 410 if reason in ("Expired", "Gone") else 500
        error = self.status_error(code, reason, message, namespace)
        if isinstance(error, LiveUnavailableError):
            error.reason = "stream_error"
        return error

    async def _lines(self, response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
        """The non-empty lines of a response body; an unfinished last line means the
        connection was lost."""
        buffer = bytearray()
        scanned = 0
        try:
            async for chunk in response.content.iter_any():
                buffer += chunk
                start = 0
                while (end := buffer.find(b"\n", scanned)) >= 0:
                    line = bytes(buffer[start:end])
                    start = scanned = end + 1
                    if line.strip():
                        yield line
                if start:
                    del buffer[:start]
                scanned = len(buffer)
                if scanned > _MAX_LINE:
                    raise LiveUnavailableError(
                        f"the Kubernetes API server at {self.server} sent a watch event"
                        f" longer than {_MAX_LINE} bytes",
                        reason="bad_stream",
                    )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise self._connection_error(error, waiting="during a watch") from error
        if bytes(buffer).strip():
            raise LiveUnavailableError(
                f"lost the Kubernetes API server at {self.server} during a watch:"
                " the stream ended inside an event",
                reason="disconnected",
            )


class _ContinueExpired(Exception):
    def __init__(self, cause: LiveExpiredError) -> None:
        super().__init__(str(cause))
        self.cause = cause
