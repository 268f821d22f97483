"""Hypothesis strategies for NetworkPolicy objects, and what the API server makes of them.

``network_policies()`` draws valid ``networking.k8s.io/v1`` NetworkPolicies as raw dicts,
the way people write them in YAML: defaults left out or spelled out, empty lists written as
``[]``, ``null`` or not at all, selectors with ``matchLabels`` and ``matchExpressions``,
IPv4 and IPv6 ``ipBlock`` peers with valid ``except`` entries, numbered and named ports.

``as_served()`` turns such a dict into the object ``kubectl get -o yaml`` would show after
``kubectl apply``: server metadata, the last-applied annotation, ``status: {}``, the API
defaults filled in and empty fields dropped. It is written independently of
``driftwatch.policy`` (it must not share its bugs) and never changes what the policy means.

``shuffle_keys()`` rebuilds a document with every mapping's keys in a random order.

Strategy factories are cached (``functools.cache``) and leaves are single text draws repaired
by a ``map``: generation cost is per draw, and policies are nested several levels deep.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import itertools
import json
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "LAST_APPLIED",
    "ServerMeta",
    "annotation_maps",
    "as_served",
    "cidrs",
    "dns_labels",
    "dns_subdomains",
    "ip_blocks",
    "label_keys",
    "label_maps",
    "label_selectors",
    "label_values",
    "network_policies",
    "peers",
    "policies_for_specs",
    "policy_ports",
    "port_names",
    "requirements",
    "rules",
    "server_metas",
    "shuffle_keys",
    "small_label_selectors",
    "small_peers",
    "small_rules",
    "small_world_policies",
]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_PROTOCOLS = ("TCP", "UDP", "SCTP")

# ---------------------------------------------------------------------------------------------
# Names


_LOWER_DIGITS = string.ascii_lowercase + string.digits
_ALNUM = string.ascii_letters + string.digits

# Each name is one text draw, repaired into shape by a map: far cheaper than from_regex.


def _trim(text: str, ends: str, fallback: str) -> str:
    """``text`` without leading/trailing characters outside ``ends`` (``fallback`` if empty)."""
    start, stop = 0, len(text)
    while start < stop and text[start] not in ends:
        start += 1
    while stop > start and text[stop - 1] not in ends:
        stop -= 1
    return text[start:stop] or fallback


def _dns_label(text: str) -> str:
    return _trim(text, _LOWER_DIGITS, "x")


@functools.cache
def dns_labels() -> st.SearchStrategy[str]:
    """RFC 1123 labels (namespace names, name segments): ``[a-z0-9]``, inner ``-``."""
    return st.text(_LOWER_DIGITS + "-", min_size=1, max_size=12).map(_dns_label)


@functools.cache
def dns_subdomains() -> st.SearchStrategy[str]:
    """RFC 1123 subdomains (object names, label-key prefixes): dot-separated labels."""
    return st.text(_LOWER_DIGITS + "-.", min_size=1, max_size=24).map(
        lambda text: ".".join(_dns_label(part) for part in text.split("."))
    )


def _label_name(text: str, fallback: str = "x") -> str:
    """``[A-Za-z0-9]`` at both ends, ``-``, ``_`` or ``.`` allowed inside."""
    return _trim(text, _ALNUM, fallback)


def _qualified_name(text: str) -> str:
    """``name`` or ``prefix/name`` (prefix a DNS subdomain), cut from one drawn text."""
    head, slash, tail = text.partition("/")
    if not slash:
        return _label_name(head)
    prefix = ".".join(_dns_label(part) for part in head.lower().replace("_", "-").split("."))
    return f"{prefix}/{_label_name(tail.replace('/', ''))}"


@functools.cache
def label_keys() -> st.SearchStrategy[str]:
    """Qualified names: ``name`` or ``prefix/name``."""
    return st.text(_ALNUM + "-_./", min_size=1, max_size=24).map(_qualified_name)


# Values YAML 1.1 would read as something other than a string unless quoted.
_TRICKY_VALUES = ("true", "no", "on", "null", "Null", "1", "0.5", "1e3", "0x1f", "0o17", "")


def _label_value(text: str) -> str:
    """A label value cut from ``text``; one starting with ``.`` picks a tricky value instead.

    (One text draw per value instead of a ``one_of``: generation cost is per draw.)
    """
    if text.startswith("."):
        return _TRICKY_VALUES[len(text) % len(_TRICKY_VALUES)]
    return _label_name(text, fallback="")


@functools.cache
def label_values() -> st.SearchStrategy[str]:
    """Label values, including the empty one and ones YAML would misread unquoted."""
    return st.text(_ALNUM + "-_.", max_size=12).map(_label_value)


@functools.cache
def label_maps(max_size: int = 2) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(label_keys(), label_values(), max_size=max_size)


@functools.cache
def annotation_maps(max_size: int = 2) -> st.SearchStrategy[dict[str, str]]:
    """Annotations hold arbitrary text (JSON, multi-line notes, non-ASCII)."""
    values = st.one_of(
        st.text(max_size=30),
        st.sampled_from(
            [
                "",
                "yes",
                "1",
                "a: b",
                "- x",
                "#note",
                '{"k": [1, 2]}',
                "line1\nline2\n",
                "next\x85line",
            ]
        ),
    )
    keys = label_keys().filter(lambda k: k != LAST_APPLIED)
    return st.dictionaries(keys, values, max_size=max_size)


@functools.cache
def port_names() -> st.SearchStrategy[str]:
    """IANA service names: 1-15 of ``[a-z0-9-]``, a letter, no leading/trailing/double hyphen."""

    def repair(text: str) -> str:
        while "--" in text:
            text = text.replace("--", "-")
        name = _trim(text, _LOWER_DIGITS, "p")
        return name if any(c.isalpha() for c in name) else "p" + name[1:]

    return st.text(_LOWER_DIGITS + "-", min_size=1, max_size=15).map(repair)


# ---------------------------------------------------------------------------------------------
# Building blocks of a user-written document

_ABSENT: Any = object()


def _fresh(value: Any) -> Any:
    """A new copy of a drawn container, so that no two examples share (and mutate) one."""
    return value if value is _ABSENT else copy.deepcopy(value)


@functools.cache
def _empty_list() -> st.SearchStrategy[Any]:
    """The three ways to write "no entries": leave the field out, ``[]`` or ``null``."""
    return st.sampled_from([_ABSENT, [], None]).map(_fresh)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not _ABSENT:
        out[key] = value


@functools.cache
def _lists(items: st.SearchStrategy[Any], max_size: int) -> st.SearchStrategy[list[Any]]:
    return st.lists(items, max_size=max_size)


def _list_field(
    draw: Callable[[st.SearchStrategy[Any]], Any],
    items: st.SearchStrategy[Any],
    *,
    max_size: int = 2,
) -> Any:
    """A list of ``items``; when it comes out empty, any of the spellings of empty."""
    value = draw(_lists(items, max_size))
    return value if value else draw(_empty_list())


_VALUE_LISTS = st.lists(label_values(), min_size=1, max_size=2)
_OPERATORS = st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"])
_EMPTY_SELECTOR = st.sampled_from([_ABSENT, {}, None]).map(_fresh)
_PORT_KINDS = st.sampled_from(["none", "number", "range", "name"])
_PROTOCOL_FIELD = st.sampled_from([_ABSENT, None, *_PROTOCOLS])
_PEER_SHAPES = st.sampled_from(["pod", "namespace", "both"])
_TYPE_SETS = st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
_IP_VERSIONS = st.sampled_from([4, 6])


@functools.cache
@st.composite
def requirements(draw: st.DrawFn) -> dict[str, Any]:
    """One ``matchExpressions`` entry."""
    key = draw(label_keys())
    operator = draw(_OPERATORS)
    out: dict[str, Any] = {"key": key, "operator": operator}
    if operator in ("In", "NotIn"):
        out["values"] = draw(_VALUE_LISTS)
    else:
        _put(out, "values", draw(_empty_list()))
    return out


@functools.cache
@st.composite
def label_selectors(
    draw: st.DrawFn, max_labels: int = 2, max_expressions: int = 2
) -> dict[str, Any]:
    """A label selector; ``{}`` (select everything) is one of the outcomes."""
    out: dict[str, Any] = {}
    labels = draw(label_maps(max_labels))
    _put(out, "matchLabels", labels if labels else draw(_EMPTY_SELECTOR))
    _put(out, "matchExpressions", _list_field(draw, requirements(), max_size=max_expressions))
    return out


@functools.cache
def _networks(version: int) -> st.SearchStrategy[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Canonical networks (no host bits), of any prefix length."""
    network = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    bits = 32 if version == 4 else 128
    return st.builds(
        lambda address, prefix: network((address, prefix), strict=False),
        st.integers(0, 2**bits - 1),
        st.integers(0, bits),
    )


