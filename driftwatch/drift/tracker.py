"""The drift state machine: changes of either side in, one event per real transition out.

The daemon feeds a :class:`DriftTracker` with the desired state (each Git commit), the live
state (the initial list, then each watch event) and configuration reloads; each of these only
records the change and marks the keys whose (desired, live) pair may have moved as pending.
:meth:`DriftTracker.drain` evaluates pending keys, as many as asked for, so that the daemon
can do the work in chunks between other tasks, and returns the events.

Cost: a key whose side did not change (by ``==``) is never pending; a pending key that is in
sync costs one ``==`` (no ignore check, no rules); a pending key whose pair is ``==`` to the
pair of its open drift reuses that drift's findings (no rules) unless the engine changed.

With a topology (:meth:`DriftTracker.set_topology`: the daemon's pod watch), every drift
carries its blast radius and the severity adjustments of :mod:`driftwatch.drift.blast`,
against the live policies of the cluster; a new topology re-evaluates the open drifts.

An open drift can be *approved* (:meth:`DriftTracker.approve`): its (desired, live) pair is
remembered and, while both sides stay ``==`` to it, the key emits nothing (a new engine or
topology refreshes its findings silently). The first change of either side ends the
approval: the key is evaluated as usual, and if it is still drifted an ``updated`` event
is emitted whatever changed (even a change no finding reflects), its reason saying which
side changed after the approval, so that the incident is reopened.

Pure code: no I/O, no event loop, no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType

from driftwatch.drift.blast import Sensitivity, with_blast_radius
from driftwatch.drift.compare import compare
from driftwatch.drift.events import (
    DriftEvent,
    EventKind,
    ResolveReason,
    opened_reason,
    updated_reason,
)
from driftwatch.drift.ignore import IgnoreRules
from driftwatch.drift.model import Drift
from driftwatch.policy import NetworkPolicy, PolicyKey
from driftwatch.rules import RuleEngine
from driftwatch.topology import Topology

__all__ = ["DriftTracker"]

_Name = tuple[str, str]
"""(namespace, name): how the two sides key their policies."""


class DriftTracker:
    """Tracks the drift of every key and emits :class:`DriftEvent` values on transitions.

    Nothing is evaluated until both :meth:`set_desired` and :meth:`set_live` have been called
    once; at that moment every key becomes pending, so that startup opens one drift per key
    that really differs from Git and says nothing about keys in sync.
    """

    __slots__ = (
        "_approved",
        "_cluster",
        "_desired",
        "_engine",
        "_has_desired",
        "_has_live",
        "_ignore",
        "_live",
        "_live_by_ns",
        "_open",
        "_pending",
        "_sensitivity",
        "_sequence",
        "_stale",
        "_topology",
    )

    def __init__(
        self,
        engine: RuleEngine,
        *,
        cluster: str = "default",
        ignore: IgnoreRules | None = None,
        sensitivity: Sensitivity | None = None,
    ) -> None:
        self._engine = engine
        self._topology: Topology | None = None
        self._sensitivity = sensitivity or Sensitivity()
        self._live_by_ns: dict[str, dict[str, NetworkPolicy]] = {}
        self._cluster = cluster
        self._ignore = ignore or IgnoreRules()
        self._desired: dict[_Name, NetworkPolicy] = {}
        self._live: dict[_Name, NetworkPolicy] = {}
        self._has_desired = False
        self._has_live = False
        self._pending: OrderedDict[_Name, None] = OrderedDict()
        self._open: dict[PolicyKey, Drift] = {}
        self._stale: set[PolicyKey] = set()
        """Open drifts whose findings came from an engine since replaced."""
        self._sequence = 0
        self._approved: dict[PolicyKey, tuple[NetworkPolicy | None, NetworkPolicy | None]] = {}
        """Approved drifts: the (desired, live) pair approved."""

    # -- inputs ----------------------------------------------------------------------------

    def set_desired(self, policies: Mapping[_Name, NetworkPolicy]) -> frozenset[PolicyKey]:
        """The whole desired state (a new commit); returns the keys marked pending.

        A key is marked only when its desired policy changed by ``==``; when only its
        provenance changed, its open drift (if any) is refreshed silently.
        """
        old, self._desired = self._desired, dict(policies)
        return self._replace_side(old, self._desired, desired_side=True)

    def set_live(self, policies: Mapping[_Name, NetworkPolicy]) -> frozenset[PolicyKey]:
        """The whole live state (the initial list, or a relist); returns the keys marked."""
        old, self._live = self._live, dict(policies)
        self._live_by_ns = {}
        for (ns, name), policy in self._live.items():
            self._live_by_ns.setdefault(ns, {})[name] = policy
        return self._replace_side(old, self._live, desired_side=False)

    def put_live(self, policy: NetworkPolicy) -> frozenset[PolicyKey]:
        """One live policy created or changed; returns the key if it was marked pending."""
        name = (policy.namespace, policy.name)
        old = self._live.get(name)
        self._live[name] = policy
        self._live_by_ns.setdefault(policy.namespace, {})[policy.name] = policy
        if old is not None and old == policy:
            if old.origin != policy.origin:
                self._refresh(name, live=policy)
            return frozenset()
        return self._mark((name,))

    def delete_live(self, namespace: str, name: str) -> frozenset[PolicyKey]:
        """One live policy deleted; returns the key if it was marked pending."""
        if self._live.pop((namespace, name), None) is None:
            return frozenset()
        self._live_by_ns.get(namespace, {}).pop(name, None)
        return self._mark(((namespace, name),))

    def set_topology(
        self, topology: Topology | None, sensitivity: Sensitivity | None = None
    ) -> frozenset[PolicyKey]:
        """The cluster's workloads now (``None``: unknown, no blast radius). Open drifts in
        a namespace whose workloads changed become pending (what their policy selects, and
        so their rules, may have moved; a change elsewhere only moves the far ends of
        their radius, refreshed at their next evaluation). ``sensitivity``: a new one (every
        open drift is re-evaluated), or keep the last."""
        old, self._topology = self._topology, topology
        if sensitivity is not None and sensitivity != self._sensitivity:
            self._sensitivity = sensitivity
            changed = None
        elif (old is None) != (topology is None):
            changed = None
        else:
            changed = _changed_namespaces(old, topology)
        keys = [k for k in self._open if changed is None or k.namespace in changed]
        self._stale.update(keys)
        return self._mark([(k.namespace, k.name) for k in keys])

    def replace_engine(
        self, engine: RuleEngine, ignore: IgnoreRules | None = None
    ) -> frozenset[PolicyKey]:
        """A configuration reload: new rules and ignore rules (``None``: ignore nothing).

        Every key becomes pending; open drifts are re-evaluated with the new engine.
        """
        self._engine = engine
        self._ignore = ignore or IgnoreRules()
        self._stale = set(self._open)
        return self._mark(self._all_names())

    @property
    def engine(self) -> RuleEngine:
        """The rule engine drifts are classified with (the admission webhook judges writes
        with the same one)."""
        return self._engine

    @property
    def ignore(self) -> IgnoreRules:
        """The ignore rules in force."""
        return self._ignore

    def approve(self, key: PolicyKey) -> bool:
        """Approve the open drift of ``key`` as it is: no event while neither side changes;
        on the next change, evaluated as usual, and ``updated`` if still drifted (see the
        module docstring). False (nothing done) when ``key`` has no open drift."""
        drift = self._open.get(key)
        if drift is None:
            return False
        self._approved[key] = (drift.desired, drift.live)
        return True

    def is_approved(self, key: PolicyKey) -> bool:
        """Whether ``key``'s open drift is approved (and unchanged since)."""
        return key in self._approved

    # -- evaluation ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether both sides have been set once (before that nothing is evaluated)."""
        return self._has_desired and self._has_live

    @property
    def pending(self) -> int:
        """How many keys wait for :meth:`drain`."""
        return len(self._pending)

    def drain(self, limit: int | None = None) -> list[DriftEvent]:
        """Evaluate up to ``limit`` pending keys (all when ``None``), oldest first."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        count = len(self._pending) if limit is None else min(limit, len(self._pending))
        events: list[DriftEvent] = []
        for _ in range(count):
            name, _none = self._pending.popitem(last=False)
            event = self._evaluate(name)
            if event is not None:
                events.append(event)
        return events

    @property
    def open(self) -> Mapping[PolicyKey, Drift]:
        """The currently open drifts (a read-only view that follows the tracker)."""
        return MappingProxyType(self._open)

    def live_policy(self, key: PolicyKey) -> NetworkPolicy | None:
        """The live policy of ``key`` as last seen (``None``: absent)."""
        return self._live.get((key.namespace, key.name))

    def drift_of(self, key: PolicyKey) -> Drift | None:
        """The open drift of ``key``, or ``None`` when it is not drifted (or not evaluated)."""
        return self._open.get(key)

    # -- internals -------------------------------------------------------------------------

    def _replace_side(
        self,
        old: Mapping[_Name, NetworkPolicy],
        new: Mapping[_Name, NetworkPolicy],
        *,
        desired_side: bool,
    ) -> frozenset[PolicyKey]:
        was_ready = self.ready
        if desired_side:
            self._has_desired = True
        else:
            self._has_live = True
        if not was_ready:
            return self._mark(self._all_names())  # nothing if still waiting for the other
        changed: list[_Name] = []
        for name, policy in new.items():
            before = old.get(name)
            if before is None or before != policy:
                changed.append(name)
            elif desired_side and before.source != policy.source:
                self._refresh(name, desired=policy)
            elif not desired_side and before.origin != policy.origin:
                self._refresh(name, live=policy)
        changed.extend(name for name in old if name not in new)
        return self._mark(changed)

    def _all_names(self) -> list[_Name]:
        names = list(self._desired)
        names.extend(name for name in self._live if name not in self._desired)
        return names

    def _mark(self, names: Iterable[_Name]) -> frozenset[PolicyKey]:
        if not self.ready:
            return frozenset()
        marked = []
        for name in names:
            self._pending[name] = None
            marked.append(PolicyKey(self._cluster, *name))
        return frozenset(marked)

    def _refresh(
        self,
        name: _Name,
        *,
        desired: NetworkPolicy | None = None,
        live: NetworkPolicy | None = None,
    ) -> None:
        """Swap in a side equal to the open drift's but with other provenance or origin."""
        key = PolicyKey(self._cluster, *name)
        drift = self._open.get(key)
        if drift is None:
            return
        if desired is not None and drift.desired == desired:
            self._open[key] = replace(drift, desired=desired)
        elif live is not None and drift.live == live:
            self._open[key] = replace(drift, live=live)

    def _evaluate(self, name: _Name) -> DriftEvent | None:
        want, have = self._desired.get(name), self._live.get(name)
        key = PolicyKey(self._cluster, *name)
        before = self._open.get(key)
        reason: ResolveReason | None = None
        if want is None and have is None:
            reason = ResolveReason.DELETED
        elif want is not None and want == have:
            git_moved = before is not None and before.live == have
            reason = ResolveReason.GIT_MATCHES_LIVE if git_moved else ResolveReason.LIVE_MATCHES_GIT
        elif self._ignore.ignores(key, want, have):
            reason = ResolveReason.IGNORED
        approved = self._approved.pop(key, None) if self._approved else None
        if reason is not None:
            if self._stale:
                self._stale.discard(key)
            if before is None:
                return None
            del self._open[key]
            return self._event(
                EventKind.RESOLVED, before, previous=before, reason=reason, live=have
            )

        if (
            before is not None
            and key not in self._stale
            and before.desired == want
            and before.live == have
        ):
            drift = replace(before, desired=want, live=have)  # same findings, fresh sides
        else:
            drift = compare(key, want, have, self._engine)
            if self._topology is not None and self._topology.workloads:
                by_ns = {ns: policies.values() for ns, policies in self._live_by_ns.items()}
                drift = with_blast_radius(drift, self._topology, by_ns, self._sensitivity)
        self._stale.discard(key)
        self._open[key] = drift
        if before is None:
            return self._event(
                EventKind.OPENED, drift, previous=None, reason=opened_reason(drift), live=have
            )
        if approved is not None:
            if approved[0] == want and approved[1] == have:
                self._approved[key] = approved  # still the approved pair: nothing to say
                return None
            return self._event(
                EventKind.UPDATED,
                drift,
                previous=before,
                reason=_after_approval(approved, want, have, before, drift),
                live=have,
            )
        if before.status is drift.status and before.findings == drift.findings:
            return None  # only the diff, provenance or origin moved
        return self._event(
            EventKind.UPDATED,
            drift,
            previous=before,
            reason=updated_reason(before, drift),
            live=have,
        )

    def _event(
        self,
        kind: EventKind,
        drift: Drift,
        *,
        previous: Drift | None,
        reason: str,
        live: NetworkPolicy | None,
    ) -> DriftEvent:
        self._sequence += 1
        return DriftEvent(kind, drift.key, drift, previous, reason, self._sequence, live)


def _after_approval(
    approved: tuple[NetworkPolicy | None, NetworkPolicy | None],
    want: NetworkPolicy | None,
    have: NetworkPolicy | None,
    before: Drift,
    drift: Drift,
) -> str:
    """Why an approved drift is reported again: which side changed since the approval,
    and what that did to the drift."""
    git, live = approved[0] != want, approved[1] != have
    if git and live:
        side = "Git and the live policy changed"
    elif git:
        side = "Git changed"
    else:
        side = "the live policy changed again"
    if before.status is drift.status and before.findings == drift.findings:
        return f"{side} after the approval"
    return f"{side} after the approval; {updated_reason(before, drift)}"


def _changed_namespaces(old: Topology | None, new: Topology | None) -> set[str]:
    """Namespaces whose workloads (names, labels, ports) differ between two topologies."""

    def by_ns(t: Topology | None) -> dict[str, set[object]]:
        out: dict[str, set[object]] = {}
        for w in t.workloads if t is not None else ():
            out.setdefault(w.namespace, set()).add(w)
        return out

    a, b = by_ns(old), by_ns(new)
    return {ns for ns in a.keys() | b.keys() if a.get(ns) != b.get(ns)}
