"""What one policy allows, as sets: the connectivity model the risk rules reason about.

A policy contributes, per direction, whether it isolates its pods and which
(peer, ports) it allows. Pod peers are (namespace selector, pod selector) pairs,
with "the policy's own namespace" written as a selector on the namespace's name
label; IP peers are an :data:`~driftwatch.semantic.ipspace.IPMap`. An empty
``from``/``to`` allows every pod in every namespace *and* every address; a
``namespaceSelector: {}`` allows every pod but no outside address.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from driftwatch.policy import NetworkPolicy, Peer, PolicyPort, PolicyRule, PolicySpec
from driftwatch.policy.hashing import cached_hash
from driftwatch.semantic import intervals as iv
from driftwatch.semantic import selectors as sel
from driftwatch.semantic.ipspace import ALL_IPS, IPMap, block_intervals, build_map, map_addresses
from driftwatch.semantic.ports import NO_PORTS, PortSet, clear_operation_caches

__all__ = [
    "DirectionView",
    "PodPeer",
    "PolicyView",
    "allows_same",
    "clear_caches",
    "rules_allowance",
    "rules_excepted",
    "view_of",
]

INGRESS, EGRESS = "ingress", "egress"

Pin = tuple[int, str, str]
K = TypeVar("K")
V = TypeVar("V")


@cached_hash
@dataclass(frozen=True, slots=True)
class PodPeer:
    """Pods matching ``pods`` in namespaces matching ``namespaces`` (canonical selectors)."""

    namespaces: tuple[sel.Constraint, ...]
    pods: tuple[sel.Constraint, ...]
    _keys: tuple[frozenset[str], frozenset[str]] = field(
        init=False, compare=False, repr=False, hash=False
    )
    _pins: frozenset[Pin] = field(init=False, compare=False, repr=False, hash=False)
    _order: str | None = field(default=None, init=False, repr=False, compare=False)
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = (frozenset(c.key for c in self.namespaces), frozenset(c.key for c in self.pods))
        object.__setattr__(self, "_keys", keys)
        pins = [
            (side, c.key, next(iter(c.values)))
            for side, constraints in enumerate((self.namespaces, self.pods))
            for c in constraints
            if c.finite and not c.absent_ok and len(c.values) == 1
        ]
        object.__setattr__(self, "_pins", frozenset(pins))

    @property
    def order(self) -> str:
        """A stable sort key (the repr: independent of hash seeds), computed once."""
        order = self._order
        if order is None:
            order = repr(self)
            object.__setattr__(self, "_order", order)
        return order

    @property
    def keys(self) -> tuple[frozenset[str], frozenset[str]]:
        """The label keys constrained on namespaces and on pods."""
        return self._keys

    @property
    def pins(self) -> frozenset[Pin]:
        """The ``key=value`` constraints, as ``(0 namespaces | 1 pods, key, value)``.

        If A contains B, every pin of A is a pin of B (B must match a subset of A's
        one value); the indexes of :class:`DirectionView` rest on that.
        """
        return self._pins

    def contains(self, other: PodPeer) -> bool:
        # A canonical selector constrains only keys it names, and an unconstrained key admits
        # every label state: so A can contain B only if B constrains every key A does.
        mine, theirs = self._keys, other._keys
        if not (mine[0] <= theirs[0] and mine[1] <= theirs[1]):
            return False
        return sel.contains(self.namespaces, other.namespaces) and sel.contains(
            self.pods, other.pods
        )

    @property
    def all_namespaces(self) -> bool:
        """Matches every namespace, or any namespace lacking a label (NotIn/DoesNotExist)."""
        return not self.namespaces or any(c.absent_ok for c in self.namespaces)

    def describe(self, own_namespace: str) -> str:
        return _describe_peer(self, own_namespace)

    def _describe(self, own_namespace: str) -> str:
        pods = "every pod" if not self.pods else f"pods {sel.describe(self.pods)}"
        if not self.namespaces:
            where = "in every namespace"
        elif self.namespaces == sel.name_selector(own_namespace):
            where = f"in {own_namespace}"
        elif (
            len(self.namespaces) == 1
            and self.namespaces[0].key == sel.NAME_LABEL
            and self.namespaces[0].finite
            and not self.namespaces[0].absent_ok
            and len(self.namespaces[0].values) == 1
        ):
            where = f"in namespace {next(iter(self.namespaces[0].values))}"
        else:
            where = f"in namespaces {sel.describe(self.namespaces)}"
        return f"{pods} {where}"


EVERY_POD = PodPeer((), ())


@functools.lru_cache(maxsize=16384)
def _describe_peer(peer: PodPeer, own_namespace: str) -> str:
    return peer._describe(own_namespace)


Entry = tuple[PodPeer, PortSet]
RulePart = tuple[tuple[Entry, ...], tuple[tuple[iv.Intervals, PortSet], ...], iv.Intervals]
"""What one rule allows: pod peers with their ports, address ranges with theirs, and the
ranges its ipBlocks except."""
_SCAN_BELOW = 8
"""Directions with at most this many pod peers are searched entry by entry, no index."""


class _Indexes:
    """Lookups over a direction's pod entries, each built on first use, so containment
    queries visit only entries that can match (see :attr:`PodPeer.pins`), not every peer."""

    __slots__ = ("_anchored", "_entries", "_pinned", "_sources", "by_peer")

    def __init__(self, entries: frozenset[Entry]) -> None:
        self._entries = entries
        self.by_peer: dict[PodPeer, PortSet] = dict(entries)
        self._pinned: dict[Pin, list[Entry]] | None = None
        self._anchored: dict[Pin | None, list[Entry]] | None = None
        self._sources: dict[PodPeer, tuple[tuple[int, PortSet], ...]] | None = None

    def sources(
        self, parts: tuple[RulePart, ...]
    ) -> dict[PodPeer, tuple[tuple[int, PortSet], ...]]:
        """Each peer's (rule index, ports), from the parts the entries were merged from."""
        if self._sources is None:
            found: dict[PodPeer, list[tuple[int, PortSet]]] = {}
            for i, (rule_pods, _, _) in enumerate(parts):
                for peer, ports in rule_pods:
                    found.setdefault(peer, []).append((i, ports))
            self._sources = {peer: tuple(s) for peer, s in found.items()}
        return self._sources

    @property
    def pinned(self) -> dict[Pin, list[Entry]]:
        """Each entry under every one of its pins."""
        if self._pinned is None:
            pinned: dict[Pin, list[Entry]] = {}
            for entry in self._entries:
                for pin in entry[0].pins:
                    pinned.setdefault(pin, []).append(entry)
            self._pinned = pinned
        return self._pinned

    @property
    def anchored(self) -> dict[Pin | None, list[Entry]]:
        """Each entry under one of its pins: its rarest (a pin most entries share, such as
        the policy's own namespace, would send every query to all of them); ``None`` when
        it has none."""
        if self._anchored is None:
            sizes = {pin: len(entries) for pin, entries in self.pinned.items()}
            anchored: dict[Pin | None, list[Entry]] = {}
            for entry in self._entries:
                pins = entry[0].pins
                anchor = min(pins, key=sizes.__getitem__) if pins else None
                anchored.setdefault(anchor, []).append(entry)
            self._anchored = anchored
        return self._anchored


