"""Which keys driftwatch leaves alone, as configured."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from driftwatch.policy import LabelSelector, NetworkPolicy, PolicyKey

__all__ = ["IGNORE_ANNOTATION", "IgnoreRules", "PolicyMatcher"]

IGNORE_ANNOTATION = "driftwatch.io/ignore"
"""A live or desired policy annotated ``driftwatch.io/ignore: "true"`` is left alone."""


@dataclass(frozen=True, slots=True)
class PolicyMatcher:
    """Matches policies by name glob, namespace glob and label selector (all must hold)."""

    name: str = "*"
    namespace: str = "*"
    selector: LabelSelector | None = None

    def matches(self, key: PolicyKey, policy: NetworkPolicy | None) -> bool:
        if not fnmatchcase(key.name, self.name) or not fnmatchcase(key.namespace, self.namespace):
            return False
        if self.selector is None:
            return True
        return policy is not None and self.selector.matches(policy.label_map)


@dataclass(frozen=True, slots=True)
class IgnoreRules:
    """Namespaces (globs) and policies to leave out of the comparison."""

    namespaces: Sequence[str] = ()
    policies: Sequence[PolicyMatcher] = ()

    def ignores(
        self, key: PolicyKey, desired: NetworkPolicy | None, live: NetworkPolicy | None
    ) -> bool:
        if any(fnmatchcase(key.namespace, glob) for glob in self.namespaces):
            return True
        for side in (desired, live):
            if side is not None and dict(side.annotations).get(IGNORE_ANNOTATION) == "true":
                return True
        return any(m.matches(key, desired) or m.matches(key, live) for m in self.policies)
