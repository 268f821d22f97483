"""The semantic change set between a desired and a live policy: flows gained and lost.

An absent side counts as "no policy": it isolates nothing and allows nothing. A
flow is (direction, the policy's selected pods, a peer, ports), one English line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from driftwatch.semantic import intervals as iv
from driftwatch.semantic import selectors as sel
from driftwatch.semantic.ipspace import IPMap, build_map, describe, subtract_maps, to_cidrs
from driftwatch.semantic.model import EGRESS, INGRESS, DirectionView, PodPeer, PolicyView, RulePart
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
    _stem: str | None = field(default=None, init=False, repr=False, compare=False)
    _json: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def peer_text(self) -> str:
        if self.pods is not None:
            return self.pods.describe(self.view.namespace)
        return describe(self.addresses)

    def describe(self, verb: str) -> str:
        """``ingress to pods app=db in prod from 0.0.0.0/0 on TCP 5432 is now allowed``, or
        ``egress from pods app=db in prod to 10.0.0.0/8 on UDP 53 is now allowed``."""
        stem = self._stem
        if stem is None:  # several rules report the same flow: worded once
            on = f"on {self.ports.describe()}"
            target = self.view.describe_target()
            if self.direction == INGRESS:
                stem = f"ingress to {target} from {self.peer_text()} {on}"
            else:
                stem = f"egress from {target} to {self.peer_text()} {on}"
            object.__setattr__(self, "_stem", stem)
        return f"{stem} {verb}"

    def to_json(self) -> dict[str, Any]:
        """The flow as evidence (a new dict each time: callers add to it)."""
        cached = self._json
        if cached is None:
            peer: dict[str, Any]
            if self.pods is not None:
                peer = {
                    "namespaces": sel.describe(self.pods.namespaces) or "*",
                    "pods": sel.describe(self.pods.pods) or "*",
                }
            else:
                peer = {"cidrs": to_cidrs(self.addresses)}
            cached = {
                "direction": self.direction,
                "selected_pods": self.view.describe_target(),
                "peer": peer,
                "ports": self.ports.to_json(),
            }
            object.__setattr__(self, "_json", cached)
        out = dict(cached)
        out["peer"] = dict(cached["peer"])
        return out


@dataclass(frozen=True, slots=True)
class ChangeSet:
    desired: PolicyView | None
    live: PolicyView | None
    added: tuple[Flow, ...]
    """Flows the live side allows that the desired side does not (exposure)."""
    removed: tuple[Flow, ...]
    """Flows the desired side allows that the live side does not (isolation)."""
    _split: tuple[tuple[Flow, ...], ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def added_in(self, direction: str) -> tuple[Flow, ...]:
        """The added flows of one direction."""
        split = self._split or self._split_flows()
        return split[0] if direction == INGRESS else split[1]

    def removed_in(self, direction: str) -> tuple[Flow, ...]:
        """The removed flows of one direction."""
        split = self._split or self._split_flows()
        return split[2] if direction == INGRESS else split[3]

    def _split_flows(self) -> tuple[tuple[Flow, ...], ...]:
        # Every rule asks: split once (ingress added, egress added, ingress and egress removed).
        split = tuple(
            tuple(f for f in flows if f.direction == direction)
            for flows in (self.added, self.removed)
            for direction in (INGRESS, EGRESS)
        )
        object.__setattr__(self, "_split", split)
        return split

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


def _sorted(flows: list[Flow]) -> list[Flow]:
    # A stable order, whatever the set's (hash-seeded) iteration order was.
    flows.sort(key=_pod_order)
    return flows


def _pod_order(flow: Flow) -> str:
    return flow.pods.order if flow.pods is not None else ""


def _ip_flows(direction: str, view: PolicyView, gained: IPMap) -> list[Flow]:
    by_ports: dict[PortSet, list[tuple[int, int]]] = {}
    for lo, hi, ports in gained:
        by_ports.setdefault(ports, []).append((lo, hi))
    return [
        Flow(direction, view, ports, addresses=iv.normalise(ranges))
        for ports, ranges in by_ports.items()
    ]


def _whole(
    direction: str, view: PolicyView, mine: DirectionView, theirs: DirectionView | None
) -> list[Flow]:
    """Flows ``mine`` allows that ``theirs`` does not, entry by entry over merged views."""
    out = []
    same = theirs.pods if theirs is not None else frozenset()
    for peer, ports in mine.pods - same:
        # An entry the other side has as it is allows nothing new; only the rest is compared.
        rest = theirs.uncovered(peer, ports) if theirs is not None else ports
        if rest:
            out.append(Flow(direction, view, rest, pods=peer))
    gained = subtract_maps(mine.ips, theirs.ips) if theirs is not None else mine.ips
    return _sorted(out) + _ip_flows(direction, view, gained)


_EXTRA_LIMIT = 16
"""Past this many pod entries of rules only the live side has, its own lookups are built."""


def _only_in(view: DirectionView, texts: frozenset[str | None]) -> list[int]:
    """Indexes of ``view``'s rules whose text is not among ``texts``."""
    return [i for i, text in enumerate(view.texts) if text not in texts]


