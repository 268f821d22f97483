"""What every stand-in offers the shared receiver conformance suite."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

__all__ = ["Delivered", "Failure", "Failures", "Server", "StandIn", "sample_body"]


@dataclass(frozen=True, slots=True)
class Delivered:
    """One message the stand-in accepted, in arrival order."""

    incident_id: str
    """The incident it is about (as the receiver's protocol carries it)."""
    kind: str
    """``opened``, ``updated``, ``resolved``, ``reminder`` or ``test``, as the stand-in reads
    it from the message."""
    raw: Any = None
    """The request as received (parsed JSON, form fields, headers: whatever helps a test)."""


@dataclass(slots=True)
class Failure:
    """Answer the next ``times`` requests with ``status`` (and ``Retry-After``)."""

    status: int
    times: int = 1
    retry_after: int | None = None
    body: Any = None

    def headers(self) -> dict[str, str]:
        """``Retry-After`` when it has one."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class Failures:
    """The failures ``fail_next`` queued, answered in order."""

    def __init__(self) -> None:
        self._queue: deque[Failure] = deque()

    def add(self, failure: Failure) -> None:
        self._queue.append(failure)

    def clear(self) -> None:
        """The service is up again."""
        self._queue.clear()

    def take(self) -> Failure | None:
        """The failure to answer the current request with, if any."""
        if not self._queue:
            return None
        failure = self._queue[0]
        failure.times -= 1
        if failure.times <= 0:
            self._queue.popleft()
        return failure


class StandIn(Protocol):
    """A running stand-in (an async context manager starts and stops it)."""

    url: str
    """Its base URL (``http://127.0.0.1:<port>``)."""
    secret: str
    """A secret the receiver is configured with (token, routing key, signing secret): the
    conformance suite checks that no log line ever shows it."""

    def receiver_config(self, name: str) -> dict[str, Any]:
        """The ``notifiers:`` entry (``name``, ``type`` and the rest) pointing here."""
        ...

    def fail_next(self, status: int, *, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` instead of accepting them."""
        ...

    def recover(self) -> None:
        """Drop the failures ``fail_next`` still has queued: the service is up again."""
        ...

    @property
    def delivered(self) -> list[Delivered]:
        """What it accepted so far, in order."""
        ...


@dataclass
class Server:
    """An aiohttp app on an ephemeral loopback port: ``async with Server(app) as s``.

    :meth:`go_down` makes it refuse connections (the listening socket closed, open
    keep-alive connections dropped) and :meth:`come_back` listens again on the same port:
    a receiver that is down rather than failing."""

    app: web.Application
    url: str = ""
    port: int = 0
    _runner: web.AppRunner | None = field(default=None, repr=False)
    _site: web.TCPSite | None = field(default=None, repr=False)

    async def __aenter__(self) -> Server:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await self._listen(0)
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def _listen(self, port: int) -> None:
        assert self._runner is not None
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        server = site._server  # aiohttp keeps the bound socket here
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._site = site

    @property
    def down(self) -> bool:
        """Whether it refuses connections (between :meth:`go_down` and :meth:`come_back`)."""
        return self._site is None

    async def go_down(self) -> None:
        """Refuse connections from now on: stop listening and drop open connections."""
        assert self._runner is not None
        if self._site is None:
            return
        site, self._site = self._site, None
        await site.stop()
        handler = self._runner.server
        if handler is not None:
            for connection in list(handler.connections):
                connection.force_close()

    async def come_back(self) -> None:
        """Listen again, on the same port."""
        if self._site is None:
            await self._listen(self.port)

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def sample_body(kind: str, incident: str, **overrides: Any) -> dict[str, Any]:
    """An incident body as ``notify.body`` documents it (schema version 1), for
    ``incident`` (``<cluster>/<namespace>/<name>#<n>``): a high-severity exposure."""
    cluster, namespace, rest = incident.split("/", 2)
    body: dict[str, Any] = {
        "schema_version": 1,
        "type": f"drift.{kind}",
        "incident_id": incident,
        "cluster": cluster,
        "namespace": namespace,
        "name": rest.split("#")[0],
        "status": "modified",
        "severity": "high",
        "findings": [
            {
                "rule": "ingress-widened",
                "severity": "high",
                "direction": "ingress",
                "message": "ingress now allows 0.0.0.0/0 on 443",
                "evidence": {"cidr": "0.0.0.0/0"},
            }
        ],
        "diff": "--- git\n+++ live\n-  - 10.0.0.0/8\n+  - 0.0.0.0/0\n",
        "desired_source": {"path": "policies/frontend.yaml", "line": 1, "commit": "abc123"},
        "live_change": {
            "manager": "kubectl-edit",
            "operation": "Update",
            "time": "2024-05-01T11:59:00Z",
        },
        "occurred_at": "2024-05-01T12:00:00Z",
        "reason": "ingress widened to the world",
        "link": "https://git.example/shop/blob/abc123/policies/frontend.yaml#L1",
        "opened_at": "2024-05-01T12:00:00Z",
        "resolved_at": None,
    }
    body.update(overrides)
    return body
