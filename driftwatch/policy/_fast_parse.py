"""The fast path of :func:`driftwatch.policy.parse.parse_policy`: the usual well-formed
shapes, checked with exact types and few calls, repeated parts looked up in bounded caches.
It accepts only what the careful path accepts, builds equal values, and on anything else
(a subclass, a missing or wrong field, any error at all) raises :class:`Slow`, so that the
careful path reads the whole object again and words the error: messages come from one place.
"""

from __future__ import annotations

import functools
import marshal
from collections.abc import Callable
from typing import Any, TypeVar

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
    encode,
    label_key_problem,
    label_value_ok,
    live_origin,
    parse_cidr,
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

__all__ = ["Slow", "clear_caches", "fast_policy"]


class Slow(Exception):
    """The fast path leaves this object to the careful path."""


_EMPTY_SELECTOR = LabelSelector()
_RULE_FIELDS = {"from": frozenset({"from", "ports"}), "to": frozenset({"to", "ports"})}
_VALUE_OPERATORS = frozenset({"In", "NotIn"})
_EXISTS_OPERATORS = frozenset({"Exists", "DoesNotExist"})
_POLICY_TYPES: dict[tuple[str, ...], tuple[PolicyType, ...]] = {
    (INGRESS,): (INGRESS,),
    (EGRESS,): (EGRESS,),
    (INGRESS, EGRESS): (INGRESS, EGRESS),
    (EGRESS, INGRESS): (INGRESS, EGRESS),
    (INGRESS, INGRESS): (INGRESS,),
    (EGRESS, EGRESS): (EGRESS,),
}
_set = object.__setattr__


_CACHE_LIMIT = 16384
"""Entries per cache below; a full cache starts over (bounded memory)."""
_PEERS: dict[bytes, tuple[Peer, str]] = {}
_PORTS: dict[bytes, tuple[PolicyPort, str]] = {}
_PEER_LISTS: dict[bytes, tuple[tuple[Peer, ...], str]] = {}
_PORT_LISTS: dict[bytes, tuple[tuple[PolicyPort, ...], str]] = {}
_SELECTORS: dict[bytes, LabelSelector] = {}
_LABELS: dict[bytes, tuple[tuple[str, str], ...]] = {}
_V = TypeVar("_V")


def clear_caches() -> None:
    """Forget the parts parsed so far (tests, and benchmarks measuring cold work)."""
    for cache in (_PEERS, _PORTS, _PEER_LISTS, _PORT_LISTS, _SELECTORS, _LABELS):
        cache.clear()


def _cached(cache: dict[bytes, _V], value: Any, build: Callable[[Any], _V]) -> _V:
    """``build(value)``, or what it built for an identical value before.

    Keyed by ``marshal.dumps``: it serialises only exact built-in types (a subclass, a
    ``UserList``, any other object is a ValueError) and equal bytes load back to equal
    values of the same types, so a hit is a value the fast path would check and build
    the same way. ``build`` only returns for a valid part, so only those are kept."""
    try:
        key = marshal.dumps(value, 2)  # version 2: no references, so no identity in the key
    except ValueError:
        raise Slow from None
    found = cache.get(key)
    if found is None:
        found = build(value)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = found
    return found


@functools.lru_cache(maxsize=8192)
def _namespace_ok(namespace: str) -> bool:
    return len(namespace) <= 63 and DNS1123_LABEL.fullmatch(namespace) is not None


@functools.lru_cache(maxsize=8192)
def _port_name_ok(name: str) -> bool:
    return (
        len(name) <= 15
        and PORT_NAME.fullmatch(name) is not None
        and "--" not in name
        and any(c.isalpha() for c in name)
    )


@functools.lru_cache(maxsize=8192)
def _except_ok(cidr: str, excepted: str) -> bool:
    """Whether ``excepted`` is a valid ``except`` entry of a valid ``cidr``."""
    outer = parse_cidr(cidr) if cidr else "empty"
    net = parse_cidr(excepted) if excepted else "empty"
    if isinstance(outer, str) or isinstance(net, str):
        return False
    return (
        net.version == outer.version
        and net.subnet_of(outer)  # type: ignore[arg-type]  # same version checked
        and net.prefixlen > outer.prefixlen
    )


