"""The canonical NetworkPolicy model: typed, immutable, normalised values.

Two policies that the API server would store identically compare equal (``==``),
whatever defaults, server-populated metadata or key order they were written with.
List order (rules, peers, ports, expression values) is kept as written, since the
API server keeps it too; semantic equivalence of differently written policies is
the risk engine's business, not this model's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from driftwatch.policy.hashing import cached_hash

__all__ = [
    "DEFAULT_CLUSTER",
    "EGRESS",
    "INGRESS",
    "IPBlock",
    "LabelSelector",
    "LiveOrigin",
    "NetworkPolicy",
    "Peer",
    "PolicyKey",
    "PolicyPort",
    "PolicyRule",
    "PolicySpec",
    "PolicyType",
    "Provenance",
    "Requirement",
]

PolicyType = Literal["Ingress", "Egress"]
INGRESS: PolicyType = "Ingress"
EGRESS: PolicyType = "Egress"
DEFAULT_CLUSTER = "default"

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


@dataclass(frozen=True, slots=True, order=True)
class PolicyKey:
    """Identity of one policy everywhere in driftwatch."""

    cluster: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.cluster}/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a desired policy came from: the document's first line in a file."""

    path: str
    line: int
    commit: str | None = None
    repo: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}@{self.commit}" if self.commit else where


@dataclass(frozen=True, slots=True)
class LiveOrigin:
    """The last write to a live object, read from its ``managedFields``."""

    manager: str | None
    operation: str | None
    time: str | None
    resource_version: str | None = None

    def describe(self) -> str:
        """``changed by kubectl-edit (Update) at 2026-11-27T12:03:22Z``."""
        who = self.manager or "an unknown manager"
        how = f" ({self.operation})" if self.operation else ""
        when = f" at {self.time}" if self.time else ""
        return f"changed by {who}{how}{when}"


@cached_hash
@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` entry."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@cached_hash
@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A Kubernetes label selector; ``matchLabels`` sorted, the rest as written."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def is_empty(self) -> bool:
        """An empty selector selects everything."""
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.match_labels]
        for r in self.match_expressions:
            if r.operator == "Exists":
                parts.append(r.key)
            elif r.operator == "DoesNotExist":
                parts.append(f"!{r.key}")
            else:
                op = "in" if r.operator == "In" else "notin"
                parts.append(f"{r.key} {op} ({','.join(r.values)})")
        return ",".join(parts)


@cached_hash
@dataclass(frozen=True, slots=True)
class IPBlock:
    """``ipBlock``: a CIDR minus its ``except`` entries (strings as written)."""

    cidr: str
    excepts: tuple[str, ...] = ()
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)


@cached_hash
@dataclass(frozen=True, slots=True)
class Peer:
    """One ``from``/``to`` entry: selectors, or an ipBlock, never both."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)


@cached_hash
@dataclass(frozen=True, slots=True)
class PolicyPort:
    """One ``ports`` entry; ``protocol`` defaulted to TCP, ``port`` a number or a name."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)


@cached_hash
@dataclass(frozen=True, slots=True)
class PolicyRule:  # noqa: PLW1641 - @cached_hash supplies __hash__
    """One ingress or egress rule. Empty ``peers`` = all peers; empty ``ports`` = all ports."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()
    text: str | None = field(default=None, init=False, compare=False, repr=False)
    """The rule as written (canonical JSON), set by ``parse_policy`` only: equal texts mean
    equal rules, so work on one can be reused for the other by a string lookup. Not part of
    ``==`` (rules written differently can still be equal, though equal texts settle it at
    once), and not an ``__init__`` argument, so ``dataclasses.replace`` never carries a stale
    text over to a changed rule; a pickled copy keeps it."""
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, PolicyRule):
            return NotImplemented
        if self.text is not None and self.text == other.text:
            return True  # the same text parses to the same rule: no need to walk the trees
        return self.peers == other.peers and self.ports == other.ports

    def __reduce__(self) -> tuple[Any, ...]:
        # The text travels with a pickled copy (to and from worker processes): it is a
        # function of the rule as written, and the copy keeps its cache lookups.
        return (_rule_with_text, (self.peers, self.ports, self.text))


def _rule_with_text(
    peers: tuple[Peer, ...], ports: tuple[PolicyPort, ...], text: str | None
) -> PolicyRule:
    rule = PolicyRule(peers, ports)
    object.__setattr__(rule, "text", text)
    return rule


@cached_hash
@dataclass(frozen=True, slots=True)
class PolicySpec:
    """``spec`` with the API defaults applied."""

    pod_selector: LabelSelector = LabelSelector()
    policy_types: tuple[PolicyType, ...] = (INGRESS,)
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)


@cached_hash
@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """A normalised policy. ``source`` and ``origin`` ride along but never take part in ``==``."""

    namespace: str
    name: str
    spec: PolicySpec
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    source: Provenance | None = field(default=None, compare=False)
    origin: LiveOrigin | None = field(default=None, compare=False)
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)

    def key(self, cluster: str = DEFAULT_CLUSTER) -> PolicyKey:
        return PolicyKey(cluster, self.namespace, self.name)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)
