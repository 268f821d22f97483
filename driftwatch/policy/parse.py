"""Parse a NetworkPolicy object (as written in Git or as the API server returns it)
into the canonical model, applying the API defaults and validating as the API
server does.

Every rejection is a :class:`PolicyError` naming the object and the field path
(``spec.ingress[0].from[1].ipBlock.except[0]``), so the caller can add file and line.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from driftwatch.policy.model import (
    EGRESS,
    INGRESS,
    IPBlock,
    LabelSelector,
    LiveOrigin,
    NetworkPolicy,
    Peer,
    PolicyPort,
    PolicyRule,
    PolicySpec,
    PolicyType,
    Requirement,
)

__all__ = [
    "API_VERSION",
    "KIND",
    "LAST_APPLIED",
    "PolicyError",
    "live_origin",
    "parse_label_selector",
    "parse_policy",
]

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})

_SPEC_FIELDS = frozenset({"podSelector", "policyTypes", "ingress", "egress"})
_PEER_FIELDS = frozenset({"podSelector", "namespaceSelector", "ipBlock"})
_PORT_FIELDS = frozenset({"protocol", "port", "endPort"})
_SELECTOR_FIELDS = frozenset({"matchLabels", "matchExpressions"})
_EXPRESSION_FIELDS = frozenset({"key", "operator", "values"})
_IPBLOCK_FIELDS = frozenset({"cidr", "except"})
_TOP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_META_FIELDS = frozenset(
    {
        "name",
        "namespace",
        "labels",
        "annotations",
        "generateName",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "finalizers",
        "ownerReferences",
        "managedFields",
        "selfLink",
        "clusterName",
    }
)

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class PolicyError(ValueError):
    """An object the API server would reject (or that is not a NetworkPolicy at all)."""

    def __init__(self, obj: str, path: str, message: str) -> None:
        self.obj = obj
        self.path = path
        self.message = message
        where = f"{obj}: " if obj else ""
        field = f"{path}: " if path else ""
        super().__init__(f"{where}{field}{message}")


class _Ctx:
    """Carries the object's name for error messages."""

    __slots__ = ("obj",)

    def __init__(self, obj: str) -> None:
        self.obj = obj

    def fail(self, path: str, message: str) -> NoReturn:
        raise PolicyError(self.obj, path, message)

    def mapping(self, value: Any, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        """A mapping (``None`` = empty) with no fields outside ``allowed``."""
        if value is None:
            return {}
        if not _is_mapping(value):
            self.fail(path, f"must be an object, got {_kind(value)}")
        mapping: Mapping[str, Any] = value
        if not mapping.keys() <= allowed:
            unknown = next(key for key in mapping if key not in allowed)
            self.fail(f"{path}.{unknown}" if path else str(unknown), "unknown field")
        return mapping

    def sequence(self, value: Any, path: str) -> list[Any]:
        """A list (``None`` = empty)."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, f"must be a list, got {_kind(value)}")
        return value


def _is_mapping(value: Any) -> bool:
    # ``type(...) is dict`` first: the ABC check costs a lot on a 10,000-policy load.
    return type(value) is dict or isinstance(value, Mapping)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return "null" if value is None else type(value).__name__


def parse_policy(obj: Any, *, default_namespace: str = "default") -> NetworkPolicy:
    """Normalise and validate one ``networking.k8s.io/v1`` NetworkPolicy object."""
    ctx = _Ctx("NetworkPolicy")
    if not _is_mapping(obj):
        ctx.fail("", f"must be an object, got {_kind(obj)}")
    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    if not _is_mapping(meta):
        ctx.fail("metadata", f"must be an object, got {_kind(meta)}")
    name = meta.get("name")
    if name is None or name == "":
        ns = meta.get("namespace") or default_namespace
        ctx.obj = f"NetworkPolicy {ns}/<unnamed>" if isinstance(ns, str) else ctx.obj
        ctx.fail("metadata.name", "is required")
    if not isinstance(name, str):
        ctx.fail("metadata.name", f"must be a string, got {_kind(name)}")
    namespace = meta.get("namespace") or default_namespace
    if not isinstance(namespace, str):
        ctx.fail("metadata.namespace", f"must be a string, got {_kind(namespace)}")
    ctx.obj = f"NetworkPolicy {namespace}/{name}"
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        ctx.fail("metadata.name", f"{name!r} is not a valid DNS subdomain name")
    if len(namespace) > 63 or not _DNS1123_LABEL.fullmatch(namespace):
        ctx.fail("metadata.namespace", f"{namespace!r} is not a valid namespace name")
    api_version = obj.get("apiVersion", API_VERSION)
    if api_version != API_VERSION:
        ctx.fail("apiVersion", f"must be {API_VERSION!r}, got {api_version!r}")
    if obj.get("kind", KIND) != KIND:
        ctx.fail("kind", f"must be {KIND!r}, got {obj.get('kind')!r}")
    ctx.mapping(obj, "", _TOP_FIELDS)
    ctx.mapping(meta, "metadata", _META_FIELDS)

    labels = _string_map(ctx, meta.get("labels"), "metadata.labels", check_labels=True)
    annotations = _string_map(ctx, meta.get("annotations"), "metadata.annotations")
    annotations = tuple((k, v) for k, v in annotations if k != LAST_APPLIED)
    spec = _spec(ctx, obj.get("spec"))
    return NetworkPolicy(
        namespace=namespace,
        name=name,
        spec=spec,
        labels=labels,
        annotations=annotations,
        origin=live_origin(meta),
    )


def _string_map(
    ctx: _Ctx, value: Any, path: str, *, check_labels: bool = False
) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not _is_mapping(value):
        ctx.fail(path, f"must be an object, got {_kind(value)}")
    for k, v in value.items():
        if not isinstance(k, str):
            ctx.fail(path, f"key {k!r} must be a string (quote it in YAML)")
        if not isinstance(v, str):
            ctx.fail(f"{path}.{k}", f"must be a string, got {_kind(v)} (quote it in YAML)")
        if check_labels:
            _check_label_key(ctx, k, path)
            _check_label_value(ctx, v, f"{path}.{k}")
    return tuple(sorted(value.items()))


@functools.lru_cache(maxsize=8192)
def _label_key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return f"label key {key!r} has an invalid prefix"
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return f"label key {key!r} is not a valid label name"
    return None


def _check_label_key(ctx: _Ctx, key: Any, path: str) -> None:
    if not isinstance(key, str):
        ctx.fail(path, f"label key {key!r} must be a string")
    problem = _label_key_problem(key)
    if problem is not None:
        ctx.fail(path, problem)


@functools.lru_cache(maxsize=8192)
def _label_value_ok(value: str) -> bool:
    return len(value) <= 63 and _LABEL_VALUE.fullmatch(value) is not None


def _check_label_value(ctx: _Ctx, value: str, path: str) -> None:
    if not _label_value_ok(value):
        ctx.fail(path, f"{value!r} is not a valid label value")


def _spec(ctx: _Ctx, value: Any) -> PolicySpec:
    spec = ctx.mapping(value, "spec", _SPEC_FIELDS)
    pod_selector = _selector(ctx, spec.get("podSelector"), "spec.podSelector")
    ingress = tuple(
        _rule(ctx, r, f"spec.ingress[{i}]", "from")
        for i, r in enumerate(ctx.sequence(spec.get("ingress"), "spec.ingress"))
    )
    egress = tuple(
        _rule(ctx, r, f"spec.egress[{i}]", "to")
        for i, r in enumerate(ctx.sequence(spec.get("egress"), "spec.egress"))
    )
    raw_types = ctx.sequence(spec.get("policyTypes"), "spec.policyTypes")
    types: set[PolicyType] = set()
    for i, t in enumerate(raw_types):
        if t == INGRESS:
            types.add(INGRESS)
        elif t == EGRESS:
            types.add(EGRESS)
        else:
            ctx.fail(
                f"spec.policyTypes[{i}]", f"unsupported value {t!r}: use 'Ingress' or 'Egress'"
            )
    if len(raw_types) > 2:
        ctx.fail("spec.policyTypes", "may not specify more than two policyTypes")
    if not raw_types:
        types.add(INGRESS)
        if egress:
            types.add(EGRESS)
    policy_types = tuple(t for t in (INGRESS, EGRESS) if t in types)
    return PolicySpec(pod_selector, policy_types, ingress, egress)


def _selector(ctx: _Ctx, value: Any, path: str) -> LabelSelector:
    sel = ctx.mapping(value, path, _SELECTOR_FIELDS)
    labels = _string_map(ctx, sel.get("matchLabels"), f"{path}.matchLabels", check_labels=True)
    exprs: list[Requirement] = []
    for i, raw in enumerate(ctx.sequence(sel.get("matchExpressions"), f"{path}.matchExpressions")):
        epath = f"{path}.matchExpressions[{i}]"
        expr = ctx.mapping(raw, epath, _EXPRESSION_FIELDS)
        key = expr.get("key")
        if not key:
            ctx.fail(f"{epath}.key", "is required")
        _check_label_key(ctx, key, f"{epath}.key")
        op = expr.get("operator")
        values = ctx.sequence(expr.get("values"), f"{epath}.values")
        for j, v in enumerate(values):
            if not isinstance(v, str):
                ctx.fail(f"{epath}.values[{j}]", f"must be a string, got {_kind(v)}")
            _check_label_value(ctx, v, f"{epath}.values[{j}]")
        if op in ("In", "NotIn"):
            if not values:
                ctx.fail(f"{epath}.values", f"must be non-empty for operator {op}")
        elif op in ("Exists", "DoesNotExist"):
            if values:
                ctx.fail(f"{epath}.values", f"must be empty for operator {op}")
        else:
            ctx.fail(
                f"{epath}.operator",
                f"unsupported operator {op!r}: use In, NotIn, Exists or DoesNotExist",
            )
        exprs.append(Requirement(key, op, tuple(values)))
    return LabelSelector(labels, tuple(exprs))


def _rule(ctx: _Ctx, value: Any, path: str, peers_field: str) -> PolicyRule:
    rule = ctx.mapping(value, path, frozenset({peers_field, "ports"}))
    peers = tuple(
        _peer(ctx, p, f"{path}.{peers_field}[{i}]")
        for i, p in enumerate(ctx.sequence(rule.get(peers_field), f"{path}.{peers_field}"))
    )
    ports = tuple(
        _port(ctx, p, f"{path}.ports[{i}]")
        for i, p in enumerate(ctx.sequence(rule.get("ports"), f"{path}.ports"))
    )
    parsed = PolicyRule(peers, ports)
    object.__setattr__(parsed, "text", _rule_text(rule))
    return parsed


def _rule_text(rule: Mapping[str, Any]) -> str | None:
    """The rule as written, as canonical JSON (C-fast): equal texts are equal rules, so the
    connectivity model can reuse its work on a rule it has seen (see PolicyRule.text)."""
    try:
        return json.dumps(rule, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def _peer(ctx: _Ctx, value: Any, path: str) -> Peer:
    peer = ctx.mapping(value, path, _PEER_FIELDS)
    has = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None]
    if not has:
        ctx.fail(path, "must specify a peer: podSelector, namespaceSelector or ipBlock")
    if "ipBlock" in has and len(has) > 1:
        ctx.fail(path, "ipBlock may not be combined with podSelector or namespaceSelector")
    if "ipBlock" in has:
        return Peer(ip_block=_ip_block(ctx, peer["ipBlock"], f"{path}.ipBlock"))
    pod = peer.get("podSelector")
    ns = peer.get("namespaceSelector")
    return Peer(
        pod_selector=None if pod is None else _selector(ctx, pod, f"{path}.podSelector"),
        namespace_selector=None if ns is None else _selector(ctx, ns, f"{path}.namespaceSelector"),
    )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8192)
def _parse_cidr(value: str) -> Network | str:
    """The network, or the problem with ``value``. Cached: CIDRs repeat across policies."""
    # Like Go's net.ParseCIDR: an address and a decimal prefix length. Python alone would
    # also take a bare address (as /32 or /128) and a netmask after the slash.
    _, slash, bits = value.partition("/")
    if not slash or not (bits.isascii() and bits.isdigit()):
        return f"{value!r} is not a valid CIDR (write address/prefix-length)"
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"{value!r} is not a valid CIDR"


def _network(ctx: _Ctx, value: Any, path: str) -> Network:
    if not isinstance(value, str) or not value:
        ctx.fail(path, f"must be a CIDR string, got {_kind(value)}")
    parsed = _parse_cidr(value)
    if isinstance(parsed, str):
        ctx.fail(path, parsed)
    return parsed


def _ip_block(ctx: _Ctx, value: Any, path: str) -> IPBlock:
    block = ctx.mapping(value, path, _IPBLOCK_FIELDS)
    if block.get("cidr") is None:
        ctx.fail(f"{path}.cidr", "is required")
    cidr = _network(ctx, block["cidr"], f"{path}.cidr")
    excepts: list[str] = []
    for i, raw in enumerate(ctx.sequence(block.get("except"), f"{path}.except")):
        epath = f"{path}.except[{i}]"
        net = _network(ctx, raw, epath)
        if (
            net.version != cidr.version
            or not net.subnet_of(cidr)  # type: ignore[arg-type]  # same version checked
            or net.prefixlen <= cidr.prefixlen
        ):
            ctx.fail(epath, f"{raw!r} must be a strict subset of cidr {block['cidr']!r}")
        excepts.append(raw)
    return IPBlock(block["cidr"], tuple(excepts))


def _port_number(ctx: _Ctx, value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.fail(path, f"must be an integer, got {_kind(value)}")
    if not 1 <= value <= 65535:
        ctx.fail(path, f"{value} is outside 1-65535")
    return value


def _port(ctx: _Ctx, value: Any, path: str) -> PolicyPort:
    port = ctx.mapping(value, path, _PORT_FIELDS)
    protocol = port.get("protocol")
    if protocol is None:
        protocol = "TCP"
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        ctx.fail(f"{path}.protocol", f"unsupported protocol {protocol!r}: use TCP, UDP or SCTP")
    raw = port.get("port")
    number: int | str | None
    if raw is None:
        number = None
    elif isinstance(raw, str):
        if (
            len(raw) > 15
            or not _PORT_NAME.fullmatch(raw)
            or "--" in raw
            or not any(c.isalpha() for c in raw)
        ):
            hint = " (write a port number unquoted)" if raw.isdigit() else ""
            ctx.fail(f"{path}.port", f"{raw!r} is not a valid port name{hint}")
        number = raw
    else:
        number = _port_number(ctx, raw, f"{path}.port")
    end = port.get("endPort")
    if end is not None:
        end = _port_number(ctx, end, f"{path}.endPort")
        if not isinstance(number, int):
            ctx.fail(f"{path}.endPort", "may only be set with a numeric port")
        if end < number:
            ctx.fail(f"{path}.endPort", f"{end} must be greater than or equal to port {number}")
    return PolicyPort(protocol, number, end)


def live_origin(meta: Mapping[str, Any]) -> LiveOrigin | None:
    """The manager, operation and time of the most recent ``managedFields`` entry."""
    entries = meta.get("managedFields")
    rv = meta.get("resourceVersion")
    if not isinstance(entries, list) or not entries:
        return LiveOrigin(None, None, None, str(rv)) if rv is not None else None
    best: Mapping[str, Any] | None = None
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        # ISO 8601 UTC timestamps order correctly as strings; later entries win ties.
        if best is None or str(entry.get("time") or "") >= str(best.get("time") or ""):
            best = entry
    if best is None:
        return None

    def text(key: str) -> str | None:
        value = best.get(key) if best is not None else None
        return None if value is None else str(value)

    return LiveOrigin(
        text("manager"), text("operation"), text("time"), None if rv is None else str(rv)
    )


def parse_label_selector(obj: Any, path: str = "selector") -> LabelSelector:
    """Validate and normalise a structured label selector (``matchLabels``/``matchExpressions``)."""
    return _selector(_Ctx(""), obj, path)
