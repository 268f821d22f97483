"""Turn canonical policies back into Kubernetes-shaped data and YAML.

The output is what the policy means with every default spelled out, in a fixed
field order, so that two renderings differ exactly where the policies do.
"""

from __future__ import annotations

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

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's emitter when built with it


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


class _Dumper(_DUMPER):  # type: ignore[misc,valid-type]  # CSafeDumper is untyped
    """``SafeDumper`` whose output loads back to the same strings."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # PyYAML counts NEL (U+0085) as a line break and, with allow_unicode, writes it raw into
    # plain, quoted or block scalars, where loading folds it into a space. Double quotes
    # escape it (as "\N").
    if "\x85" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    return dumper.represent_str(data)


_Dumper.add_representer(str, _represent_str)


def to_yaml(policy: NetworkPolicy) -> str:
    """Canonical YAML of the policy (stable field order, no server fields)."""
    return yaml.dump(
        to_manifest(policy),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )
