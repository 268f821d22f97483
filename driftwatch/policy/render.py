"""Turn canonical policies back into Kubernetes-shaped data and YAML.

The output is what the policy means with every default spelled out, in a fixed
field order, so that two renderings differ exactly where the policies do.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from driftwatch.policy.model import (
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyPort,
    PolicyRule,
)
from driftwatch.policy.parse import API_VERSION, KIND

__all__ = ["clear_cache", "to_manifest", "to_yaml", "yaml_lines"]


def _selector(sel: LabelSelector) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sel.match_labels:
        out["matchLabels"] = dict(sel.match_labels)
    if sel.match_expressions:
        out["matchExpressions"] = [
            {
                "key": r.key,
                "operator": r.operator,
                **({"values": list(r.values)} if r.values else {}),
            }
            for r in sel.match_expressions
        ]
    return out


def _peer(peer: Peer) -> dict[str, Any]:
    if peer.ip_block is not None:
        block: dict[str, Any] = {"cidr": peer.ip_block.cidr}
        if peer.ip_block.excepts:
            block["except"] = list(peer.ip_block.excepts)
        return {"ipBlock": block}
    out: dict[str, Any] = {}
    if peer.namespace_selector is not None:
        out["namespaceSelector"] = _selector(peer.namespace_selector)
    if peer.pod_selector is not None:
        out["podSelector"] = _selector(peer.pod_selector)
    return out


def _port(port: PolicyPort) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": port.protocol}
    if port.port is not None:
        out["port"] = port.port
    if port.end_port is not None:
        out["endPort"] = port.end_port
    return out


def _rule(rule: PolicyRule, peers_field: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.peers:
        out[peers_field] = [_peer(p) for p in rule.peers]
    if rule.ports:
        out["ports"] = [_port(p) for p in rule.ports]
    return out


def to_manifest(policy: NetworkPolicy) -> dict[str, Any]:
    """The policy as a Kubernetes object, defaults explicit, server fields absent."""
    meta: dict[str, Any] = {"name": policy.name, "namespace": policy.namespace}
    if policy.labels:
        meta["labels"] = dict(policy.labels)
    if policy.annotations:
        meta["annotations"] = dict(policy.annotations)
    spec: dict[str, Any] = {"podSelector": _selector(policy.spec.pod_selector)}
    if policy.spec.ingress:
        spec["ingress"] = [_rule(r, "from") for r in policy.spec.ingress]
    if policy.spec.egress:
        spec["egress"] = [_rule(r, "to") for r in policy.spec.egress]
    spec["policyTypes"] = list(policy.spec.policy_types)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec}


_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


@functools.lru_cache(maxsize=65536)
def _scalar(value: str) -> str:
    """``value`` as a YAML scalar that loads back as the same string (YAML 1.1 rules)."""
    if (
        _PLAIN.fullmatch(value)
        and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG  # type: ignore[no-untyped-call]
    ):
        return value
    if value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    return '"' + "".join(_escape(c) for c in value) + '"'


def _escape(char: str) -> str:
    """One character inside a YAML double-quoted scalar."""
    if char in ('"', "\\"):
        return "\\" + char
    if char.isprintable() and char.isascii():
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


# The emitter below writes the layout kubectl uses for ``to_manifest(policy)`` straight from
# the model, one line at a time: mappings indented two spaces, a list at its key's
# indentation ("indentless"), a mapping in a list starting on its dash line ("- key: ...").
# A function writing a mapping starts its first line with ``lead`` (the indentation, or the
# list's dash) and every other line with ``pad``. Each line ends in "\n" and holds no other
# line break (``_scalar`` escapes every character ``str.splitlines`` splits on), so the
# lines are those of ``to_yaml``'s text.
#
# Rules, peers and ports always sit at the same indentation, so each is rendered once and
# its lines reused: by rule text (a live policy shares most rules with its desired version),
# and by peer and port (parsing hands out one object for equal ones, so most lookups end at
# an identity check).


def _value(value: object) -> str:
    return _scalar(value) if isinstance(value, str) else f"{value}"


def _pairs(lead: str, pad: str, pairs: tuple[tuple[str, str], ...], out: list[str]) -> None:
    """A string-to-string mapping (non-empty), as ``dict(pairs)`` holds it."""
    for key, value in dict(pairs).items():
        out.append(f"{lead}{_scalar(key)}: {_value(value)}\n")
        lead = pad


def _selector_lines(lead: str, pad: str, sel: LabelSelector, out: list[str]) -> None:
    """A non-empty selector."""
    if sel.match_labels:
        out.append(f"{lead}matchLabels:\n")
        _pairs(pad + "  ", pad + "  ", sel.match_labels, out)
        lead = pad
    if sel.match_expressions:
        out.append(f"{lead}matchExpressions:\n")
        for r in sel.match_expressions:
            out.append(f"{pad}- key: {_value(r.key)}\n")
            out.append(f"{pad}  operator: {_value(r.operator)}\n")
            if r.values:
                out.append(f"{pad}  values:\n")
                out.extend(f"{pad}  - {_value(v)}\n" for v in r.values)


def _selector_field(lead: str, pad: str, name: str, sel: LabelSelector, out: list[str]) -> None:
    if sel.match_labels or sel.match_expressions:
        out.append(f"{lead}{name}:\n")
        _selector_lines(pad + "  ", pad + "  ", sel, out)
    else:
        out.append(f"{lead}{name}: {{}}\n")


def _peer_lines(peer: Peer) -> tuple[str, ...]:
    """One ``from``/``to`` entry, as an item of its rule's list."""
    lead, pad = "    - ", "      "
    block = peer.ip_block
    out: list[str] = []
    if block is not None:
        out.append(f"{lead}ipBlock:\n")
        out.append(f"{pad}  cidr: {_value(block.cidr)}\n")
        if block.excepts:
            out.append(f"{pad}  except:\n")
            out.extend(f"{pad}  - {_value(e)}\n" for e in block.excepts)
    elif peer.namespace_selector is None and peer.pod_selector is None:
        out.append(f"{lead}{{}}\n")
    else:
        if peer.namespace_selector is not None:
            _selector_field(lead, pad, "namespaceSelector", peer.namespace_selector, out)
            lead = pad
        if peer.pod_selector is not None:
            _selector_field(lead, pad, "podSelector", peer.pod_selector, out)
    return tuple(out)


