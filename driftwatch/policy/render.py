"""Turn canonical policies back into Kubernetes-shaped data and YAML.

The output is what the policy means with every default spelled out, in a fixed
field order, so that two renderings differ exactly where the policies do.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml

from driftwatch.policy.model import (
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyPort,
    PolicyRule,
)
from driftwatch.policy.parse import API_VERSION, KIND

__all__ = ["to_manifest", "to_yaml"]


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


@functools.lru_cache(maxsize=16384)
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


def _emit_map(data: dict[str, Any], pad: str, out: list[str]) -> None:
    for key, value in data.items():
        head = f"{pad}{_scalar(key)}:"
        if isinstance(value, dict):
            if value:
                out.append(head)
                _emit_map(value, pad + "  ", out)
            else:
                out.append(head + " {}")
        elif isinstance(value, list):
            if value:
                out.append(head)
                _emit_list(value, pad, out)
            else:
                out.append(head + " []")
        elif isinstance(value, str):
            out.append(f"{head} {_scalar(value)}")
        else:
            out.append(f"{head} {value}")


def _emit_list(items: list[Any], pad: str, out: list[str]) -> None:
    # kubectl's style: a list sits at its key's indentation ("indentless").
    for item in items:
        if isinstance(item, dict) and item:
            first = len(out)
            _emit_map(item, pad + "  ", out)
            out[first] = f"{pad}- {out[first][len(pad) + 2 :]}"
        elif isinstance(item, dict):
            out.append(f"{pad}- {{}}")
        elif isinstance(item, str):
            out.append(f"{pad}- {_scalar(item)}")
        else:
            out.append(f"{pad}- {item}")


def to_yaml(policy: NetworkPolicy) -> str:
    """Canonical YAML of the policy (stable field order, no server fields), as kubectl lays it out.

    A small emitter of its own: the manifest holds only mappings, lists, strings and
    integers, and PyYAML's general one costs milliseconds per policy on the diff path.
    """
    out: list[str] = []
    _emit_map(to_manifest(policy), "", out)
    return "\n".join(out) + "\n"
