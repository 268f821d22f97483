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


def _pod_flows(view: PolicyView, direction: str) -> list[Flow]:
    """One flow per pod peer that a broader peer does not already cover, with every port
    the peer may use (its own and those of the broader peers that contain it).

    Only what a peer adds beyond broader ones would read, alone, as "pods app=x on all ports
    except TCP 80" when those pods may use 80 too; and a peer with nothing of its own is
    only noise. Peers that contain each other (equal sets written differently) are one.
    """
    entries = sorted(view.direction(direction).pods, key=lambda item: repr(item[0]))
    flows = []
    for i, (peer, ports) in enumerate(entries):
        wider = PortSet()
        for j, (other, other_ports) in enumerate(entries):
            if i != j and other.contains(peer) and (j < i or not peer.contains(other)):
                wider = wider | other_ports
        if ports - wider:
            flows.append(Flow(direction, view, ports | wider, pods=peer))
    return flows


def flows_of(view: PolicyView, direction: str) -> list[Flow]:
    """The allowances of one direction as flows (pod peers first, then address ranges).

    Each flow carries every port its peer may use, as each address range does (see
    :func:`_pod_flows`); explaining one policy is not on a hot path, so the peer-by-peer
    comparison is done here whether or not the model already dropped subsumed peers.
    """
    d = view.direction(direction)
    flows = _pod_flows(view, direction)
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
