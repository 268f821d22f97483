"""Authorization, simplified: every request is allowed unless a test denies its verb.

:class:`Rbac` holds denial rules (verb, resource, optionally group and namespace; ``*``
matches any verb or resource). A request whose verb a rule denies is answered ``403
Forbidden`` worded as the real server's RBAC authorizer words it, and
``SelfSubjectAccessReview`` (``POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews``)
answers from the same rules: a cluster-wide question is denied when any rule denies the
verb somewhere. Set them with ``POST /_sandbox/rbac {"deny": [{"verb": "patch",
"resource": "networkpolicies"}]}`` (``{"deny": []}`` allows everything again) or
:meth:`Rbac.deny`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from driftwatch.sandbox.errors import ApiError, bad_request, invalid
from driftwatch.sandbox.resources import ResourceType

__all__ = [
    "ACCESS_REVIEW_PATH",
    "PROTOBUF",
    "SANDBOX_USER",
    "Denial",
    "Rbac",
    "decode_review",
    "request_verb",
]

Obj = dict[str, Any]

ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
SANDBOX_USER = "system:serviceaccount:default:sandbox-user"
"""Who every request is, as far as authorization says."""
PROTOBUF = "application/vnd.kubernetes.protobuf"
"""What kubectl (client-go's typed clients) sends a review as; answered in JSON, which it
also accepts."""
_MAGIC = b"k8s\x00"
_ATTRIBUTES = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
"""``ResourceAttributes`` fields, by protobuf field number (from 1)."""


@dataclass(frozen=True, slots=True)
class Denial:
    """Deny ``verb`` on ``resource`` (a plural), in ``namespace`` (None: everywhere)."""

    verb: str
    resource: str
    namespace: str | None = None
    group: str | None = None
    """An API group (``networking.k8s.io``; ``""``: core); None: any."""

    def covers(self, verb: str, resource: str, group: str, namespace: str | None) -> bool:
        """Whether this rule denies the request; ``namespace`` None: cluster-wide, denied if
        the rule denies it in any namespace."""
        return (
            self.verb in ("*", verb)
            and self.resource in ("*", resource)
            and (self.group is None or self.group == group)
            and (self.namespace is None or namespace is None or self.namespace == namespace)
        )

    def describe(self) -> Obj:
        return {
            "verb": self.verb,
            "resource": self.resource,
            "namespace": self.namespace,
            "group": self.group,
        }

    @classmethod
    def parse(cls, raw: object) -> Denial:
        if not isinstance(raw, Mapping):
            raise bad_request("each deny rule must be an object with verb and resource")
        values: dict[str, str | None] = {}
        for key in ("verb", "resource", "namespace", "group"):
            value = raw.get(key)
            if value is not None and not isinstance(value, str):
                raise bad_request(f"deny rule {key} must be a string")
            values[key] = value
        unknown = set(raw) - set(values)
        if unknown:
            raise bad_request(f"unknown deny rule fields: {', '.join(sorted(unknown))}")
        verb, resource = values["verb"], values["resource"]
        if not verb or not resource:
            raise bad_request("a deny rule needs verb and resource")
        return cls(verb, resource, values["namespace"], values["group"])


def _fields(data: bytes) -> list[tuple[int, bytes]]:
    """The length-delimited fields of a protobuf message (others are skipped)."""

    def varint(at: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            if at >= len(data) or shift > 63:
                raise bad_request("malformed protobuf body")
            byte = data[at]
            value |= (byte & 0x7F) << shift
            at, shift = at + 1, shift + 7
            if not byte & 0x80:
                return value, at

    found: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        tag, at = varint(at)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, at = varint(at)
        elif wire == 2:
            size, at = varint(at)
            found.append((number, data[at : at + size]))
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise bad_request("malformed protobuf body")
    return found


def _field(data: bytes, number: int) -> bytes | None:
    return next((value for n, value in _fields(data) if n == number), None)


def decode_review(body: bytes) -> Obj:
    """A protobuf ``SelfSubjectAccessReview`` (``runtime.Unknown`` envelope) as JSON: only
    its resource attributes, which is all the sandbox answers from."""
    if not body.startswith(_MAGIC):
        raise bad_request("a protobuf body must start with the k8s envelope")
    raw = _field(body[len(_MAGIC) :], 2) or b""
    spec = _field(raw, 2) or b""
    attributes = _field(spec, 1)
    review: Obj = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}
    if attributes is None:
        review["spec"] = {}
        return review
    fields = {
        _ATTRIBUTES[n - 1]: value.decode("utf-8", "replace")
        for n, value in _fields(attributes)
        if 1 <= n <= len(_ATTRIBUTES)
    }
    review["spec"] = {"resourceAttributes": fields}
    return review


def request_verb(method: str, *, named: bool, watch: bool) -> str:
    """The RBAC verb of an API request."""
    if method == "GET":
        return "watch" if watch else "get" if named else "list"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


class Rbac:
    """The sandbox's denial rules (none: everything is allowed)."""

    def __init__(self) -> None:
        self.denied: tuple[Denial, ...] = ()

    def deny(self, rules: Iterable[Denial]) -> None:
        """Replace the rules (an empty list allows everything)."""
        self.denied = tuple(rules)

    def allows(self, verb: str, resource: str, group: str, namespace: str | None) -> bool:
        return not any(d.covers(verb, resource, group, namespace) for d in self.denied)

    def check(
        self, verb: str, rtype: ResourceType, namespace: str | None, name: str | None
    ) -> None:
        """Raise the real server's 403 when ``verb`` is denied."""
        if self.allows(verb, rtype.plural, rtype.group, namespace):
            return
        what = f'{rtype.group_resource} "{name}"' if name else rtype.group_resource
        group = rtype.group
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        details: Obj = {"kind": rtype.plural}
        if name:
            details["name"] = name
        if group:
            details["group"] = group
        raise ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{SANDBOX_USER}" cannot {verb} resource'
            f' "{rtype.plural}" in API group "{group}" {scope}',
            details,
        )

    def review(self, body: Any) -> Obj:
        """Answer a ``SelfSubjectAccessReview`` (resource attributes only)."""
        if not isinstance(body, dict) or body.get("kind") not in (None, "SelfSubjectAccessReview"):
            raise bad_request("the body must be a SelfSubjectAccessReview")
        spec = body.get("spec")
        attributes = spec.get("resourceAttributes") if isinstance(spec, dict) else None
        if not isinstance(attributes, dict):
            raise invalid(
                "SelfSubjectAccessReview",
                "authorization.k8s.io",
                "",
                [
                    (
                        "FieldValueRequired",
                        "spec.resourceAttributes",
                        "Required value: exactly one of nonResourceAttributes or"
                        " resourceAttributes must be specified",
                    )
                ],
            )
        verb = str(attributes.get("verb") or "")
        resource = str(attributes.get("resource") or "")
        group = str(attributes.get("group") or "")
        namespace = str(attributes.get("namespace") or "") or None
        allowed = self.allows(verb, resource, group, namespace)
        status: Obj = {"allowed": allowed}
        if not allowed:
            status["reason"] = "denied by the sandbox's /_sandbox/rbac rules"
        return {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
