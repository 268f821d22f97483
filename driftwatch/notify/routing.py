"""Which receivers hear about an incident: ordered routes, Alertmanager-style, and silences.

Routes are tried in order; a matching route adds its receivers and ends the walk unless it
says ``continue``. With no routes at all, every receiver gets everything. A silence mutes
matching incidents for a while (nothing is sent, the incident is still recorded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

__all__ = ["Facts", "Matcher", "Route", "Router", "Silence"]

_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(frozen=True, slots=True)
class Facts:
    """What routes and silences match on, for one incident."""

    cluster: str
    namespace: str
    name: str
    severity: str | None
    rules: frozenset[str]
    """The ids of the drift's findings."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """The policy's labels (live, else Git's)."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """Every given condition must hold; an empty matcher matches everything."""

    min_severity: str | None = None
    severities: frozenset[str] = frozenset()
    namespaces: tuple[str, ...] = ()
    """Globs."""
    clusters: tuple[str, ...] = ()
    """Globs."""
    rules: frozenset[str] = frozenset()
    """At least one finding with one of these rule ids."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Policy labels: each key must be present with a value matching the glob."""

    def matches(self, facts: Facts) -> bool:
        rank = -1 if facts.severity is None else _RANK.get(facts.severity, -1)
        if self.min_severity is not None and rank < _RANK[self.min_severity]:
            return False
        if self.severities and facts.severity not in self.severities:
            return False
        if self.namespaces and not _any_glob(facts.namespace, self.namespaces):
            return False
        if self.clusters and not _any_glob(facts.cluster, self.clusters):
            return False
        if self.rules and not (self.rules & facts.rules):
            return False
        return all(
            key in facts.labels and fnmatchcase(facts.labels[key], glob)
            for key, glob in self.labels.items()
        )


def _any_glob(value: str, globs: Iterable[str]) -> bool:
    return any(fnmatchcase(value, glob) for glob in globs)


@dataclass(frozen=True, slots=True)
class Route:
    match: Matcher
    receivers: tuple[str, ...]
    continue_: bool = False
    """Go on to the next routes after this one matched."""


@dataclass(frozen=True, slots=True)
class Silence:
    match: Matcher
    starts_at: float
    """Unix time."""
    ends_at: float
    comment: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class Router:
    routes: Sequence[Route]
    receivers: Sequence[str]
    """Every configured receiver, in configuration order."""
    silences: Sequence[Silence] = ()

    def receivers_for(self, facts: Facts) -> list[str]:
        """The receivers for ``facts``, each once, in the order routes name them."""
        if not self.routes:
            return list(self.receivers)
        chosen: dict[str, None] = {}
        for route in self.routes:
            if route.match.matches(facts):
                chosen.update(dict.fromkeys(route.receivers))
                if not route.continue_:
                    break
        return list(chosen)

    def silenced(self, facts: Facts, now: float) -> Silence | None:
        """The active silence that mutes ``facts``, if any."""
        return next((s for s in self.silences if s.active(now) and s.match.matches(facts)), None)
