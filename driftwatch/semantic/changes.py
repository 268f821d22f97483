"""The semantic change set between a desired and a live policy: flows gained and lost.

An absent side counts as "no policy": it isolates nothing and allows nothing. A
flow is (direction, the policy's selected pods, a peer, ports), one English line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftwatch.semantic import intervals as iv
from driftwatch.semantic import selectors as sel
from driftwatch.semantic.ipspace import IPMap, describe, subtract_maps, to_cidrs
from driftwatch.semantic.model import EGRESS, INGRESS, DirectionView, PodPeer, PolicyView
from driftwatch.semantic.ports import PortSet

__all__ = ["ChangeSet", "Flow", "changes"]


@dataclass(frozen=True, slots=True)
class Flow:
    """Traffic between the policy's pods and one peer on some ports."""

    direction: str
    view: PolicyView
    ports: PortSet
    pods: PodPeer | None = None
    addresses: iv.Intervals = ()

    def peer_text(self) -> str:
        if self.pods is not None:
            return self.pods.describe(self.view.namespace)
        return describe(self.addresses)

    def describe(self, verb: str) -> str:
        """``ingress to pods app=db in prod from 0.0.0.0/0 on TCP 5432 is now allowed``, or
        ``egress from pods app=db in prod to 10.0.0.0/8 on UDP 53 is now allowed``."""
        on = f"on {self.ports.describe()}"
        target = self.view.describe_target()
        if self.direction == INGRESS:
            return f"ingress to {target} from {self.peer_text()} {on} {verb}"
        return f"egress from {target} to {self.peer_text()} {on} {verb}"

    def to_json(self) -> dict[str, Any]:
        peer: dict[str, Any]
        if self.pods is not None:
            peer = {
                "namespaces": sel.describe(self.pods.namespaces) or "*",
                "pods": sel.describe(self.pods.pods) or "*",
            }
        else:
            peer = {"cidrs": to_cidrs(self.addresses)}
        return {
            "direction": self.direction,
            "selected_pods": self.view.describe_target(),
            "peer": peer,
            "ports": self.ports.to_json(),
        }


@dataclass(frozen=True, slots=True)
class ChangeSet:
    desired: PolicyView | None
    live: PolicyView | None
    added: tuple[Flow, ...]
    """Flows the live side allows that the desired side does not (exposure)."""
    removed: tuple[Flow, ...]
    """Flows the desired side allows that the live side does not (isolation)."""

    @property
    def equivalent(self) -> bool:
        """Same isolation, same selected pods, same traffic: only the writing differs."""
        if self.desired is None or self.live is None:
            return self.desired is self.live
        d, lv = self.desired, self.live
        return (
            not self.added
            and not self.removed
            and d.ingress.isolated == lv.ingress.isolated
            and d.egress.isolated == lv.egress.isolated
            and sel.contains(d.target, lv.target)
            and sel.contains(lv.target, d.target)
        )


def _pod_flows(
    direction: str, view: PolicyView, have: DirectionView, other: DirectionView | None
) -> list[Flow]:
    out = []
    same = other.pods if other is not None else frozenset()
    for peer, ports in have.pods - same:
        # An entry the other side has as it is allows nothing new; only the rest is compared.
        rest = other.uncovered(peer, ports) if other is not None else ports
        if rest:
            out.append(Flow(direction, view, rest, pods=peer))
    # A stable order, whatever the set's (hash-seeded) iteration order was.
    out.sort(key=lambda flow: repr(flow.pods))
    return out


def _ip_flows(direction: str, view: PolicyView, gained: IPMap) -> list[Flow]:
    by_ports: dict[PortSet, list[tuple[int, int]]] = {}
    for lo, hi, ports in gained:
        by_ports.setdefault(ports, []).append((lo, hi))
    return [
        Flow(direction, view, ports, addresses=iv.normalise(ranges))
        for ports, ranges in by_ports.items()
    ]


def _one_way(
    direction: str, have: PolicyView | None, other: PolicyView | None, *, lost: bool
) -> list[Flow]:
    """Flows ``have`` allows that ``other`` does not, for one direction."""
    if have is None:
        return []
    mine = have.direction(direction)
    if not mine.isolated:
        return []
    theirs = other.direction(direction) if other is not None else None
    if lost and other is not None and theirs is not None and not theirs.isolated:
        # The live policy no longer isolates this direction: its pods are not blocked by it.
        return []
    if theirs is not None and not theirs.isolated:
        theirs = None
    # Allowances of ``other`` apply to ``have``'s pods only where it selects all of them.
    if theirs is not None and other is not None and not sel.contains(other.target, have.target):
        theirs = None
    flows = _pod_flows(direction, have, mine, theirs)
    gained = subtract_maps(mine.ips, theirs.ips) if theirs is not None else mine.ips
    return flows + _ip_flows(direction, have, gained)


def changes(desired: PolicyView | None, live: PolicyView | None) -> ChangeSet:
    added: list[Flow] = []
    removed: list[Flow] = []
    for direction in (INGRESS, EGRESS):
        added += _one_way(direction, live, desired, lost=False)
        removed += _one_way(direction, desired, live, lost=True)
    return ChangeSet(desired, live, tuple(added), tuple(removed))
