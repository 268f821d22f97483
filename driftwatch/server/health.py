"""``/healthz`` (the process answers) and ``/readyz`` (it is ready for traffic), and
``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from driftwatch.server.keys import BACKEND, LOG

__all__ = ["METRICS_REFRESH_TIMEOUT", "healthz", "metrics", "readyz"]

METRICS_REFRESH_TIMEOUT = 5.0
"""Longest wait for the store-backed gauges before a scrape is answered with the values of
the last refresh (Prometheus' default scrape timeout is 10 s)."""


async def healthz(request: web.Request) -> web.Response:
    """200 ``{"status": "ok"}`` while the event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 ``{"status": "ready", "reasons": [], "role": ...}`` or 503 ``{"status": "not
    ready", "reasons": [...], "role": ...}``."""
    state = request.app[BACKEND].readiness()
    body = {
        "status": "ready" if state.ready else "not ready",
        "reasons": list(state.reasons),
        "role": state.role,
    }
    return web.json_response(body, status=200 if state.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """The registry, after the daemon refreshed the gauges it reads at scrape time."""
    backend = request.app[BACKEND]
    try:
        async with asyncio.timeout(METRICS_REFRESH_TIMEOUT):
            await backend.refresh_metrics()
    except TimeoutError:
        request.app[LOG].warning(
            "metrics refresh timed out; serving the last values",
            timeout=METRICS_REFRESH_TIMEOUT,
        )
    except Exception as e:  # a store that fails: the counters are still worth serving
        request.app[LOG].error(
            "metrics refresh failed; serving the last values", error=f"{type(e).__name__}: {e}"
        )
    body, content_type = backend.metrics.render(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})
