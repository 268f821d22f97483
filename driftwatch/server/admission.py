"""The validating admission webhook: ``POST /admission/validate`` on a TLS listener of its own.

The API server calls webhooks over HTTPS only, so this is not a route of the plain HTTP
server: ``admission:`` in the configuration gives it its own address, certificate and key
(:class:`~driftwatch.settings.admission.AdmissionSettings`). The handler is thin: it
reads the ``AdmissionReview``, asks :func:`driftwatch.drift.admission.decide` (pure) with
what the daemon hands over in an :class:`AdmissionBackend`, logs refusals and warnings,
and answers. A body that is not an ``AdmissionReview`` v1 request is a 400 (the API
server then applies the webhook's ``failurePolicy``).

The certificate and key are re-read when either file changes (checked every
``reload_interval`` seconds), so a renewal by cert-manager needs no restart.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import web

from driftwatch.drift import IgnoreRules
from driftwatch.drift.admission import AdmissionPolicy, DesiredLookup, InvalidReview, decide
from driftwatch.rules import RuleEngine
from driftwatch.server.app import ServerError
from driftwatch.server.errors import error_middleware, json_error
from driftwatch.settings.admission import AdmissionSettings

__all__ = ["ADMISSION_PATH", "AdmissionBackend", "AdmissionServer", "build_admission_app"]

ADMISSION_PATH = "/admission/validate"
MAX_REVIEW_BYTES = 4 * 1024 * 1024
"""An AdmissionReview holds the object (at most 1.5 MiB in etcd) and the old one."""


@dataclass(frozen=True, slots=True)
class AdmissionBackend:
    """What the webhook needs from the daemon, read at every request."""

    desired: Callable[[], DesiredLookup | None]
    """The desired state's lookup as last loaded (``None``: not loaded yet)."""
    engine: Callable[[], RuleEngine]
    """The daemon's rule engine."""
    ignore: Callable[[], IgnoreRules] = IgnoreRules
    """The daemon's ignore rules (left-alone policies are never refused)."""
    cluster: str = "default"


_BACKEND = web.AppKey("admission_backend", AdmissionBackend)
_POLICY = web.AppKey("admission_policy", AdmissionPolicy)
_LOG: web.AppKey[Any] = web.AppKey("admission_log")


async def _validate(request: web.Request) -> web.Response:
    backend, policy, log = request.app[_BACKEND], request.app[_POLICY], request.app[_LOG]
    try:
        review = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return json_error(400, "the body is not JSON (expected an AdmissionReview)")
    try:
        decision = decide(
            review,
            backend.desired(),
            backend.engine(),
            policy,
            cluster=backend.cluster,
            ignore=backend.ignore(),
        )
    except InvalidReview as error:
        return json_error(400, f"not an AdmissionReview v1 request: {error}")
    if decision.reason == "drift" or not decision.allowed:
        req = review["request"]
        log.warning(
            "admission: write refused" if not decision.allowed else "admission: write warned",
            operation=req.get("operation"),
            namespace=req.get("namespace"),
            policy=req.get("name"),
            user=(req.get("userInfo") or {}).get("username"),
            severity=None if decision.drift is None else str(decision.drift.severity),
            dry_run=bool(req.get("dryRun")),
            message=decision.message,
        )
    elif decision.warnings:
        log.info("admission: write allowed unchecked", reason=decision.reason)
    return web.json_response(decision.response())


def build_admission_app(
    settings: AdmissionSettings, backend: AdmissionBackend, *, log: Any = None
) -> web.Application:
    """The webhook's application (served over TLS by :class:`AdmissionServer`)."""
    log = log if log is not None else structlog.get_logger("driftwatch.admission")
    app = web.Application(
        client_max_size=MAX_REVIEW_BYTES,
        middlewares=[error_middleware(log=log, max_body_bytes=MAX_REVIEW_BYTES)],
    )
    app[_BACKEND] = backend
    app[_POLICY] = settings.to_policy()
    app[_LOG] = log
    app.router.add_post(ADMISSION_PATH, _validate)
    return app


def _mtimes(*paths: Path) -> tuple[float, ...]:
    out = []
    for path in paths:
        try:
            out.append(path.stat().st_mtime)
        except OSError:
            out.append(-1.0)
    return tuple(out)


class AdmissionServer:
    """Serves the webhook on ``settings.listen`` over TLS while :meth:`serve` runs."""

    def __init__(
        self,
        settings: AdmissionSettings,
        *,
        log: Any = None,
        shutdown_timeout: float = 1.0,
        reload_interval: float = 60.0,
    ) -> None:
        self.settings = settings
        self.shutdown_timeout = shutdown_timeout
        self.reload_interval = reload_interval
        self._log = log if log is not None else structlog.get_logger("driftwatch.admission")
        self._runner: web.AppRunner | None = None
        self._context: ssl.SSLContext | None = None
        self._loaded: tuple[float, ...] = ()
        self.listening = asyncio.Event()
        self.addresses: list[tuple[str, int]] = []
        """The bound (host, port) pairs (with port 0 in ``listen``: the chosen ports)."""

    @property
    def port(self) -> int:
        if not self.addresses:
            raise RuntimeError("the admission webhook is not listening")
        return self.addresses[0][1]

    @property
    def url(self) -> str:
        """``https://host:port`` of the first bound address (IPv6 in brackets)."""
        host, port = self.addresses[0] if self.addresses else ("", self.port)
        return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"

    def _load(self, context: ssl.SSLContext) -> None:
        cert, key = self.settings.cert_file, self.settings.key_file
        stamp = _mtimes(cert, key)
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise ServerError(
                f"cannot load the admission certificate {cert} and key {key}: {reason}"
            ) from e
        self._loaded = stamp

    def reload_if_changed(self) -> bool:
        """Re-read the certificate and key if either file changed; True if it did. A
        broken pair is logged and the one in use kept."""
        context = self._context
        if (
            context is None
            or _mtimes(self.settings.cert_file, self.settings.key_file) == self._loaded
        ):
            return False
        try:
            self._load(context)
        except ServerError as error:
            self._log.error("admission: keeping the certificate in use", error=str(error))
            return False
        self._log.info("admission: certificate reloaded", cert_file=str(self.settings.cert_file))
        return True

    async def start(self, backend: AdmissionBackend) -> None:
        """Load the certificate, bind and serve; :class:`ServerError` if either fails."""
        if self._runner is not None:
            raise RuntimeError("the admission webhook is already started")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._load(context)
        self._context = context
        app = build_admission_app(self.settings, backend, log=self._log)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=self.shutdown_timeout
        )
        await runner.setup()
        host, port = self.settings.address
        try:
            await web.TCPSite(runner, host, port, ssl_context=context).start()
        except OSError as e:
            await runner.cleanup()
            reason = e.strerror or str(e)
            raise ServerError(f"cannot listen on {self.settings.listen}: {reason}") from e
        self._runner = runner
        self.addresses = [(str(a[0]), int(a[1])) for a in runner.addresses]
        self._log.info(
            "serving the admission webhook",
            listen=self.settings.listen,
            url=self.url + ADMISSION_PATH,
        )
        self.listening.set()

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        self.listening.clear()
        if runner is not None:
            await runner.cleanup()

    async def serve(self, backend: AdmissionBackend) -> None:
        """:meth:`start`, then serve (re-reading a renewed certificate) until cancelled."""
        await self.start(backend)
        try:
            while True:
                await asyncio.sleep(self.reload_interval)
                self.reload_if_changed()
        finally:
            await self.close()
