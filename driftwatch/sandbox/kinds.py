"""Per-kind defaulting and validation of an object about to be stored.

What the real server does between decoding a request body and writing it: drop ``null``
members and empty ``omitempty`` fields, apply API defaults (NetworkPolicy ``policyTypes``
and port ``protocol``; the namespace name label; pod scheduling defaults), handle unknown
fields according to ``fieldValidation`` (``Strict``: 400; ``Warn``, the default: drop and
warn; ``Ignore``: drop), and validate (422 ``Invalid`` naming the field).
NetworkPolicies are validated by :func:`driftwatch.policy.parse_policy`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NoReturn

from driftwatch.policy import PolicyError, parse_policy
from driftwatch.sandbox.errors import FieldCause, bad_request, invalid
from driftwatch.sandbox.metadata import META_ORDER
from driftwatch.sandbox.resources import ResourceType

__all__ = ["NAMESPACE_NAME_LABEL", "Prepared", "prepare"]

Obj = dict[str, Any]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
FIELD_VALIDATION = ("Strict", "Warn", "Ignore")

_TOP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_META_FIELDS = frozenset(META_ORDER)
_MAP_FIELDS = frozenset({"labels", "annotations", "matchLabels", "nodeSelector"})
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_MAX_ANNOTATIONS = 256 * 1024


@dataclass(slots=True)
class Prepared:
    """The object to store and the warnings for the response's ``Warning`` headers."""

    obj: Obj
    warnings: list[str] = field(default_factory=list)


def _normalized(value: Any, omit_empty: bool) -> Any:
    """A fresh copy without ``null`` members; with ``omit_empty``, also without what Go's
    ``omitempty`` drops on the way out: empty lists and empty maps (not empty structs)."""
    if type(value) is dict:
        out: Obj = {}
        for key, raw in value.items():
            if raw is None:
                continue
            item = _normalized(raw, omit_empty)
            if omit_empty and (
                (type(item) is list and not item)
                or (type(item) is dict and not item and key in _MAP_FIELDS)
            ):
                continue
            out[key] = item
        return out
    if type(value) is list:
        return [_normalized(v, omit_empty) for v in value if v is not None]
    return value


def _cause(path: str, message: str) -> FieldCause:
    reason = "FieldValueRequired" if message.startswith("Required") else "FieldValueInvalid"
    return (reason, path, message)


def _fail(rtype: ResourceType, name: str, path: str, message: str) -> NoReturn:
    raise invalid(rtype.kind, rtype.group, name, [_cause(path, message)])


def _check_metadata(rtype: ResourceType, meta: Obj) -> None:
    name = meta.get("name")
    if name is None or name == "":
        _fail(rtype, "", "metadata.name", "Required value: name or generateName is required")
    if not isinstance(name, str):
        _fail(rtype, "", "metadata.name", "Invalid value: must be a string")
    pattern, limit = (_DNS_LABEL, 63) if rtype.kind == "Namespace" else (_DNS_SUBDOMAIN, 253)
    if len(name) > limit or not pattern.fullmatch(name):
        _fail(
            rtype,
            name,
            "metadata.name",
            f'Invalid value: "{name}": must be a lowercase RFC 1123 '
            f"{'label' if limit == 63 else 'subdomain'} of at most {limit} characters",
        )
    for key in ("labels", "annotations"):
        mapping = meta.get(key, {})
        if not isinstance(mapping, dict):
            _fail(rtype, name, f"metadata.{key}", "Invalid value: must be an object")
        for k, v in mapping.items():
            if not isinstance(v, str):
                _fail(rtype, name, f"metadata.{key}.{k}", "Invalid value: must be a string")
            if key == "labels":
                prefix, slash, short = k.rpartition("/")
                bad_prefix = slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix))
                if bad_prefix or len(short) > 63 or not _LABEL_NAME.fullmatch(short):
                    _fail(
                        rtype, name, "metadata.labels", f'Invalid value: "{k}": invalid label key'
                    )
                if len(v) > 63 or not _LABEL_VALUE.fullmatch(v):
                    _fail(
                        rtype, name, "metadata.labels", f'Invalid value: "{v}": invalid label value'
                    )
        if (
            key == "annotations"
            and sum(len(k) + len(v) for k, v in mapping.items()) > _MAX_ANNOTATIONS
        ):
            _fail(rtype, name, "metadata.annotations", "Too long: must have at most 262144 bytes")


def _locate_parent(obj: Any, path: str) -> tuple[Any, str] | None:
    """The container and key of a dotted/indexed field path, allowing dots inside the last key."""
    node, rest = obj, path
    while True:
        if isinstance(node, dict):
            if rest in node:
                return node, rest
            key = next(
                (k for k in node if rest.startswith(k) and rest[len(k) : len(k) + 1] in (".", "[")),
                None,
            )
            if key is None:
                return None
            node, rest = node[key], rest[len(key) :].lstrip(".")
        elif isinstance(node, list) and rest.startswith("["):
            index, _, rest = rest[1:].partition("]")
            if not index.isdigit() or int(index) >= len(node):
                return None
            node, rest = node[int(index)], rest.lstrip(".")
        else:
            return None


