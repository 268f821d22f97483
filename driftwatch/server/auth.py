"""Secrets compared in constant time: the API's bearer token, the push hook's signatures."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from driftwatch.server.errors import json_error

__all__ = ["bearer_auth", "github_signature", "same_secret"]


def _bytes(text: str) -> bytes:
    # Headers may hold any byte: never let an odd one raise (compare_digest on str does).
    return text.encode("utf-8", "surrogateescape")


def same_secret(given: str, expected: bytes) -> bool:
    """``given`` equals ``expected``, compared in constant time."""
    return hmac.compare_digest(_bytes(given), expected)


def github_signature(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _unauthorized(message: str, challenge: str) -> web.Response:
    return json_error(401, message, headers={"WWW-Authenticate": challenge})


def bearer_auth(token: bytes) -> Middleware:
    """A middleware answering 401 (``WWW-Authenticate: Bearer``) unless the request carries
    ``Authorization: Bearer <token>``."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            return _unauthorized("missing bearer token", 'Bearer realm="driftwatch"')
        if not same_secret(given, token):
            return _unauthorized(
                "invalid bearer token", 'Bearer realm="driftwatch", error="invalid_token"'
            )
        return await handler(request)

    return auth
