"""What one state (a topology and its NetworkPolicies) allows, workload by workload.

Kubernetes' rules, as np-guard/netpol-analyzer evaluates them:

* a connection needs both ends: the source's egress AND the destination's ingress; an
  external address has no policies, so only the workload's side decides;
* a workload selected by no policy of a direction is open in that direction; selected by
  one or more, it allows only the union of their rules (``ingress: []`` allows nothing);
* a policy always affects ingress, and egress when ``policyTypes`` says so (the parser
  applies Kubernetes' default: egress when it has egress rules);
* a peer's ``namespaceSelector`` picks namespaces by their labels (absent: the policy's
  own namespace), its ``podSelector`` pods there (absent or ``{}``: all); an ``ipBlock``
  never matches a pod and a selector never an address; a rule without peers matches
  every pod and address, one without ports every connection;
* a named port resolves on the destination's containers (the first of that name, same
  protocol); one that does not resolve there allows nothing (nor toward an address);
* external addresses are IPv4, cut into the disjoint ranges the ipBlocks make
  (``cidr`` minus ``except``); IPv6 blocks are not evaluated (as netpol-analyzer);
* a workload to itself is always allowed and never listed.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from driftwatch.connectivity.conns import ALL, NONE, Conns
from driftwatch.policy import NetworkPolicy
from driftwatch.policy.model import EGRESS, INGRESS, Peer, PolicyPort, PolicyRule
from driftwatch.semantic import intervals as iv
from driftwatch.semantic.ipspace import block_intervals
from driftwatch.topology import Topology, Workload

__all__ = ["EXTERNAL", "IPV4", "Connectivity", "External", "Segment", "ip_breakpoints", "segments"]

IPV4: iv.Intervals = ((0, (1 << 32) - 1),)

EXTERNAL = "[External]"
"""How netpol-analyzer's diff marks an external range."""

Segment = tuple[int, int]
"""An inclusive IPv4 range as integers."""


@dataclass(frozen=True, slots=True)
class External:
    """A range of external (IPv4) addresses."""

    lo: int
    hi: int

    def __str__(self) -> str:
        return f"{self.range_text()}{EXTERNAL}"

    def range_text(self) -> str:
        return f"{ipaddress.IPv4Address(self.lo)}-{ipaddress.IPv4Address(self.hi)}"


def _v4(ranges: iv.Intervals) -> iv.Intervals:
    return iv.intersect(ranges, IPV4)


@dataclass(frozen=True, slots=True)
class _Rule:
    """One rule of a policy, with what it matches worked out."""

    ports: tuple[PolicyPort, ...]
    everyone: bool  # no peers: every pod and every address
    pods: frozenset[int]  # indexes of the workloads its selectors match
    addresses: iv.Intervals  # IPv4 its ipBlocks admit


def _port_conns(ports: Sequence[PolicyPort], destination: Workload | None) -> Conns:
    if not ports:
        return ALL
    out = NONE
    for port in ports:
        protocol = port.protocol or "TCP"
        if port.port is None:
            out = out | Conns.port_range(protocol, 1, 65535)
        elif isinstance(port.port, int):
            out = out | Conns.port_range(protocol, port.port, port.end_port or port.port)
        elif destination is not None:
            found = destination.named_port(port.port)
            if found is not None and found.protocol == protocol:
                out = out | Conns.port_range(protocol, found.port, found.port)
    return out


def _has_named(ports: Sequence[PolicyPort]) -> bool:
    return any(isinstance(p.port, str) for p in ports)


