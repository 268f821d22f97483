"""Secrets compared in constant time: the API's bearer tokens, the push hook's signatures.

The API takes one anonymous token (``server.api_token``) and named ones
(``server.api_tokens``); the middleware stores which one authenticated a request under
:data:`AUTHENTICATED_AS` (``None``: the anonymous one), so actions record who did them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from driftwatch.server.errors import json_error

__all__ = ["AUTHENTICATED_AS", "bearer_auth", "github_signature", "same_secret", "token_name"]

AUTHENTICATED_AS: web.RequestKey[str | None] = web.RequestKey("driftwatch.authenticated_as")
"""The request key holding the name of the token that authenticated it."""


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


def bearer_auth(tokens: bytes | Mapping[bytes, str | None]) -> Middleware:
    """A middleware answering 401 (``WWW-Authenticate: Bearer``) unless the request carries
    ``Authorization: Bearer <token>`` for one of ``tokens`` (token -> its name, ``None`` for
    the anonymous one; one ``bytes``: that token, anonymous). Every token is compared, so
    the time taken does not tell which matched."""
    known = {tokens: None} if isinstance(tokens, bytes) else dict(tokens)

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            return _unauthorized("missing bearer token", 'Bearer realm="driftwatch"')
        found = False
        name: str | None = None
        for token, owner in known.items():
            if same_secret(given, token):
                found, name = True, owner
        if not found:
            return _unauthorized(
                "invalid bearer token", 'Bearer realm="driftwatch", error="invalid_token"'
            )
        request[AUTHENTICATED_AS] = name
        return await handler(request)

    return auth


def token_name(request: web.Request) -> str | None:
    """The name of the token that authenticated ``request`` (``None``: anonymous)."""
    return request.get(AUTHENTICATED_AS)