def _port_lines(port: PolicyPort) -> tuple[str, ...]:
    """One ``ports`` entry, as an item of its rule's list."""
    out = [f"    - protocol: {_value(port.protocol)}\n"]
    if port.port is not None:
        out.append(f"      port: {_value(port.port)}\n")
    if port.end_port is not None:
        out.append(f"      endPort: {_value(port.end_port)}\n")
    return tuple(out)


def _rule_lines(rule: PolicyRule, peers_field: str) -> tuple[str, ...]:
    """One ingress or egress rule, as an item of its ``spec`` list."""
    if not rule.peers and not rule.ports:
        return ("  - {}\n",)
    out: list[str] = []
    lead = "  - "
    if rule.peers:
        out.append(f"{lead}{peers_field}:\n")
        lead = "    "
        peers = _PEERS
        for peer in rule.peers:
            out.extend(peers.get(peer) or _cached(peers, peer, _peer_lines))
    if rule.ports:
        out.append(f"{lead}ports:\n")
        ports = _PORTS
        for port in rule.ports:
            out.extend(ports.get(port) or _cached(ports, port, _port_lines))
    return tuple(out)


def _rules(
    rules: tuple[PolicyRule, ...],
    peers_field: str,
    cache: dict[str, tuple[str, ...]],
    out: list[str],
) -> None:
    for rule in rules:
        text = rule.text
        if text is None:  # built in code, not parsed
            out.extend(_rule_lines(rule, peers_field))
            continue
        lines = cache.get(text)
        if lines is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            lines = cache[text] = _rule_lines(rule, peers_field)
        out.extend(lines)