def _unknown_field(
    rtype: ResourceType, obj: Obj, path: str, mode: str, warnings: list[str]
) -> None:
    if mode == "Strict":
        raise bad_request(
            f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
            f'strict decoding error: unknown field "{path}"'
        )
    located = _locate_parent(obj, path)
    if located is None:  # cannot happen for a path the validator produced; be safe anyway
        raise bad_request(f'unknown field "{path}"')
    container, key = located
    del container[key]
    if mode == "Warn":
        warnings.append(f'unknown field "{path}"')


def _generic_unknown_fields(rtype: ResourceType, obj: Obj, mode: str, warnings: list[str]) -> None:
    for key in list(obj):
        if key not in _TOP_FIELDS:
            _unknown_field(rtype, obj, key, mode, warnings)
    meta = obj.get("metadata", {})
    for key in list(meta):
        if key not in _META_FIELDS:
            _unknown_field(rtype, obj, f"metadata.{key}", mode, warnings)


def _network_policy(rtype: ResourceType, obj: Obj, mode: str, warnings: list[str]) -> Obj:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("podSelector", {})
        if not spec.get("policyTypes"):
            egress = spec.get("egress")
            spec["policyTypes"] = ["Ingress", "Egress"] if egress else ["Ingress"]
        for direction in ("ingress", "egress"):
            rules = spec.get(direction)
            for rule in rules if isinstance(rules, list) else []:
                ports = rule.get("ports") if isinstance(rule, dict) else None
                for port in ports if isinstance(ports, list) else []:
                    if isinstance(port, dict):
                        port.setdefault("protocol", "TCP")
    name = str(obj["metadata"].get("name", ""))
    for _ in range(1000):
        try:
            parse_policy(obj, default_namespace=str(obj["metadata"].get("namespace") or "default"))
        except PolicyError as error:
            if error.message == "unknown field":
                _unknown_field(rtype, obj, error.path, mode, warnings)
                continue
            path = error.path or "metadata"
            raise invalid(rtype.kind, rtype.group, name, [_cause(path, error.message)]) from None
        return obj
    raise bad_request("too many unknown fields")


def _namespace(obj: Obj, old: Obj | None) -> Obj:
    meta = obj["metadata"]
    meta.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = meta["name"]
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict) and old is None:
        spec.setdefault("finalizers", ["kubernetes"])
    if old is None:
        obj["status"] = {"phase": "Active"}
    return obj


def _pod(rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
    name = str(obj["metadata"]["name"])
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        _fail(rtype, name, "spec", "Required value")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        _fail(rtype, name, "spec.containers", "Required value")
    for i, container in enumerate(containers):
        if not isinstance(container, dict) or not isinstance(container.get("name"), str):
            _fail(rtype, name, f"spec.containers[{i}].name", "Required value")
        if not isinstance(container.get("image"), str) or not container["image"]:
            _fail(rtype, name, f"spec.containers[{i}].image", "Required value")
        container.setdefault("imagePullPolicy", "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
    for key, value in (
        ("restartPolicy", "Always"),
        ("dnsPolicy", "ClusterFirst"),
        ("schedulerName", "default-scheduler"),
        ("terminationGracePeriodSeconds", 30),
    ):
        spec.setdefault(key, value)
    if old is not None:
        old_spec = old.get("spec", {})
        stripped = [{k: v for k, v in c.items() if k != "image"} for c in spec["containers"]]
        old_stripped = [
            {k: v for k, v in c.items() if k != "image"} for c in old_spec.get("containers", [])
        ]
        other = {k: v for k, v in spec.items() if k != "containers"}
        old_other = {k: v for k, v in old_spec.items() if k != "containers"}
        if stripped != old_stripped or other != old_other:
            _fail(
                rtype,
                name,
                "spec",
                "Forbidden: pod updates may not change fields other than "
                "`spec.containers[*].image`",
            )
    elif "status" not in obj:
        # A real pod gets its status from the kubelet; the sandbox keeps a given status so
        # tests can seed running pods, and otherwise starts it Pending.
        obj["status"] = {"phase": "Pending"}
    return obj


def prepare(rtype: ResourceType, obj: Obj, old: Obj | None, field_validation: str) -> Prepared:
    """Default, clean and validate ``obj``; returns a new object (``obj`` is not modified)."""
    if field_validation not in FIELD_VALIDATION:
        raise bad_request(
            f'fieldValidation must be one of "Ignore", "Warn" or "Strict", got "{field_validation}"'
        )
    warnings: list[str] = []
    obj = _normalized(obj, omit_empty=rtype.kind == "NetworkPolicy")
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request(f"{rtype.kind}.metadata must be an object")
    if rtype.kind == "NetworkPolicy":
        _check_metadata(rtype, meta)
        obj = _network_policy(rtype, obj, field_validation, warnings)
    else:
        _generic_unknown_fields(rtype, obj, field_validation, warnings)
        _check_metadata(rtype, meta)
        if rtype.kind == "Namespace":
            obj = _namespace(obj, old)
        elif rtype.kind == "Pod":
            obj = _pod(rtype, obj, old)
    return Prepared(_meta_omit(obj), warnings)


def _meta_omit(obj: Obj) -> Obj:
    meta = obj["metadata"]
    for key in ("labels", "annotations", "finalizers", "ownerReferences"):
        if key in meta and not meta[key]:
            del meta[key]
    return obj