class DirectionView:
    """One direction of one policy.

    Built from the rules' parts (each rule analysed once per text, see ``_RULE_PARTS``);
    the merged entries, the address map and the lookups are derived on first use, so a
    live view that is only compared with its Git version rule by rule
    (:func:`~driftwatch.semantic.changes.changes`) never pays for them. Immutable.
    """

    __slots__ = (
        "_addresses",
        "_hash",
        "_indexes",
        "_ips",
        "_pods",
        "isolated",
        "parts",
        "rules",
        "texts",
    )

    isolated: bool
    """The direction is in policyTypes: the selected pods are isolated for it."""
    rules: int
    """How many rules the manifest writes for it (counted even when not isolated)."""
    parts: tuple[RulePart, ...]
    """What each rule allows, in order; empty when not isolated."""
    texts: tuple[str | None, ...]
    """Each rule's canonical text (``None``: built in code), parallel to ``parts``."""

    def __init__(
        self,
        isolated: bool,
        rules: int,
        parts: tuple[RulePart, ...] = (),
        texts: tuple[str | None, ...] = (),
    ) -> None:
        self.isolated = isolated
        self.rules = rules
        self.parts = parts
        self.texts = texts
        self._pods: frozenset[Entry] | None = None
        self._ips: IPMap | None = None
        self._addresses: iv.Intervals | None = None
        self._indexes: _Indexes | None = None
        self._hash: int | None = None

    @classmethod
    def of(cls, isolated: bool, rules: int, pods: frozenset[Entry], ips: IPMap) -> DirectionView:
        """A view of already merged entries (no per-rule parts)."""
        view = cls(isolated, rules)
        view._pods, view._ips = pods, ips
        return view

    @property
    def pods(self) -> frozenset[Entry]:
        """Allowed pod peers (ports merged per peer); empty when not isolated. A peer that a
        broader one already allows is kept: equivalence is decided by coverage
        (``changes``), which costs O(changed peers x peers), not by comparing these sets,
        which would need an O(peers^2) reduction on every policy."""
        pods = self._pods
        if pods is None:
            merged: dict[PodPeer, PortSet] = {}
            for rule_pods, _, _ in self.parts:
                for piece, ports in rule_pods:
                    have = merged.get(piece)
                    merged[piece] = ports if have is None else have | ports
            pods = self._pods = frozenset(merged.items())
        return pods

    @property
    def excepted(self) -> iv.Intervals:
        """The ranges the rules' ipBlocks except (computed on each call: rarely needed)."""
        return iv.normalise(r for _, _, excepted in self.parts for r in excepted)

    @property
    def addresses(self) -> iv.Intervals:
        """Every address allowed some port."""
        addresses = self._addresses
        if addresses is None:
            addresses = self._addresses = map_addresses(self.ips)
        return addresses

    @property
    def ips(self) -> IPMap:
        """Allowed addresses and their ports; empty when not isolated."""
        ips = self._ips
        if ips is None:
            ips = self._ips = build_map(e for _, rule_ips, _ in self.parts for e in rule_ips)
        return ips

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DirectionView):
            return NotImplemented
        return (self.isolated, self.rules, self.pods, self.ips) == (
            other.isolated,
            other.rules,
            other.pods,
            other.ips,
        )

    def __hash__(self) -> int:
        value = self._hash
        if value is None:
            value = self._hash = hash((self.isolated, self.rules, self.pods, self.ips))
        return value

    def __repr__(self) -> str:
        return (
            f"DirectionView(isolated={self.isolated!r}, rules={self.rules!r}, "
            f"pods={self.pods!r}, ips={self.ips!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (DirectionView.of, (self.isolated, self.rules, self.pods, self.ips))

    def prepare(self) -> None:
        """Build the merged entries, the address map and every lookup now."""
        idx = self._idx()
        if len(idx.by_peer) > _SCAN_BELOW:
            idx.anchored  # noqa: B018 - built on first read
            idx.pinned  # noqa: B018 - likewise
        idx.sources(self.parts)
        self.addresses  # noqa: B018 - likewise (and the address map)

    def _idx(self) -> _Indexes:
        # Built on first use: most views are only compared whole, never queried.
        indexes = self._indexes
        if indexes is None:
            indexes = self._indexes = _Indexes(self.pods)
        return indexes

    @property
    def deny_all(self) -> bool:
        if self._pods is not None or not self.parts:
            return self.isolated and not self.pods and not self.ips
        return self.isolated and not any(pods or ips for pods, ips, _ in self.parts)

    def sources(self, peer: PodPeer) -> tuple[tuple[int, PortSet], ...]:
        """The rules (by index) that write ``peer`` as is, with their ports."""
        return self._idx().sources(self.parts).get(peer, ())

    def ports_for(self, peer: PodPeer) -> PortSet:
        """The ports this peer is written with here (nothing if it is not written as is)."""
        return self._idx().by_peer.get(peer, NO_PORTS)

    def containing(self, peer: PodPeer) -> Iterator[tuple[PodPeer, PortSet]]:
        """Entries whose peer contains every pod of ``peer`` (``peer`` itself included)."""
        idx = self._idx()
        if len(idx.by_peer) <= _SCAN_BELOW:
            for entry in idx.by_peer.items():
                if entry[0].contains(peer):
                    yield entry
            return
        # A container's pins are all pins of ``peer``: so is its anchor.
        anchored = idx.anchored
        for anchor in (None, *peer.pins):
            for entry in anchored.get(anchor, ()):
                if entry[0].contains(peer):
                    yield entry

    def contained(self, peer: PodPeer) -> Iterator[tuple[PodPeer, PortSet]]:
        """Entries whose peer is contained in ``peer`` (``peer`` itself included)."""
        idx = self._idx()
        candidates: Iterable[Entry]
        if len(idx.by_peer) <= _SCAN_BELOW:
            candidates = idx.by_peer.items()
        else:
            # Each of them has every pin of ``peer``: the smallest list of one pin suffices.
            pinned = idx.pinned
            lists = [pinned.get(pin, []) for pin in peer.pins]
            if lists:
                smallest = min(lists, key=len)
                candidates = smallest
            else:
                candidates = self.pods
        for entry in candidates:
            if peer.contains(entry[0]):
                yield entry

    def uncovered(self, peer: PodPeer, ports: PortSet) -> PortSet:
        """The part of ``ports`` to every pod of ``peer`` that this direction does not allow."""
        rest = ports - self.ports_for(peer)
        if not rest:
            return rest
        for _, allowed in self.containing(peer):
            rest = rest - allowed
            if not rest:
                break
        return rest

    def pod_allowance(self, peer: PodPeer) -> PortSet:
        """The ports this direction allows to every pod of ``peer``."""
        out = PortSet()
        for _, ports in self.containing(peer):
            out = out | ports
        return out


@dataclass(frozen=True, slots=True)
class PolicyView:
    namespace: str
    target: tuple[sel.Constraint, ...] | None
    """The selected pods (in ``namespace``); ``None``: selects nothing."""
    ingress: DirectionView
    egress: DirectionView
    _target_text: str | None = field(default=None, init=False, repr=False, compare=False)

    def direction(self, name: str) -> DirectionView:
        return self.ingress if name == INGRESS else self.egress

    def prepare(self) -> PolicyView:
        """Build every lookup now rather than on first use: for a view that many changes
        will be compared with (Git's), where the first one should not pay for them."""
        self.describe_target()
        for view in (self.ingress, self.egress):
            view.prepare()
        return self

    def describe_target(self) -> str:
        text = self._target_text
        if text is None:
            text = self._describe_target()
            object.__setattr__(self, "_target_text", text)
        return text

    def _describe_target(self) -> str:
        if self.target is None:
            return f"no pod in {self.namespace}"
        if not self.target:
            return f"every pod in {self.namespace}"
        return f"pods {sel.describe(self.target)} in {self.namespace}"


@functools.lru_cache(maxsize=16384)
def _peer_pieces(peer: Peer, namespace: str) -> tuple[PodPeer, ...]:
    ns: sel.Sel
    if peer.namespace_selector is None:
        ns = sel.name_selector(namespace)
    else:
        ns = sel.canonical(peer.namespace_selector)
    pods = () if peer.pod_selector is None else sel.canonical(peer.pod_selector)
    return tuple(
        PodPeer(n, p)
        for n in sel.split_in(ns)
        for p in sel.split_in(pods)
        if n is not None and p is not None
    )


@functools.lru_cache(maxsize=16384)
def _ports_of(ports: tuple[PolicyPort, ...]) -> PortSet:
    return PortSet.of(ports)


_CACHE_LIMIT = 65536
_RULE_PARTS: dict[tuple[str, str], RulePart] = {}
"""Rule parts by (namespace, rule text): a live policy shares most rules with its desired
version, so classifying a change analyses the rules that changed and looks up the rest."""
_VIEWS: dict[tuple[object, ...], PolicyView] = {}
"""Views by namespace, selector, types and rule texts (keyed by strings, not by hashing a
freshly parsed spec's whole tree), or by namespace and spec for rules built in code."""


def clear_caches() -> None:
    """Forget every view and rule analysed so far, the memoised port set operations and
    peer texts (benchmarks measuring cold work). Canonical selectors, CIDRs and port texts
    stay: small values that recur across any cluster's policies."""
    _RULE_PARTS.clear()
    _VIEWS.clear()
    _describe_peer.cache_clear()
    clear_operation_caches()


def _cached(cache: dict[K, V], key: K, compute: Callable[[], V]) -> V:
    """``cache[key]``, computed on a miss; a full cache starts over (bounded memory)."""
    value = cache.get(key)
    if value is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        value = cache[key] = compute()
    return value


def _compute_part(rule: PolicyRule, namespace: str) -> RulePart:
    ports = _ports_of(rule.ports)
    if not rule.peers:
        return ((EVERY_POD, ports),), ((ALL_IPS, ports),), ()
    pods: dict[PodPeer, PortSet] = {}
    ips: list[tuple[iv.Intervals, PortSet]] = []
    excepted: list[tuple[int, int]] = []
    for peer in rule.peers:
        block = peer.ip_block
        if block is not None:
            allowed = block_intervals(block)
            ips.append((allowed, ports))
            if block.excepts:
                excepted.extend(iv.subtract(block_intervals(type(block)(block.cidr)), allowed))
            continue
        for piece in _peer_pieces(peer, namespace):
            pods[piece] = ports  # one rule: one port set for all its peers
    return tuple(pods.items()), tuple(ips), iv.normalise(excepted)


def _rule_part(rule: PolicyRule, namespace: str) -> RulePart:
    if rule.text is None:
        return _compute_part(rule, namespace)
    return _cached(_RULE_PARTS, (namespace, rule.text), lambda: _compute_part(rule, namespace))


def _direction(rules: tuple[PolicyRule, ...], isolated: bool, namespace: str) -> DirectionView:
    if not isolated:
        return DirectionView(False, len(rules))
    return DirectionView(
        True,
        len(rules),
        tuple(_rule_part(rule, namespace) for rule in rules),
        tuple(rule.text for rule in rules),
    )


def rules_allowance(
    rules: tuple[PolicyRule, ...], namespace: str
) -> tuple[frozenset[tuple[PodPeer, PortSet]], IPMap]:
    """What ``rules`` would allow if their direction were isolated (for ignored rules)."""
    view = _direction(rules, True, namespace)
    return view.pods, view.ips


def rules_excepted(rules: tuple[PolicyRule, ...], namespace: str) -> iv.Intervals:
    """The ranges ``rules``' ipBlocks except, whether or not their direction is isolated."""
    return _direction(rules, True, namespace).excepted


def allows_same(
    a: tuple[frozenset[tuple[PodPeer, PortSet]], IPMap],
    b: tuple[frozenset[tuple[PodPeer, PortSet]], IPMap],
) -> bool:
    """Whether two :func:`rules_allowance` results allow exactly the same traffic."""
    if a[1] != b[1]:
        return False
    one = DirectionView.of(True, 0, a[0], ())
    two = DirectionView.of(True, 0, b[0], ())
    return all(not p - two.pod_allowance(peer) for peer, p in a[0] - b[0]) and all(
        not p - one.pod_allowance(peer) for peer, p in b[0] - a[0]
    )


def _view(namespace: str, spec: PolicySpec) -> PolicyView:
    return PolicyView(
        namespace=namespace,
        target=sel.canonical(spec.pod_selector),
        ingress=_direction(spec.ingress, "Ingress" in spec.policy_types, namespace),
        egress=_direction(spec.egress, "Egress" in spec.policy_types, namespace),
    )


def view_of(policy: NetworkPolicy) -> PolicyView:
    """The connectivity model of ``policy`` (cached: policies repeat across evaluations)."""
    spec = policy.spec
    ingress = tuple(r.text for r in spec.ingress)
    egress = tuple(r.text for r in spec.egress)
    key: tuple[object, ...]
    if None in ingress or None in egress:  # built in code, not parsed: key on the values
        key = (policy.namespace, spec)
    else:
        key = (policy.namespace, spec.pod_selector, spec.policy_types, ingress, egress)
    return _cached(_VIEWS, key, lambda: _view(policy.namespace, spec))