@functools.cache
@st.composite
def ip_blocks(draw: st.DrawFn) -> dict[str, Any]:
    """``ipBlock`` with an IPv4 or IPv6 ``cidr`` and ``except`` entries strictly inside it."""
    version = draw(_IP_VERSIONS)
    cidr = draw(_networks(version))
    out: dict[str, Any] = {"cidr": str(cidr)}
    excepts: list[str] = []
    if cidr.prefixlen < cidr.max_prefixlen:
        for _ in range(draw(st.integers(0, 2))):
            prefix = draw(st.integers(cidr.prefixlen + 1, cidr.max_prefixlen))
            offset = draw(st.integers(0, cidr.num_addresses - 1))
            sub = ipaddress.ip_network((cidr.network_address + offset, prefix), strict=False)
            excepts.append(str(sub))
    _put(out, "except", excepts if excepts else draw(_empty_list()))
    return out


@functools.cache
@st.composite
def cidrs(draw: st.DrawFn, *, splittable: bool = False) -> str:
    """A canonical IPv4 or IPv6 CIDR; ``splittable``: shorter than a single address."""
    version = draw(_IP_VERSIONS)
    bits = 32 if version == 4 else 128
    network = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    address = draw(st.integers(0, 2**bits - 1))
    prefix = draw(st.integers(0, bits - 1 if splittable else bits))
    return str(network((address, prefix), strict=False))