class Connectivity:
    """The allowed connections of one state; queries are pair by pair, and each works out
    only what it needs (the policies of the two ends, and their rules' peers), so a
    question about a few workloads of a large cluster stays cheap."""

    def __init__(
        self,
        topology: Topology,
        policies: Iterable[NetworkPolicy] = (),
        *,
        by_namespace: Mapping[str, Collection[NetworkPolicy]] | None = None,
    ) -> None:
        """``policies``, or ``by_namespace`` (each namespace's policies, e.g. an index a
        caller keeps anyway: then nothing is copied)."""
        self.topology = topology
        self.workloads = topology.workloads
        self.index = {str(w): i for i, w in enumerate(self.workloads)}
        by_ns: dict[str, list[int]] = {}
        for i, w in enumerate(self.workloads):
            by_ns.setdefault(w.namespace, []).append(i)
        self._by_ns = by_ns
        if by_namespace is None:
            grouped: dict[str, list[NetworkPolicy]] = {}
            for policy in policies:
                grouped.setdefault(policy.namespace, []).append(policy)
            by_namespace = grouped
        self._policies_by_ns: Mapping[str, Collection[NetworkPolicy]] = by_namespace
        self._sides: dict[int, tuple[list[_Rule] | None, list[_Rule] | None]] = {}
        self._rules: dict[tuple[int, str, int], _Rule] = {}
        self._blocks: list[iv.Intervals] | None = None
        self._pair_cache: dict[tuple[int, int], Conns] = {}

    # --- building --------------------------------------------------------------------------

    def selected(self, policy: NetworkPolicy) -> list[int]:
        """Indexes of the workloads ``policy`` applies to."""
        selector = policy.spec.pod_selector
        return [
            i
            for i in self._by_ns.get(policy.namespace, ())
            if selector.matches(self.workloads[i].label_map)
        ]

    def _side(self, i: int) -> tuple[list[_Rule] | None, list[_Rule] | None]:
        """Workload ``i``'s (ingress, egress) rules; ``None`` where it is not isolated."""
        side = self._sides.get(i)
        if side is not None:
            return side
        w = self.workloads[i]
        ingress: list[_Rule] | None = None
        egress: list[_Rule] | None = None
        for policy in self._policies_by_ns.get(w.namespace, ()):
            if not policy.spec.pod_selector.matches(w.label_map):
                continue
            types = policy.spec.policy_types
            if INGRESS in types:
                ingress = (ingress or []) + [
                    self._rule(policy, "in", n, r) for n, r in enumerate(policy.spec.ingress)
                ]
            if EGRESS in types:
                egress = (egress or []) + [
                    self._rule(policy, "out", n, r) for n, r in enumerate(policy.spec.egress)
                ]
        side = self._sides[i] = (ingress, egress)
        return side

    def _peer_pods(self, policy: NetworkPolicy, peer: Peer) -> Iterator[int]:
        if peer.ip_block is not None:
            return
        if peer.namespace_selector is None:
            candidates: Iterable[int] = self._by_ns.get(policy.namespace, ())
        else:
            sel = peer.namespace_selector
            candidates = (
                i
                for ns, members in self._by_ns.items()
                if sel.matches(self.topology.namespace_labels(ns))
                for i in members
            )
        pods = peer.pod_selector
        for i in candidates:
            if pods is None or pods.matches(self.workloads[i].label_map):
                yield i

    def _rule(self, policy: NetworkPolicy, way: str, n: int, rule: PolicyRule) -> _Rule:
        key = (id(policy), way, n)
        found = self._rules.get(key)
        if found is not None:
            return found
        if not rule.peers:
            made = _Rule(rule.ports, True, frozenset(), IPV4)
        else:
            pods: set[int] = set()
            addresses: iv.Intervals = ()
            for peer in rule.peers:
                if peer.ip_block is not None:
                    addresses = iv.union(addresses, _v4(block_intervals(peer.ip_block)))
                else:
                    pods.update(self._peer_pods(policy, peer))
            made = _Rule(rule.ports, False, frozenset(pods), addresses)
        self._rules[key] = made
        return made

    @property
    def blocks(self) -> list[iv.Intervals]:
        """Every ipBlock's IPv4 ranges (the breakpoints of the external ranges)."""
        if self._blocks is None:
            self._blocks = [
                _v4(block_intervals(peer.ip_block))
                for policies in self._policies_by_ns.values()
                for policy in policies
                for rule in (*policy.spec.ingress, *policy.spec.egress)
                for peer in rule.peers
                if peer.ip_block is not None
            ]
        return self._blocks

    def blocks_of(self, i: int) -> list[iv.Intervals]:
        """The ipBlock ranges of the rules that apply to workload ``i``."""
        ingress, egress = self._side(i)
        return [r.addresses for r in (*(ingress or ()), *(egress or ())) if not r.everyone]

    # --- queries ---------------------------------------------------------------------------

    def ingress_isolated(self, i: int) -> bool:
        return self._side(i)[0] is not None

    def egress_isolated(self, i: int) -> bool:
        return self._side(i)[1] is not None

    def _allowed(
        self, rules: list[_Rule] | None, *, pod: int | None, segment: Segment | None,
        destination: Workload | None,
    ) -> Conns:  # fmt: skip
        if rules is None:
            return ALL
        out = NONE
        for rule in rules:
            if rule.everyone:
                hit = True
            elif pod is not None:
                hit = pod in rule.pods
            else:
                assert segment is not None  # noqa: S101 - one of the two, by the callers
                hit = iv.contains(rule.addresses, (segment,))
            if hit:
                out = out | _port_conns(rule.ports, destination)
                if out is ALL:
                    break
        return out

    def pair(self, src: int, dst: int) -> Conns:
        """What workload ``src`` may open to workload ``dst`` (all, for itself)."""
        if src == dst:
            return ALL
        key = (src, dst)
        cached = self._pair_cache.get(key)
        if cached is not None:
            return cached
        destination = self.workloads[dst]
        out = self._allowed(self._side(src)[1], pod=dst, segment=None, destination=destination)
        if out:
            ingress = self._side(dst)[0]
            out = out & self._allowed(ingress, pod=src, segment=None, destination=destination)
        self._pair_cache[key] = out
        return out

    def from_external(self, dst: int, segment: Segment) -> Conns:
        """What addresses in ``segment`` (one of :func:`segments`) may open to ``dst``."""
        return self._allowed(
            self._side(dst)[0], pod=None, segment=segment, destination=self.workloads[dst]
        )

    def to_external(self, src: int, segment: Segment) -> Conns:
        """What ``src`` may open to addresses in ``segment``."""
        return self._allowed(self._side(src)[1], pod=None, segment=segment, destination=None)


def ip_breakpoints(*states: Connectivity) -> list[iv.Intervals]:
    return [block for state in states for block in state.blocks]


def segments(blocks: Iterable[iv.Intervals]) -> list[Segment]:
    """The IPv4 space cut at every block's edges: disjoint ranges, each inside or outside
    every block, together the whole space."""
    cuts = {0, 1 << 32}
    for block in blocks:
        for lo, hi in block:
            cuts.add(lo)
            cuts.add(hi + 1)
    edges = sorted(c for c in cuts if 0 <= c <= 1 << 32)
    return [(a, b - 1) for a, b in itertools.pairwise(edges)]