def _meta_pairs(pairs: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    out: list[str] = []
    _pairs("    ", "    ", pairs, out)
    return tuple(out)


def _pod_selector(sel: LabelSelector) -> tuple[str, ...]:
    out: list[str] = []
    _selector_field("  ", "  ", "podSelector", sel, out)
    return tuple(out)


def _policy_types(types: tuple[str, ...]) -> tuple[str, ...]:
    if not types:
        return ("  policyTypes: []\n",)
    return ("  policyTypes:\n", *(f"  - {_value(t)}\n" for t in types))


_CACHE_LIMIT = 65536
"""Entries per cache below; a full cache starts over (bounded memory)."""
_INGRESS: dict[str, tuple[str, ...]] = {}
"""Rendered ingress rules by rule text (equal texts are equal rules)."""
_EGRESS: dict[str, tuple[str, ...]] = {}
"""Rendered egress rules by rule text."""
_PEERS: dict[Peer, tuple[str, ...]] = {}
_PORTS: dict[PolicyPort, tuple[str, ...]] = {}
_META: dict[tuple[tuple[str, str], ...], tuple[str, ...]] = {}
"""Rendered ``labels`` or ``annotations`` entries (few distinct sets)."""
_POD_SELECTORS: dict[LabelSelector, tuple[str, ...]] = {}
"""Rendered ``spec.podSelector`` fields: the desired and live side of a drift most often
select the same pods."""
_POLICY_TYPES: dict[tuple[str, ...], tuple[str, ...]] = {}
_CACHES: tuple[dict[Any, tuple[str, ...]], ...] = (
    _INGRESS,
    _EGRESS,
    _PEERS,
    _PORTS,
    _META,
    _POD_SELECTORS,
    _POLICY_TYPES,
)

K = TypeVar("K")


def _cached(
    cache: dict[K, tuple[str, ...]], key: K, render: Callable[[K], tuple[str, ...]]
) -> tuple[str, ...]:
    """``cache[key]``, rendered on a miss."""
    lines = cache.get(key)
    if lines is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        lines = cache[key] = render(key)
    return lines


def clear_cache() -> None:
    """Forget every rendered part (benchmarks measuring cold work)."""
    for cache in _CACHES:
        cache.clear()


_HEAD = (f"apiVersion: {_scalar(API_VERSION)}\n", f"kind: {_scalar(KIND)}\n", "metadata:\n")


def yaml_lines(policy: NetworkPolicy) -> list[str]:
    """``to_yaml(policy).splitlines(keepends=True)``, without building the text."""
    out = [*_HEAD, f"  name: {_value(policy.name)}\n", f"  namespace: {_value(policy.namespace)}\n"]
    if policy.labels:
        out.append("  labels:\n")
        out.extend(_META.get(policy.labels) or _cached(_META, policy.labels, _meta_pairs))
    if policy.annotations:
        out.append("  annotations:\n")
        out.extend(_META.get(policy.annotations) or _cached(_META, policy.annotations, _meta_pairs))
    out.append("spec:\n")
    spec = policy.spec
    sel = spec.pod_selector
    out.extend(_POD_SELECTORS.get(sel) or _cached(_POD_SELECTORS, sel, _pod_selector))
    if spec.ingress:
        out.append("  ingress:\n")
        _rules(spec.ingress, "from", _INGRESS, out)
    if spec.egress:
        out.append("  egress:\n")
        _rules(spec.egress, "to", _EGRESS, out)
    types = spec.policy_types
    out.extend(_POLICY_TYPES.get(types) or _cached(_POLICY_TYPES, types, _policy_types))
    return out


def to_yaml(policy: NetworkPolicy) -> str:
    """Canonical YAML of the policy (stable field order, no server fields), as kubectl lays it out.

    A small emitter of its own: the manifest holds only mappings, lists, strings and
    integers, and PyYAML's general one costs milliseconds per policy on the diff path.
    """
    return "".join(yaml_lines(policy))
