"""What one policy allows and isolates, in plain English (the alerts use the same words)."""

from __future__ import annotations

from typing import Any

from driftwatch.policy import NetworkPolicy
from driftwatch.semantic import selectors as sel
from driftwatch.semantic.changes import Flow
from driftwatch.semantic.ipspace import ALL_IPS, covered_ports
from driftwatch.semantic.model import EGRESS, EVERY_POD, INGRESS, PolicyView, view_of
from driftwatch.semantic.ports import PortSet

__all__ = ["explain", "explain_json", "flows_of"]


def flows_of(view: PolicyView, direction: str) -> list[Flow]:
    """The allowances of one direction as flows (pod peers first, then address ranges)."""
    d = view.direction(direction)
    flows = [
        Flow(direction, view, ports, pods=peer)
        for peer, ports in sorted(d.pods, key=lambda item: repr(item[0]))
    ]
    by_ports: dict[PortSet, list[tuple[int, int]]] = {}
    for lo, hi, ports in d.ips:
        by_ports.setdefault(ports, []).append((lo, hi))
    flows += [Flow(direction, view, p, addresses=tuple(r)) for p, r in by_ports.items()]
    return flows


def _anywhere(view: PolicyView, direction: str) -> PortSet:
    """Ports open to everything: every pod in every namespace and every address."""
    d = view.direction(direction)
    pods = next((p for peer, p in d.pods if peer == EVERY_POD), PortSet())
    return pods & covered_ports(d.ips, ALL_IPS)


def _state(view: PolicyView, direction: str) -> str:
    d = view.direction(direction)
    if not d.isolated:
        return "not isolated"
    return "deny all" if d.deny_all else "allow listed"


def explain(policy: NetworkPolicy) -> str:
    view = view_of(policy)
    lines = [f"{policy.namespace}/{policy.name} applies to {view.describe_target()}."]
    for direction in (INGRESS, EGRESS):
        d = view.direction(direction)
        prep = "from" if direction == INGRESS else "to"
        if not d.isolated:
            note = (
                f" (its {d.rules} {direction} rule(s) are ignored: policyTypes lacks "
                f"{direction.capitalize()})"
                if d.rules
                else ""
            )
            lines.append(f"  {direction}: not restricted by this policy{note}.")
            continue
        if d.deny_all:
            lines.append(f"  {direction}: isolated; nothing is allowed (deny all).")
            continue
        lines.append(f"  {direction}: isolated; allowed only {prep}:")
        anywhere = _anywhere(view, direction)
        if anywhere:
            lines.append(
                f"    - anywhere (every pod in every namespace and every address) "
                f"on {anywhere.describe()}"
            )
        for flow in flows_of(view, direction):
            if not anywhere.covers(flow.ports):
                lines.append(f"    - {flow.peer_text()} on {flow.ports.describe()}")
    return "\n".join(lines)


def explain_json(policy: NetworkPolicy) -> dict[str, Any]:
    view = view_of(policy)
    out: dict[str, Any] = {
        "namespace": policy.namespace,
        "name": policy.name,
        "selects": sel.describe(view.target) if view.target is not None else None,
        "text": explain(policy),
    }
    for direction in (INGRESS, EGRESS):
        d = view.direction(direction)
        out[direction] = {
            "state": _state(view, direction),
            "ignored_rules": 0 if d.isolated else d.rules,
            "anywhere": _anywhere(view, direction).to_json() if d.isolated else [],
            "allows": [f.to_json() for f in flows_of(view, direction)],
        }
    return out
