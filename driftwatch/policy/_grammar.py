"""What a valid NetworkPolicy looks like: field sets, name and label grammars, CIDRs, the
canonical text of a rule, and where a served object came from. Shared by both parsing paths
(:mod:`driftwatch.policy.parse` and :mod:`driftwatch.policy._fast_parse`)."""

from __future__ import annotations

import functools
import ipaddress
import json
import json.encoder
import re
from collections.abc import Callable, Mapping
from typing import Any

from driftwatch.policy.model import LiveOrigin

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})

SPEC_FIELDS = frozenset({"podSelector", "policyTypes", "ingress", "egress"})
PEER_FIELDS = frozenset({"podSelector", "namespaceSelector", "ipBlock"})
PORT_FIELDS = frozenset({"protocol", "port", "endPort"})
SELECTOR_FIELDS = frozenset({"matchLabels", "matchExpressions"})
EXPRESSION_FIELDS = frozenset({"key", "operator", "values"})
IPBLOCK_FIELDS = frozenset({"cidr", "except"})
TOP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
META_FIELDS = frozenset(
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

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


@functools.lru_cache(maxsize=8192)
def label_key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return f"label key {key!r} has an invalid prefix"
    if len(name) > 63 or not LABEL_NAME.fullmatch(name):
        return f"label key {key!r} is not a valid label name"
    return None


@functools.lru_cache(maxsize=8192)
def label_value_ok(value: str) -> bool:
    return len(value) <= 63 and LABEL_VALUE.fullmatch(value) is not None


def rule_text(rule: Mapping[str, Any]) -> str | None:
    """The rule as written, as canonical JSON (C-fast): equal texts are equal rules, so the
    connectivity model can reuse its work on a rule it has seen (see PolicyRule.text).

    ``json.dumps(rule, sort_keys=True, separators=(",", ":"))``, without building an
    encoder per call. Only called on validated rules (finite trees of plain values), so
    the missing circular-reference check can only turn an error into a RecursionError."""
    try:
        return encode(rule)
    except (TypeError, ValueError, RecursionError):
        return None


def _make_encoder() -> Callable[[Any], str]:
    make: Callable[..., Callable[[Any, int], list[str]]] | None = getattr(
        json.encoder, "c_make_encoder", None
    )
    if make is None:  # pragma: no cover - CPython always has the C encoder
        encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
        return encoder.encode
    # The arguments json.JSONEncoder.iterencode passes, as json.dumps sets them up.
    chunks = make(
        None,  # markers: no circular check (a shared dict would keep stale ids on errors)
        None,  # default: never called on validated rules; TypeError otherwise
        json.encoder.encode_basestring_ascii,  # ensure_ascii=True
        None,  # indent
        ":",  # key separator
        ",",  # item separator
        True,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )
    join = "".join
    return lambda value: join(chunks(value, 0))


encode = _make_encoder()


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8192)
def parse_cidr(value: str) -> Network | str:
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