def fast_policy(obj: Any, default_namespace: str) -> NetworkPolicy:
    if type(obj) is not dict:
        raise Slow
    meta = obj.get("metadata")
    if type(meta) is not dict or not obj.keys() <= TOP_FIELDS or not meta.keys() <= META_FIELDS:
        raise Slow
    name = meta.get("name")
    namespace = meta.get("namespace") or default_namespace
    api_version = obj.get("apiVersion", API_VERSION)
    kind = obj.get("kind", KIND)
    if (
        type(name) is not str
        or type(namespace) is not str
        or type(api_version) is not str
        or type(kind) is not str
        or api_version != API_VERSION
        or kind != KIND
        or len(name) > 253
        or DNS1123_SUBDOMAIN.fullmatch(name) is None
        or not _namespace_ok(namespace)
    ):
        raise Slow
    labels = meta.get("labels")
    annotations = meta.get("annotations")
    if annotations is None:
        notes: tuple[tuple[str, str], ...] = ()
    elif type(annotations) is dict:
        for key, value in annotations.items():
            if type(key) is not str or type(value) is not str:
                raise Slow
        notes = tuple(sorted(kv for kv in annotations.items() if kv[0] != LAST_APPLIED))
    else:
        raise Slow
    return NetworkPolicy(
        namespace,
        name,
        _fast_spec(obj.get("spec")),
        () if labels is None else _cached(_LABELS, labels, _fast_labels),
        notes,
        None,
        live_origin(meta),
    )


def _fast_spec(spec: Any) -> PolicySpec:
    if spec is None:
        return PolicySpec(_EMPTY_SELECTOR, (INGRESS,), (), ())
    if type(spec) is not dict or not spec.keys() <= SPEC_FIELDS:
        raise Slow
    pod = spec.get("podSelector")
    ingress = _fast_rules(spec.get("ingress"), "from")
    egress = _fast_rules(spec.get("egress"), "to")
    raw_types = spec.get("policyTypes")
    if raw_types is None or (type(raw_types) is list and not raw_types):
        types: tuple[PolicyType, ...] = (INGRESS, EGRESS) if egress else (INGRESS,)
    elif type(raw_types) is list and all(type(t) is str for t in raw_types):
        found = _POLICY_TYPES.get(tuple(raw_types))
        if found is None:
            raise Slow
        types = found
    else:
        raise Slow
    return PolicySpec(
        _EMPTY_SELECTOR if pod is None else _cached(_SELECTORS, pod, _fast_selector),
        types,
        ingress,
        egress,
    )


def _fast_rules(value: Any, peers_field: str) -> tuple[PolicyRule, ...]:
    if value is None:
        return ()
    if type(value) is not list:
        raise Slow
    return tuple([_fast_rule(rule, peers_field) for rule in value])


def _fast_rule(value: Any, peers_field: str) -> PolicyRule:
    if value is None:
        value = {}
    elif type(value) is not dict or not value.keys() <= _RULE_FIELDS[peers_field]:
        raise Slow
    # The text (see rule_text) is put together from the parts' own texts: keys sorted,
    # "from" < "ports" < "to"; a field present as null is written as null.
    raw_peers = value.get(peers_field)
    raw_ports = value.get("ports")
    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()
    peers_text = ports_text = "null"
    if raw_peers is not None:
        if type(raw_peers) is not list:
            raise Slow
        peers, peers_text = _cached(_PEER_LISTS, raw_peers, _peers_and_text)
    if raw_ports is not None:
        if type(raw_ports) is not list:
            raise Slow
        ports, ports_text = _cached(_PORT_LISTS, raw_ports, _ports_and_text)
    if "ports" in value:
        if peers_field not in value:
            text = '{"ports":' + ports_text + "}"
        elif peers_field == "from":
            text = '{"from":' + peers_text + ',"ports":' + ports_text + "}"
        else:
            text = '{"ports":' + ports_text + ',"to":' + peers_text + "}"
    elif peers_field in value:
        text = '{"' + peers_field + '":' + peers_text + "}"
    else:
        text = "{}"
    rule = PolicyRule(peers, ports)
    _set(rule, "text", text)
    return rule


def _peers_and_text(value: list[Any]) -> tuple[tuple[Peer, ...], str]:
    found = [_cached(_PEERS, peer, _peer_and_text) for peer in value]
    return tuple([peer for peer, _ in found]), "[" + ",".join([text for _, text in found]) + "]"


