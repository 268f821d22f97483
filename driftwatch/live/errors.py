"""What can go wrong talking to the API server, as exceptions whose ``str()`` is one line.

:class:`LiveError` is the base. The watcher retries :class:`LiveUnavailableError` (the
server is unreachable, slow, disconnected or failing with 5xx/429) and relists on
:class:`LiveExpiredError` (410 Gone); the others end it: bad configuration, missing RBAC,
a namespace or API the server does not serve, or an answer that makes no sense.
"""

from __future__ import annotations

__all__ = [
    "LiveAccessError",
    "LiveApiError",
    "LiveConfigError",
    "LiveError",
    "LiveExpiredError",
    "LiveInvalidError",
    "LiveNotFoundError",
    "LiveUnavailableError",
]


class LiveError(Exception):
    """Reading the cluster failed. ``str()`` is one line; it never contains a credential."""

    def __init__(self, message: str) -> None:
        self.message = " ".join(message.split())
        super().__init__(self.message)


class LiveConfigError(LiveError):
    """A kubeconfig or in-cluster configuration that cannot be used (names file/context)."""


class LiveAccessError(LiveError):
    """401 or 403: the credentials are rejected or lack the RBAC the daemon needs."""


class LiveNotFoundError(LiveError):
    """404: the namespace or the ``networking.k8s.io/v1`` API is not there."""


class LiveApiError(LiveError):
    """An answer the watcher cannot act on (an unexpected 4xx, a malformed body)."""


class LiveInvalidError(LiveError):
    """A one-shot read found a NetworkPolicy that :func:`~driftwatch.policy.parse_policy`
    rejects (the watcher reports those as events instead)."""


class LiveUnavailableError(LiveError):
    """A transient failure worth retrying. ``reason`` is a short stable word for metrics
    (``unreachable``, ``disconnected``, ``read_timeout``, ``server_error``, ``throttled``,
    ``bad_stream``, ``stream_error``); ``retry_after`` is the server's ``Retry-After``."""

    def __init__(self, message: str, *, reason: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class LiveExpiredError(LiveError):
    """The resourceVersion to resume from is gone (410 Expired, or too large after a
    restore): the watcher must list again. ``reason`` is ``expired`` or ``too_large``."""

    def __init__(self, message: str, *, reason: str = "expired") -> None:
        super().__init__(message)
        self.reason = reason
