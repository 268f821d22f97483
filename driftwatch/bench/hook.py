"""The webhook receiver: a minimal aiohttp server on loopback in the harness.

It verifies nothing (the signature is the tests' business) and keeps, per request, the
``webhook-id``, the incident id, the event type (``opened``, ``updated``, ``resolved``) and
``time.perf_counter()`` as the request reached the handler (on Linux ``perf_counter`` is
``CLOCK_MONOTONIC``, one clock for every process, so it compares with the children's).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Arrival", "Hook", "webhook_receiver"]

PATH = "/hook"


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request received."""

    webhook_id: str
    incident: str
    kind: str
    at: float


@dataclass
class Hook:
    """What arrived, in order; ``config`` is the daemon's ``notifiers:`` entry."""

    config: dict[str, Any]
    arrivals: list[Arrival] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` requests arrived; ``False`` after ``timeout`` s."""
        deadline = time.perf_counter() + timeout
        while len(self.arrivals) < count:
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(left, 0.5))
        return True

    async def settle(self, quiet: float) -> None:
        """Wait until nothing arrived for ``quiet`` seconds."""
        while True:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=quiet)
            except TimeoutError:
                return


@contextlib.asynccontextmanager
async def webhook_receiver(name: str = "bench") -> AsyncIterator[Hook]:
    """Serve on ``127.0.0.1`` (any free port) while the context is open."""
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    hook = Hook({})

    async def receive(request: web.Request) -> web.Response:
        at = time.perf_counter()
        body = json.loads(await request.read())
        kind = str(body.get("type", "")).removeprefix("drift.")
        hook.arrivals.append(
            Arrival(request.headers.get("webhook-id", ""), str(body.get("incident_id")), kind, at)
        )
        hook.changed.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post(PATH, receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hook.config = {
        "name": name,
        "type": "webhook",
        "url": f"http://127.0.0.1:{port}{PATH}",
        "secret": secret,
    }
    try:
        yield hook
    finally:
        await runner.cleanup()