def _ports_and_text(value: list[Any]) -> tuple[tuple[PolicyPort, ...], str]:
    found = [_cached(_PORTS, port, _port_and_text) for port in value]
    return tuple([port for port, _ in found]), "[" + ",".join([text for _, text in found]) + "]"


def _peer_and_text(value: Any) -> tuple[Peer, str]:
    return _fast_peer(value), encode(value)


def _port_and_text(value: Any) -> tuple[PolicyPort, str]:
    return _fast_port(value), encode(value)


def _fast_peer(value: Any) -> Peer:
    if type(value) is not dict or not value.keys() <= PEER_FIELDS:
        raise Slow
    block = value.get("ipBlock")
    pod = value.get("podSelector")
    ns = value.get("namespaceSelector")
    if block is not None:
        if pod is not None or ns is not None:
            raise Slow
        return Peer(None, None, _fast_ip_block(block))
    if pod is None:
        if ns is None:
            raise Slow
        return Peer(None, _fast_selector(ns))
    return Peer(_fast_selector(pod), None if ns is None else _fast_selector(ns))


def _fast_labels(value: Any) -> tuple[tuple[str, str], ...]:
    if type(value) is not dict:
        raise Slow
    for key, text in value.items():
        if (
            type(key) is not str
            or type(text) is not str
            or label_key_problem(key) is not None
            or not label_value_ok(text)
        ):
            raise Slow
    return tuple(sorted(value.items()))


def _fast_selector(value: Any) -> LabelSelector:
    if type(value) is not dict or not value.keys() <= SELECTOR_FIELDS:
        raise Slow
    labels = value.get("matchLabels")
    expressions = value.get("matchExpressions")
    match_labels = () if labels is None else _fast_labels(labels)
    if expressions is None:
        return LabelSelector(match_labels, ())
    if type(expressions) is not list:
        raise Slow
    requirements: list[Requirement] = []
    for expr in expressions:
        if type(expr) is not dict or not expr.keys() <= EXPRESSION_FIELDS:
            raise Slow
        key = expr.get("key")
        operator = expr.get("operator")
        values = expr.get("values")
        if values is None:
            values = []
        elif type(values) is not list:
            raise Slow
        if type(key) is not str or not key or label_key_problem(key) is not None:
            raise Slow
        for text in values:
            if type(text) is not str or not label_value_ok(text):
                raise Slow
        if type(operator) is not str:
            raise Slow
        if operator in _VALUE_OPERATORS:
            if not values:
                raise Slow
        elif operator not in _EXISTS_OPERATORS or values:
            raise Slow
        requirements.append(Requirement(key, operator, tuple(values)))  # type: ignore[arg-type]
    return LabelSelector(match_labels, tuple(requirements))


def _fast_ip_block(value: Any) -> IPBlock:
    if type(value) is not dict or not value.keys() <= IPBLOCK_FIELDS:
        raise Slow
    cidr = value.get("cidr")
    excepts = value.get("except")
    if type(cidr) is not str or not cidr or isinstance(parse_cidr(cidr), str):
        raise Slow
    if excepts is None:
        return IPBlock(cidr, ())
    if type(excepts) is not list:
        raise Slow
    for entry in excepts:
        if type(entry) is not str or not _except_ok(cidr, entry):
            raise Slow
    return IPBlock(cidr, tuple(excepts))


def _fast_port(value: Any) -> PolicyPort:
    if type(value) is not dict or not value.keys() <= PORT_FIELDS:
        raise Slow
    protocol = value.get("protocol")
    if protocol is None:
        protocol = "TCP"
    elif type(protocol) is not str or protocol not in PROTOCOLS:
        raise Slow
    number = value.get("port")
    end = value.get("endPort")
    if number is None:
        if end is not None:
            raise Slow
        return PolicyPort(protocol, None, None)
    if type(number) is int:
        if not 1 <= number <= 65535:
            raise Slow
        if end is None:
            return PolicyPort(protocol, number, None)
        if type(end) is not int or not number <= end <= 65535:
            raise Slow
        return PolicyPort(protocol, number, end)
    if type(number) is not str or end is not None or not _port_name_ok(number):
        raise Slow
    return PolicyPort(protocol, number, None)
