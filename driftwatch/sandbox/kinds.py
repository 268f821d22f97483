"""Per-kind defaulting and validation of an object about to be stored.

What the real server does between decoding a request body and writing it: drop ``null``
members and empty ``omitempty`` fields, apply API defaults (NetworkPolicy ``policyTypes``
and port ``protocol``; the namespace name label; pod scheduling defaults), handle unknown
fields according to ``fieldValidation`` (``Strict``: 400; ``Warn``, the default: drop and
warn; ``Ignore``: drop), and validate (422 ``Invalid`` naming the field).
NetworkPolicies are validated by :func:`driftwatch.policy.parse_policy`, CRDs by
:func:`driftwatch.sandbox.crds.prepare_crd`, custom objects by their CRD's schema
(:mod:`driftwatch.sandbox.structural`, which keeps their ``null`` values where the schema
allows them, as the real server does). Lease times must be ``MicroTime``
(``2026-11-27T12:00:00.000000Z``, exactly six digits) and are stored in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

from driftwatch.policy import PolicyError, parse_policy
from driftwatch.sandbox.crds import prepare_crd
from driftwatch.sandbox.errors import FieldCause, bad_request, invalid
from driftwatch.sandbox.metadata import META_ORDER
from driftwatch.sandbox.resources import ResourceType
from driftwatch.sandbox.structural import check_object
from driftwatch.sandbox.webhooks import prepare_webhook_configuration, unknown_fields

__all__ = ["NAMESPACE_NAME_LABEL", "Prepared", "prepare"]

Obj = dict[str, Any]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
FIELD_VALIDATION = ("Strict", "Warn", "Ignore")

_TOP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_CONFIG_MAP_FIELDS = frozenset(
    {"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"}
)
_TOP_FIELDS_OF = {
    ("", "ConfigMap"): _CONFIG_MAP_FIELDS,
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): frozenset(
        {"apiVersion", "kind", "metadata", "webhooks"}
    ),
}
_META_FIELDS = frozenset(META_ORDER)
_MAP_FIELDS = frozenset({"labels", "annotations", "matchLabels", "nodeSelector"})
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_MAX_ANNOTATIONS = 256 * 1024
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_MICRO_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})(Z|[+-]\d{2}:\d{2})"
)
_LEASE_FIELDS: dict[str, str] = {
    "holderIdentity": "string",
    "leaseDurationSeconds": "int32",
    "leaseTransitions": "int32",
    "acquireTime": "MicroTime",
    "renewTime": "MicroTime",
    "preferredHolder": "string",
    "strategy": "string",
}


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
    top = _TOP_FIELDS_OF.get((rtype.group, rtype.kind), _TOP_FIELDS)
    for key in list(obj):
        if key not in top:
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


def _cannot_decode(rtype: ResourceType, detail: str) -> NoReturn:
    raise bad_request(
        f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: {detail}'
    )


def _micro_time(rtype: ResourceType, text: Any) -> str:
    """A ``MicroTime`` in the server's form (UTC, six digits), or 400 as the real decoder."""
    match = _MICRO_TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        _cannot_decode(
            rtype,
            f'parsing time "{text}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse it',
        )
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _cannot_decode(rtype, f'parsing time "{text}": day or month out of range')
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease(rtype: ResourceType, obj: Obj) -> Obj:
    spec = obj.get("spec")
    if spec is None:
        return obj
    if not isinstance(spec, dict):
        _cannot_decode(rtype, "json: cannot unmarshal into Go struct field Lease.spec")
    for key, kind in _LEASE_FIELDS.items():
        value = spec.get(key)
        if value is None:
            continue
        if kind == "MicroTime":
            spec[key] = _micro_time(rtype, value)
        elif (kind == "string") != isinstance(value, str) or (
            kind == "int32" and (isinstance(value, bool) or not isinstance(value, int))
        ):
            _cannot_decode(
                rtype,
                f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                f"LeaseSpec.spec.{key} of type {kind}",
            )
    return obj


def _config_map(rtype: ResourceType, obj: Obj) -> Obj:
    name = str(obj["metadata"]["name"])
    for section in ("data", "binaryData"):
        values = obj.get(section)
        if values is None:
            continue
        if not isinstance(values, dict):
            _fail(rtype, name, section, "Invalid value: must be an object")
        for key, value in values.items():
            if len(key) > 253 or not _CONFIG_KEY.fullmatch(key):
                _fail(
                    rtype,
                    name,
                    f"{section}[{key}]",
                    f'Invalid value: "{key}": a valid config key must consist of '
                    "alphanumeric characters, '-', '_' or '.'",
                )
            if not isinstance(value, str):
                _fail(rtype, name, f"{section}[{key}]", "Invalid value: must be a string")
    return obj


def _custom(rtype: ResourceType, obj: Obj, schema: Obj, mode: str, warnings: list[str]) -> Obj:
    meta = _normalized(obj.get("metadata", {}), omit_empty=False)
    checked = check_object({**obj, "metadata": meta}, schema)
    for path in checked.unknown:
        if mode == "Strict":
            _cannot_decode(rtype, f'strict decoding error: unknown field "{path}"')
        if mode == "Warn":
            warnings.append(f'unknown field "{path}"')
    name = str(meta.get("name", ""))
    if checked.causes:
        raise invalid(rtype.kind, rtype.group, name, checked.causes)
    return checked.obj


def prepare(
    rtype: ResourceType,
    obj: Obj,
    old: Obj | None,
    field_validation: str,
    *,
    schema: Obj | None = None,
    now: str = "",
) -> Prepared:
    """Default, clean and validate ``obj``; returns a new object (``obj`` is not modified).
    ``schema``: a custom kind's ``openAPIV3Schema``; ``now``: the server's time (CRD
    conditions)."""
    if field_validation not in FIELD_VALIDATION:
        raise bad_request(
            f'fieldValidation must be one of "Ignore", "Warn" or "Strict", got "{field_validation}"'
        )
    warnings: list[str] = []
    if rtype.custom:
        meta = obj.get("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request(f"{rtype.kind}.metadata must be an object")
        if old is None and rtype.has_status:  # as the real server: create cannot set status
            obj = {k: v for k, v in obj.items() if k != "status"}
        obj = _custom(rtype, obj, schema or {"type": "object"}, field_validation, warnings)
        _generic_unknown_fields(rtype, {"metadata": obj["metadata"]}, field_validation, warnings)
        _check_metadata(rtype, obj["metadata"])
        return Prepared(_meta_omit(obj), warnings)
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
        elif rtype.kind == "Lease" and rtype.group == "coordination.k8s.io":
            obj = _lease(rtype, obj)
        elif rtype.kind == "ConfigMap" and rtype.group == "":
            obj = _config_map(rtype, obj)
        elif rtype.kind == "CustomResourceDefinition" and rtype.group == "apiextensions.k8s.io":
            obj = prepare_crd(rtype, obj, old, now)
        elif rtype.group == "admissionregistration.k8s.io":
            for path in list(unknown_fields(obj)):
                _unknown_field(rtype, obj, path, field_validation, warnings)
            obj = prepare_webhook_configuration(rtype, obj)
    return Prepared(_meta_omit(obj), warnings)


def _meta_omit(obj: Obj) -> Obj:
    meta = obj["metadata"]
    for key in ("labels", "annotations", "finalizers", "ownerReferences"):
        if key in meta and not meta[key]:
            del meta[key]
    return obj
