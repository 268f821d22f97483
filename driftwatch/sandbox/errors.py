"""API errors as the real server words them: a ``Status`` object with code, reason, details.

Handlers raise :class:`ApiError`; the HTTP layer turns it into a JSON ``Status`` response,
and the watch stream into an ``ERROR`` event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from driftwatch.sandbox.resources import ResourceType

__all__ = [
    "ApiError",
    "FieldCause",
    "already_exists",
    "bad_request",
    "conflict",
    "expired",
    "internal_error",
    "invalid",
    "method_not_allowed",
    "not_found",
    "status_object",
    "unauthorized",
    "unsupported_media_type",
]

FieldCause = tuple[str, str, str]
"""(reason, field, message), e.g. ("FieldValueInvalid", "spec.podSelector", "...")."""


def status_object(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``v1`` ``Status`` of a failed request."""
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        status["details"] = details
    return status


class ApiError(Exception):
    """A request the API server answers with an error ``Status``."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.warnings: list[str] = []
        """``Warning`` headers to send with the error (an admission webhook's)."""

    def status(self) -> dict[str, Any]:
        return status_object(self.code, self.reason, self.message, self.details)


def _details(rtype: ResourceType | None, name: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name} if name else {}
    if rtype is not None:
        if rtype.group:
            details["group"] = rtype.group
        details["kind"] = rtype.plural
    details.update(extra)
    return details


def not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{rtype.group_resource} "{name}" not found', _details(rtype, name)
    )


def already_exists(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{rtype.group_resource} "{name}" already exists',
        _details(rtype, name),
    )


def conflict(rtype: ResourceType, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rtype.group_resource} "{name}": {why}',
        _details(rtype, name),
    )


def invalid(kind: str, group: str, name: str, causes: Sequence[FieldCause]) -> ApiError:
    """422 ``Invalid``, worded like ``NetworkPolicy.networking.k8s.io "web" is invalid: ...``."""
    qualified = f"{kind}.{group}" if group else kind
    listed = [f"{field}: {message}" if field else message for _, field, message in causes]
    joined = listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    details["causes"] = [
        {"reason": reason, "message": message, "field": field} for reason, field, message in causes
    ]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {joined}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(method: str) -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", f"the server does not allow this method ({method}) on the resource"
    )


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format: {content_type}",
    )


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def internal_error(message: str) -> ApiError:
    return ApiError(500, "InternalError", message, {"causes": [{"message": message}]})