SMALL_KEYS = ("a", "b")
SMALL_VALUES = ("x", "y", "z")
NAME_LABEL = "kubernetes.io/metadata.name"
SMALL_NAMESPACES = ("shop", "other")


def _small_requirement_list(keys: tuple[str, ...], values: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every ``matchExpressions`` entry over ``keys`` and non-empty subsets of ``values``."""
    subsets = [
        list(c) for n in range(1, len(values) + 1) for c in itertools.combinations(values, n)
    ]
    out: list[dict[str, Any]] = []
    for key in keys:
        out += [
            {"key": key, "operator": op, "values": v} for op in ("In", "NotIn") for v in subsets
        ]
        out += [{"key": key, "operator": op} for op in ("Exists", "DoesNotExist")]
    return out


@functools.cache
def small_label_selectors(
    keys: tuple[str, ...] = SMALL_KEYS, values: tuple[str, ...] = SMALL_VALUES
) -> st.SearchStrategy[dict[str, Any]]:
    """Selectors over a few keys (``a``, ``b``) and values (``x``, ``y``, ``z``).

    Small enough that every label state that matters can be enumerated (each key absent, one
    of the values, or one more value), so what a selector selects can be worked out by brute
    force; dense enough that two draws often overlap, contain or contradict each other.
    (Three draws a selector, from precomputed pieces: cheap to generate.)
    """
    labels = st.sampled_from([{}] + [{k: v} for k in keys for v in values])
    expressions = st.lists(st.sampled_from(_small_requirement_list(keys, values)), max_size=2)

    def build(parts: tuple[dict[str, str], list[dict[str, Any]]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if parts[0]:
            out["matchLabels"] = dict(parts[0])
        if parts[1]:
            out["matchExpressions"] = copy.deepcopy(parts[1])
        return out

    return st.tuples(labels, expressions).map(build)


_SMALL_CIDRS = (
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.0.0.0/9",
    "10.128.0.0/9",
    "192.168.0.0/16",
    "::/0",
    "fc00::/7",
    "2001:db8::/32",
)


@functools.cache
@st.composite
def _small_ip_blocks(draw: st.DrawFn) -> dict[str, Any]:
    cidr = ipaddress.ip_network(draw(st.sampled_from(_SMALL_CIDRS)))
    out: dict[str, Any] = {"cidr": str(cidr)}
    halves: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = list(cidr.subnets())
    # Each half, and the first piece of each half 7 bits longer.
    candidates = [
        str(piece) for half in halves for piece in (half, next(half.subnets(prefixlen_diff=7)))
    ]
    excepts = draw(st.lists(st.sampled_from(candidates), max_size=2, unique=True))
    if excepts:
        out["except"] = excepts
    return out


@functools.cache
@st.composite
def small_peers(draw: st.DrawFn) -> dict[str, Any]:
    """A ``from``/``to`` entry of :func:`small_world_policies`."""
    kind = draw(st.sampled_from(["pod", "namespace", "both", "ip"]))
    if kind == "ip":
        return {"ipBlock": draw(_small_ip_blocks())}
    out: dict[str, Any] = {}
    if kind in ("pod", "both"):
        out["podSelector"] = draw(small_label_selectors())
    if kind in ("namespace", "both"):
        out["namespaceSelector"] = draw(
            small_label_selectors(("a", NAME_LABEL), ("x", *SMALL_NAMESPACES))
        )
    return out


_SMALL_PORTS = st.sampled_from(
    [
        {"port": 80},
        {"port": 443},
        {"port": 80, "endPort": 443},
        {"port": 53, "protocol": "UDP"},
        {"protocol": "UDP"},
        {"port": "http"},
        {"port": "dns", "protocol": "UDP"},
        {"protocol": "SCTP", "port": 7},
    ]
)


@functools.cache
@st.composite
def small_rules(draw: st.DrawFn, peers_field: str) -> dict[str, Any]:
    """A rule of :func:`small_world_policies` (``peers_field``: ``from`` or ``to``)."""
    out: dict[str, Any] = {}
    rule_peers = draw(st.lists(small_peers(), max_size=2))
    if rule_peers:
        out[peers_field] = rule_peers
    rule_ports = draw(st.lists(_SMALL_PORTS, max_size=2).map(_fresh))
    if rule_ports:
        out["ports"] = rule_ports
    return out


@functools.cache
@st.composite
def small_world_policies(draw: st.DrawFn) -> dict[str, Any]:
    """Policies in namespace ``shop`` whose selectors all come from a small world.

    Pod selectors use keys ``a``, ``b`` and values ``x``, ``y``, ``z``; namespace selectors
    key ``a`` and the name label (values ``x``, ``shop``, ``other``); ipBlocks a few CIDRs,
    their halves and small pieces; ports a few numbers, a range and names. Two draws often
    overlap, and what a policy allows to any pod of that world can be enumerated.
    """
    spec: dict[str, Any] = {
        "podSelector": draw(small_label_selectors()),
        "policyTypes": draw(_TYPE_SETS),
    }
    ingress = draw(st.lists(small_rules("from"), max_size=2))
    if ingress:
        spec["ingress"] = ingress
    egress = draw(st.lists(small_rules("to"), max_size=2))
    if egress:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "small", "namespace": "shop"},
        "spec": spec,
    }


@functools.cache
@st.composite
def peers(draw: st.DrawFn) -> dict[str, Any]:
    """A ``from``/``to`` entry: an ipBlock, or a pod and/or namespace selector.

    Peer selectors are kept small (one label, one expression): most of the cost of
    generating a policy is here, and the policy's own podSelector gets the bigger ones.
    """
    if draw(st.booleans()):
        return {"ipBlock": draw(ip_blocks())}
    which = draw(_PEER_SHAPES)
    out: dict[str, Any] = {}
    if which in ("pod", "both"):
        out["podSelector"] = draw(label_selectors(1, 1))
    elif draw(st.booleans()):
        out["podSelector"] = None  # written out as null: the same as leaving it out
    if which in ("namespace", "both"):
        out["namespaceSelector"] = draw(label_selectors(1, 1))
    return out


@functools.cache
@st.composite
def policy_ports(draw: st.DrawFn) -> dict[str, Any]:
    """A ``ports`` entry: protocol often left to its default, port a number, a name or absent."""
    out: dict[str, Any] = {}
    _put(out, "protocol", draw(_PROTOCOL_FIELD))
    kind = draw(_PORT_KINDS)
    if kind == "number":
        out["port"] = draw(st.integers(1, 65535))
    elif kind == "range":
        start = draw(st.integers(1, 65535))
        out["port"] = start
        out["endPort"] = draw(st.integers(start, 65535))
    elif kind == "name":
        out["port"] = draw(port_names())
    return out


@functools.cache
@st.composite
def rules(draw: st.DrawFn, peers_field: str) -> dict[str, Any]:
    """An ingress (``peers_field="from"``) or egress (``"to"``) rule."""
    out: dict[str, Any] = {}
    _put(out, peers_field, _list_field(draw, peers(), max_size=2))
    _put(out, "ports", _list_field(draw, policy_ports(), max_size=2))
    return out


@functools.cache
@st.composite
def _policy_types(draw: st.DrawFn) -> Any:
    """Absent, empty, or an explicit non-empty set of types in any order."""
    if draw(st.booleans()):
        return draw(_empty_list())
    chosen = draw(_TYPE_SETS)
    return draw(st.permutations(chosen))


_POD_SELECTOR_FIELD = st.one_of(st.sampled_from([_ABSENT, None, {}]).map(_fresh), label_selectors())


@functools.cache
@st.composite
def network_policies(draw: st.DrawFn, *, namespaced: bool | None = None) -> dict[str, Any]:
    """A valid NetworkPolicy as written in Git.

    ``namespaced``: ``True`` always sets ``metadata.namespace``, ``False`` never does,
    ``None`` (default) sometimes does.
    """
    metadata: dict[str, Any] = {"name": draw(dns_subdomains())}
    if namespaced is None:
        namespaced = draw(st.booleans())
    if namespaced:
        metadata["namespace"] = draw(dns_labels())
    labels = draw(label_maps())
    if labels:
        metadata["labels"] = labels
    annotations = draw(annotation_maps())
    if annotations:
        metadata["annotations"] = annotations

    spec: dict[str, Any] = {}
    pod_selector = draw(_POD_SELECTOR_FIELD)
    _put(spec, "podSelector", pod_selector)
    _put(spec, "ingress", _list_field(draw, rules("from"), max_size=2))
    _put(spec, "egress", _list_field(draw, rules("to"), max_size=2))
    _put(spec, "policyTypes", draw(_policy_types()))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": spec,
    }


@functools.cache
@st.composite
def policies_for_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid NetworkPolicy like :func:`network_policies`, with only a name and a namespace
    for metadata: for tests of what the spec means, where labels and annotations are noise
    (and half the generation cost)."""
    spec: dict[str, Any] = {}
    _put(spec, "podSelector", draw(_POD_SELECTOR_FIELD))
    _put(spec, "ingress", _list_field(draw, rules("from"), max_size=2))
    _put(spec, "egress", _list_field(draw, rules("to"), max_size=2))
    _put(spec, "policyTypes", draw(_policy_types()))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "policy", "namespace": draw(dns_labels())},
        "spec": spec,
    }


