"""The aiohttp application: middlewares (access log, faults, bearer-token authentication,
errors as ``Status``) around the API handlers, plus the ``/_sandbox/`` admin endpoints.

The access log goes to the ``driftwatch.sandbox`` logger at DEBUG: method, path, status
and duration — never headers, so tokens stay out of logs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

from driftwatch.sandbox.admin import add_admin_routes
from driftwatch.sandbox.admission import token_user
from driftwatch.sandbox.errors import ApiError, internal_error, status_object, unauthorized
from driftwatch.sandbox.faults import Faults
from driftwatch.sandbox.handlers import ApiHandlers, json_response

__all__ = ["ADMIN_USER", "MAX_BODY", "build_app"]

log = logging.getLogger("driftwatch.sandbox")

ADMIN_USER = "kubernetes-admin"
"""The user name of the sandbox's own token (as kubeadm's admin kubeconfig)."""
MAX_BODY = 3 * 1024 * 1024
"""The real server's request body limit."""

_ADMIN = "/_sandbox/"
_PUBLIC = ("/version", "/healthz", "/livez", "/readyz")
_REASONS = {
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def _fault_response(status: int) -> web.Response:
    reason = _REASONS.get(status, "InternalError" if status >= 500 else "BadRequest")
    body = status_object(status, reason, f"sandbox fault injection: HTTP {status}")
    response = json_response(body, status)
    if status in (429, 503):
        response.headers["Retry-After"] = "1"
    return response


def build_app(
    api: ApiHandlers,
    faults: Faults,
    token: str | None,
    *,
    require_auth: bool = False,
    users: Mapping[str, str] | None = None,
) -> web.Application:
    """The application serving ``api``.

    A request that presents a bearer token must present ``token`` or one of ``users``
    (token -> user name; else 401); one without any is served anonymously unless
    ``require_auth``. ``token`` None turns checks off. ``api.tokens`` gets every token and
    its user name (``token``'s is ``kubernetes-admin``): what admission webhooks are told.
    """
    tokens = {**({token: ADMIN_USER} if token is not None else {}), **(users or {})}
    api.tokens = tokens

    @web.middleware
    async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        status = 0
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            log.debug(
                "%s %s -> %s in %.1f ms",
                request.method,
                request.path,
                status or "aborted",
                (time.monotonic() - started) * 1000,
            )

    @web.middleware
    async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(_ADMIN):
            return await handler(request)
        rule = faults.pick(request.path)
        if rule is None:
            return await handler(request)
        if rule.kind == "refuse":
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()
        if rule.kind == "delay":
            await asyncio.sleep(rule.seconds)
            return await handler(request)
        return _fault_response(rule.status)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if token is None or path in _PUBLIC or path.startswith(_ADMIN):
            return await handler(request)
        header = request.headers.get("Authorization")
        if header is None and not require_auth:
            return await handler(request)  # anonymous, as kubectl is over plain HTTP
        if token_user(tokens, header) is None:
            error = unauthorized()
            return json_response(error.status(), error.code)
        return await handler(request)

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return json_response(error.status(), error.code, error.warnings)
        except web.HTTPRequestEntityTooLarge:
            body = status_object(413, "RequestEntityTooLarge", f"limit is {MAX_BODY}")
            return json_response(body, 413)
        except web.HTTPException as error:
            if request.transport is None or request.transport.is_closing():
                raise
            body = status_object(error.status, error.reason.replace(" ", ""), error.text or "")
            return json_response(body, error.status)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            log.exception("sandbox: unexpected error serving %s %s", request.method, request.path)
            failure = internal_error("an unexpected error occurred in the sandbox")
            return json_response(failure.status(), 500)

    app = web.Application(
        middlewares=[access_log, inject_faults, authenticate, errors],
        client_max_size=MAX_BODY,
    )
    add_admin_routes(app, api.ops.store, faults, api.rbac)
    app.router.add_route("*", "/{tail:.*}", api.dispatch)
    return app
