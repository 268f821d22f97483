"""Every answer is JSON, errors included, and none shows a stack trace.

:func:`error_middleware` turns aiohttp's own errors (no such route: 404, wrong method: 405,
body over the limit: 413) into ``{"error": ...}`` answers, and any other exception raised
by a handler into a logged ``500 {"error": "internal error"}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

__all__ = ["error_middleware", "json_error"]

_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")
_MESSAGES = {
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
}


def json_error(
    status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    """``{"error": message, ...extra}`` with ``status``."""
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


def error_middleware(*, log: Any, max_body_bytes: int) -> Middleware:
    """The outermost middleware of the server (see the module docstring)."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        too_large = json_error(413, _MESSAGES[413], limit=max_body_bytes)
        if request.content_length is not None and request.content_length > max_body_bytes:
            return too_large  # refused before a byte of the body is read
        try:
            response = await handler(request)
        except web.HTTPException as e:
            if e.status < 400:
                raise  # redirects and the like stay as they are
            if e.status == 413:
                return too_large
            headers = {k: e.headers[k] for k in _KEPT_HEADERS if k in e.headers}
            message = _MESSAGES.get(e.status, (e.reason or "error").lower())
            return json_error(e.status, message, headers=headers)
        except Exception as e:  # the one place that answers for every handler
            log.error(
                "http handler failed",
                method=request.method,
                path=request.path,
                error=f"{type(e).__name__}: {e}",
                exc_info=e,
            )
            return json_error(500, "internal error")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return errors