# ---------------------------------------------------------------------------------------------
# What the API server returns


@dataclass(frozen=True)
class ServerMeta:
    """The server-populated metadata of one live object."""

    uid: str = "0b6a0e4c-6d3e-4c8e-9a43-2f1d8f0c7e55"
    resource_version: str = "4821337"
    generation: int = 2
    created: str = "2026-11-20T09:14:02Z"
    edited: str = "2026-11-27T12:03:22Z"


_EPOCH_2020 = 1_577_836_800
_TEN_YEARS = 10 * 365 * 24 * 3600


def _timestamp(seconds: int) -> str:
    """RFC 3339 UTC, as in ``managedFields[].time`` and ``creationTimestamp``."""
    return datetime.fromtimestamp(_EPOCH_2020 + seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.cache
def server_metas() -> st.SearchStrategy[ServerMeta]:
    """Random server metadata; the edit never predates the creation."""
    return st.builds(
        lambda uid, rv, generation, created, later: ServerMeta(
            uid=str(uuid.UUID(int=uid)),
            resource_version=str(rv),
            generation=generation,
            created=_timestamp(created),
            edited=_timestamp(created + later),
        ),
        st.integers(0, 2**128 - 1),
        st.integers(1, 10**9),
        st.integers(1, 50),
        st.integers(0, _TEN_YEARS),
        st.integers(0, _TEN_YEARS),
    )


def _served_selector(sel: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sel is None:
        return out
    if sel.get("matchLabels"):
        out["matchLabels"] = dict(sorted(sel["matchLabels"].items()))
    exprs = []
    for expr in sel.get("matchExpressions") or []:
        served = {"key": expr["key"], "operator": expr["operator"]}
        if expr.get("values"):
            served["values"] = list(expr["values"])
        exprs.append(served)
    if exprs:
        out["matchExpressions"] = exprs
    return out


def _served_peer(peer: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if peer.get("ipBlock") is not None:
        block = peer["ipBlock"]
        out["ipBlock"] = {"cidr": block["cidr"]}
        if block.get("except"):
            out["ipBlock"]["except"] = list(block["except"])
    for field in ("namespaceSelector", "podSelector"):
        if peer.get(field) is not None:
            out[field] = _served_selector(peer[field])
    return out


def _served_port(port: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if port.get("endPort") is not None:
        out["endPort"] = port["endPort"]
    if port.get("port") is not None:
        out["port"] = port["port"]
    out["protocol"] = port.get("protocol") or "TCP"
    return out


def _served_rule(rule: dict[str, Any], peers_field: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.get(peers_field):
        out[peers_field] = [_served_peer(p) for p in rule[peers_field]]
    if rule.get("ports"):
        out["ports"] = [_served_port(p) for p in rule["ports"]]
    return out


def as_served(
    obj: dict[str, Any],
    *,
    default_namespace: str = "default",
    meta: ServerMeta = ServerMeta(),
) -> dict[str, Any]:
    """``obj`` as the API server returns it after ``kubectl apply`` and a later ``kubectl edit``.

    Adds uid, resourceVersion, generation, creationTimestamp, managedFields (client-side
    apply, then an edit), selfLink and the last-applied annotation; fills in the namespace,
    ``podSelector: {}``, ``policyTypes`` and ``protocol: TCP``; drops empty fields the way Go's
    ``omitempty`` does; adds ``status: {}``. Keys come out sorted, like ``kubectl -o yaml``.
    """
    src = copy.deepcopy(obj)
    src_meta = src.get("metadata") or {}
    src_spec = src.get("spec") or {}
    name = src_meta["name"]
    namespace = src_meta.get("namespace") or default_namespace

    applied = json.dumps(src, separators=(",", ":"), sort_keys=True, ensure_ascii=False) + "\n"
    annotations = {**(src_meta.get("annotations") or {}), LAST_APPLIED: applied}
    metadata: dict[str, Any] = {
        "annotations": dict(sorted(annotations.items())),
        "creationTimestamp": meta.created,
        "generation": meta.generation,
    }
    if src_meta.get("labels"):
        metadata["labels"] = dict(sorted(src_meta["labels"].items()))
    metadata["managedFields"] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, f"f:{LAST_APPLIED}": {}}}},
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "time": meta.created,
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:policyTypes": {}}},
            "manager": "kubectl-edit",
            "operation": "Update",
            "time": meta.edited,
        },
    ]
    metadata["name"] = name
    metadata["namespace"] = namespace
    metadata["resourceVersion"] = meta.resource_version
    metadata["selfLink"] = (
        f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}"
    )
    metadata["uid"] = meta.uid

    ingress = [_served_rule(r, "from") for r in src_spec.get("ingress") or []]
    egress = [_served_rule(r, "to") for r in src_spec.get("egress") or []]
    policy_types = list(src_spec.get("policyTypes") or [])
    if not policy_types:  # SetDefaults_NetworkPolicySpec
        policy_types = ["Ingress", "Egress"] if egress else ["Ingress"]
    spec: dict[str, Any] = {}
    if egress:
        spec["egress"] = egress
    if ingress:
        spec["ingress"] = ingress
    spec["podSelector"] = _served_selector(src_spec.get("podSelector"))
    spec["policyTypes"] = policy_types
    served = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": spec,
        "status": {},
    }
    result: dict[str, Any] = _sort_keys(served)
    return result


def _sort_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _sort_keys(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [_sort_keys(v) for v in obj]
    return obj


def shuffle_keys(obj: Any, rnd: random.Random) -> Any:
    """``obj`` with every mapping's keys in a random order (lists keep theirs)."""
    if isinstance(obj, dict):
        items = list(obj.items())
        rnd.shuffle(items)
        return {k: shuffle_keys(v, rnd) for k, v in items}
    if isinstance(obj, list):
        return [shuffle_keys(v, rnd) for v in obj]
    return obj