def _merged(parts: list[RulePart]) -> tuple[dict[PodPeer, PortSet], IPMap]:
    pods: dict[PodPeer, PortSet] = {}
    for rule_pods, _, _ in parts:
        for peer, ports in rule_pods:
            have = pods.get(peer)
            pods[peer] = ports if have is None else have | ports
    return pods, build_map(e for _, rule_ips, _ in parts for e in rule_ips)


def _gained(
    direction: str, view: PolicyView, live: DirectionView, desired: DirectionView
) -> list[Flow]:
    """What the live rules Git does not have allow beyond all of Git's (the rules both
    have allow nothing new): only the changed rules are looked at."""
    changed = _only_in(live, frozenset(desired.texts))
    if not changed:
        return []
    pods, ips = _merged([live.parts[i] for i in changed])
    out = []
    for peer, ports in pods.items():
        rest = desired.uncovered(peer, ports)
        if rest:
            out.append(Flow(direction, view, rest, pods=peer))
    return _sorted(out) + _ip_flows(direction, view, subtract_maps(ips, desired.ips))


def _lost(
    direction: str, view: PolicyView, desired: DirectionView, live: DirectionView
) -> list[Flow]:
    """What Git's rules the live side lacks allowed that the live side does not: the live
    side is Git's rules minus those, plus its own; Git's lookups serve for both."""
    dropped = _only_in(desired, frozenset(live.texts))
    if not dropped:
        return []
    own = [live.parts[i] for i in _only_in(live, frozenset(desired.texts))]
    extra, extra_ips = _merged(own)
    if len(extra) > _EXTRA_LIMIT:
        return _whole(direction, view, desired, live)
    excluded = frozenset(dropped)
    pods, ips = _merged([desired.parts[i] for i in dropped])
    out = []
    for peer, ports in pods.items():
        rest = ports
        same = extra.get(peer)  # usually the changed rule still has it, as it was
        if same is not None:
            rest = rest - same
        if rest:
            for other, allowed in extra.items():
                if other.contains(peer):
                    rest = rest - allowed
                    if not rest:
                        break
        if rest:
            for other, _ in desired.containing(peer):
                for i, allowed in desired.sources(other):
                    if i not in excluded:
                        rest = rest - allowed
                if not rest:
                    break
        if rest:
            out.append(Flow(direction, view, rest, pods=peer))
    lost = subtract_maps(ips, extra_ips)
    if lost:
        kept = [p for i, p in enumerate(desired.parts) if i not in excluded]
        lost = subtract_maps(lost, build_map(e for _, rule_ips, _ in kept for e in rule_ips))
    return _sorted(out) + _ip_flows(direction, view, lost)


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
    if theirs is None or not _by_rule(mine, theirs):
        return _whole(direction, have, mine, theirs)
    if lost:
        return _lost(direction, have, mine, theirs)
    return _gained(direction, have, mine, theirs)


def _by_rule(a: DirectionView, b: DirectionView) -> bool:
    """Both sides keep their rules' parts and texts: compare them rule by rule."""
    return (
        len(a.parts) == len(a.texts)
        and len(b.parts) == len(b.texts)
        and None not in a.texts
        and None not in b.texts
    )


def changes(desired: PolicyView | None, live: PolicyView | None) -> ChangeSet:
    added: list[Flow] = []
    removed: list[Flow] = []
    for direction in (INGRESS, EGRESS):
        added += _one_way(direction, live, desired, lost=False)
        removed += _one_way(direction, desired, live, lost=True)
    return ChangeSet(desired, live, tuple(added), tuple(removed))
