"""Parse a NetworkPolicy object (as written in Git or as the API server returns it)
into the canonical model, applying the API defaults and validating as the API
server does.

Every rejection is a :class:`PolicyError` naming the object and the field path
(``spec.ingress[0].from[1].ipBlock.except[0]``), so the caller can add file and line.

Two paths give the same results: a fast path for the usual shapes (exact built-in types,
repeated parts looked up in bounded caches), and the careful path, which checks field by
field in the API server's order. The fast path hands over the whole object on anything
else, so every error message comes from the careful path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from driftwatch.policy._fast_parse import Slow, fast_policy
from driftwatch.policy._grammar import (
    API_VERSION,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    EXPRESSION_FIELDS,
    IPBLOCK_FIELDS,
    KIND,
    LAST_APPLIED,
    META_FIELDS,
    PEER_FIELDS,
    PORT_FIELDS,
    PORT_NAME,
    PROTOCOLS,
    SELECTOR_FIELDS,
    SPEC_FIELDS,
    TOP_FIELDS,
    Network,
    label_key_problem,
    label_value_ok,
    live_origin,
    parse_cidr,
    rule_text,
)
from driftwatch.policy.model import (
    EGRESS,
    INGRESS,
    IPBlock,
    LabelSelector,
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
    try:
        return fast_policy(obj, default_namespace)
    except Slow:
        return _careful_policy(obj, default_namespace)


def _careful_policy(obj: Any, default_namespace: str) -> NetworkPolicy:
    """The reference path: checks each field in the API server's order, names what is wrong."""
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
    if len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name):
        ctx.fail("metadata.name", f"{name!r} is not a valid DNS subdomain name")
    if len(namespace) > 63 or not DNS1123_LABEL.fullmatch(namespace):
        ctx.fail("metadata.namespace", f"{namespace!r} is not a valid namespace name")
    api_version = obj.get("apiVersion", API_VERSION)
    if api_version != API_VERSION:
        ctx.fail("apiVersion", f"must be {API_VERSION!r}, got {api_version!r}")
    if obj.get("kind", KIND) != KIND:
        ctx.fail("kind", f"must be {KIND!r}, got {obj.get('kind')!r}")
    ctx.mapping(obj, "", TOP_FIELDS)
    ctx.mapping(meta, "metadata", META_FIELDS)

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


def _check_label_key(ctx: _Ctx, key: Any, path: str) -> None:
    if not isinstance(key, str):
        ctx.fail(path, f"label key {key!r} must be a string")
    problem = label_key_problem(key)
    if problem is not None:
        ctx.fail(path, problem)


def _check_label_value(ctx: _Ctx, value: str, path: str) -> None:
    if not label_value_ok(value):
        ctx.fail(path, f"{value!r} is not a valid label value")


def _spec(ctx: _Ctx, value: Any) -> PolicySpec:
    spec = ctx.mapping(value, "spec", SPEC_FIELDS)
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
    sel = ctx.mapping(value, path, SELECTOR_FIELDS)
    labels = _string_map(ctx, sel.get("matchLabels"), f"{path}.matchLabels", check_labels=True)
    exprs: list[Requirement] = []
    for i, raw in enumerate(ctx.sequence(sel.get("matchExpressions"), f"{path}.matchExpressions")):
        epath = f"{path}.matchExpressions[{i}]"
        expr = ctx.mapping(raw, epath, EXPRESSION_FIELDS)
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
    object.__setattr__(parsed, "text", rule_text(rule))
    return parsed


def _peer(ctx: _Ctx, value: Any, path: str) -> Peer:
    peer = ctx.mapping(value, path, PEER_FIELDS)
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


def _network(ctx: _Ctx, value: Any, path: str) -> Network:
    if not isinstance(value, str) or not value:
        ctx.fail(path, f"must be a CIDR string, got {_kind(value)}")
    parsed = parse_cidr(value)
    if isinstance(parsed, str):
        ctx.fail(path, parsed)
    return parsed


def _ip_block(ctx: _Ctx, value: Any, path: str) -> IPBlock:
    block = ctx.mapping(value, path, IPBLOCK_FIELDS)
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
    port = ctx.mapping(value, path, PORT_FIELDS)
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
            or not PORT_NAME.fullmatch(raw)
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


def parse_label_selector(obj: Any, path: str = "selector") -> LabelSelector:
    """Validate and normalise a structured label selector (``matchLabels``/``matchExpressions``)."""
    return _selector(_Ctx(""), obj, path)
