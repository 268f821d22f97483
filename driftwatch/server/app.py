"""The HTTP server of ``driftwatch run``: its application and its lifecycle.

=====================  ==========================================================
``GET /healthz``       200 ``{"status": "ok"}`` while the process answers
``GET /readyz``        200 when ready, else 503 with the reasons; the replica's role
``GET /metrics``       Prometheus text (OpenMetrics when asked)
``GET /api/v1/...``    the incidents (bearer token; without one configured: 404)
``POST /api/v1/...``   approve, snooze, revert an incident (``server.actions``)
``POST /hooks/git``    GitHub/GitLab push hook (signed; without a secret: 404)
``POST /hooks/slack``  the Slack buttons (signed; without a signing secret: 404)
=====================  ==========================================================

Every answer is JSON (``/metrics`` aside), errors included; a handler's exception is
logged and answered ``500 {"error": "internal error"}``; bodies beyond
``max_body_bytes`` are refused with 413.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web

from driftwatch.server import actions, api, health, hooks
from driftwatch.server.auth import bearer_auth
from driftwatch.server.backend import Backend
from driftwatch.server.errors import error_middleware, json_error
from driftwatch.server.keys import BACKEND, LOG, SETTINGS
from driftwatch.server.slack_hook import SlackHook
from driftwatch.settings.server import ServerSettings

__all__ = ["HttpServer", "ServerError", "build_app"]


class ServerError(OSError):
    """The server cannot listen (address in use, not permitted, unknown host)."""


def build_app(settings: ServerSettings, backend: Backend, *, log: Any = None) -> web.Application:
    """The application serving ``backend`` as ``settings`` says (see the module docstring)."""
    log = log if log is not None else structlog.get_logger("driftwatch.server")
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware(log=log, max_body_bytes=settings.max_body_bytes)],
    )
    app[BACKEND] = backend
    app[SETTINGS] = settings
    app[LOG] = log
    app.router.add_get("/healthz", health.healthz, allow_head=True)
    app.router.add_get("/readyz", health.readyz, allow_head=True)
    app.router.add_get("/metrics", health.metrics, allow_head=False)
    tokens = _api_tokens(settings)
    if tokens:
        sub = web.Application(middlewares=[bearer_auth(tokens)])
        sub[BACKEND] = backend
        sub[SETTINGS] = settings
        sub[LOG] = log
        api.add_routes(sub)
        actions.add_routes(sub)
        app.add_subapp("/api/v1", sub)
    else:
        app.router.add_route("*", "/api/{tail:.*}", _api_disabled)
    if settings.git_webhook_secret is not None and backend.git is not None:
        app.router.add_post("/hooks/git", hooks.git_hook)
    slack_secrets = _slack_secrets(settings, backend)
    if slack_secrets:  # the Slack buttons (server/slack_hook.py)
        slack = SlackHook(slack_secrets)
        app.router.add_post("/hooks/slack", slack.handle)
        app.on_cleanup.append(lambda _app: slack.close())
    return app


def _api_tokens(settings: ServerSettings) -> dict[bytes, str | None]:
    """Each API token -> its name (``None``: the anonymous ``api_token``)."""
    tokens: dict[bytes, str | None] = {
        t.token.get_secret_value().encode("utf-8"): t.name for t in settings.api_tokens
    }
    if settings.api_token is not None:
        tokens.setdefault(settings.api_token.get_secret_value().encode("utf-8"), None)
    return tokens


def _slack_secrets(settings: ServerSettings, backend: Backend) -> tuple[str, ...]:
    own = settings.slack_signing_secret
    found = ((own.get_secret_value(),) if own is not None else ()) + backend.slack_signing_secrets
    return tuple(dict.fromkeys(s for s in found if s))


async def _api_disabled(request: web.Request) -> web.Response:
    return json_error(404, "the API is disabled: set server.api_token_file")


class HttpServer:
    """Serves the application on ``settings.listen`` while :meth:`serve` runs.

    ``HttpServer(settings)`` is built from the configuration alone; the daemon hands it
    its :class:`Backend` when it starts serving.
    """

    def __init__(
        self, settings: ServerSettings, *, log: Any = None, shutdown_timeout: float = 1.0
    ) -> None:
        """``shutdown_timeout``: how long open requests may finish when stopping (keep it
        within the daemon's stop grace period)."""
        self.settings = settings
        self.shutdown_timeout = shutdown_timeout
        self._log = log if log is not None else structlog.get_logger("driftwatch.server")
        self._runner: web.AppRunner | None = None
        self.listening = asyncio.Event()
        """Set once the socket is bound (see :attr:`addresses`)."""
        self.addresses: list[tuple[str, int]] = []
        """The bound (host, port) pairs (with port 0 in ``listen``: the chosen ports)."""

    @property
    def port(self) -> int:
        """The bound port (of the first address)."""
        if not self.addresses:
            raise RuntimeError("the server is not listening")
        return self.addresses[0][1]

    @property
    def url(self) -> str:
        """``http://host:port`` of the first bound address (IPv6 in brackets)."""
        host, port = self.addresses[0] if self.addresses else ("", self.port)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def start(self, backend: Backend) -> None:
        """Bind and serve; :class:`ServerError` if the address cannot be used."""
        if self._runner is not None:
            raise RuntimeError("the server is already started")
        app = build_app(self.settings, backend, log=self._log)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=self.shutdown_timeout
        )
        await runner.setup()
        host, port = self.settings.address
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as e:
            await runner.cleanup()
            reason = e.strerror or str(e)
            raise ServerError(f"cannot listen on {self.settings.listen}: {reason}") from e
        self._runner = runner
        self.addresses = [(str(a[0]), int(a[1])) for a in runner.addresses]
        self._log.info("serving http", listen=self.settings.listen, url=self.url)
        self.listening.set()

    async def close(self) -> None:
        """Stop listening and close connections (open requests get ``shutdown_timeout``)."""
        runner, self._runner = self._runner, None
        self.listening.clear()
        if runner is not None:
            await runner.cleanup()

    async def serve(self, backend: Backend) -> None:
        """:meth:`start`, then serve until cancelled; :meth:`close` on the way out."""
        await self.start(backend)
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()
