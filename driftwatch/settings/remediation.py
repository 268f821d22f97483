"""The ``remediation:`` section: which drifts driftwatch reverts to Git by itself.

An ordered list of matchers picks a mode per drift (the first matcher that matches wins; no
match: ``alert``). ``revert`` re-applies Git's version of a modified or missing policy and
deletes an unmanaged one; ``dry_run`` logs and records what would be reverted and changes
nothing. ``max_reverts`` and ``window`` stop a fight with another writer (a controller, a
CI job, a person re-applying their change): after that many reverts of one policy within
the window, driftwatch stops reverting it and raises a ``revert-loop`` action instead.
Reverting needs write access the read-only role does not grant (see the README).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator

from driftwatch.rules import CATALOGUE, Severity
from driftwatch.values.durations import Duration, at_least
from driftwatch.values.secrets import SecretFileModel

__all__ = ["Mode", "RemediationMatcher", "RemediationSettings"]

Mode = Literal["alert", "revert"]
SeverityName = Literal["info", "low", "medium", "high", "critical"]
_RULE_IDS = frozenset(r.id for r in CATALOGUE)
_GLOB = re.compile(r"[*?\[]")


class _Model(SecretFileModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class RemediationMatcher(_Model):
    """Drifts to handle one way: every condition given must hold (none given: every drift)."""

    namespaces: list[str] = Field(default_factory=list)
    """Namespace globs (``prod-*``, ``payments``); empty: every namespace."""
    min_severity: SeverityName | None = None
    """Only drifts at least this severe (``high``: high and critical); null: any severity."""
    rules: list[str] = Field(default_factory=list)
    """Only drifts with a finding of one of these rule ids (``ingress-from-world``);
    empty: any finding."""
    mode: Mode = "alert"
    """``revert``: put Git's version back (re-apply it, recreate it, or delete a policy Git
    does not have); ``alert``: only notify."""

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        unknown = [r for r in value if r not in _RULE_IDS]
        if unknown:
            raise ValueError(
                f"unknown rule id {', '.join(unknown)} (`driftwatch rules` lists them)"
            )
        return value

    def matches(self, namespace: str, severity: Severity | None, rules: Iterable[str]) -> bool:
        if self.namespaces and not any(fnmatchcase(namespace, g) for g in self.namespaces):
            return False
        if self.min_severity is not None and (
            severity is None or severity < Severity.parse(self.min_severity)
        ):
            return False
        return not self.rules or not set(self.rules).isdisjoint(rules)


class RemediationSettings(_Model):
    """The ``remediation:`` section (absent: alert only, driftwatch never writes)."""

    matchers: list[RemediationMatcher] = Field(default_factory=list)
    """Tried in order; the first that matches a drift decides its mode (none: ``alert``)."""
    dry_run: bool = False
    """Log and record (on the incident) what would be reverted, and change nothing; needs no
    write access."""
    max_reverts: int = Field(default=3, ge=1, le=100)
    """Reverts of one policy within ``window`` after which driftwatch stops reverting it and
    raises a critical ``revert-loop`` action naming the other writer."""
    window: Annotated[Duration, at_least(1)] = 600.0
    """The loop window (``10m``); a policy stopped for looping is reverted again once this
    long has passed without a revert of it."""

    def mode_for(self, namespace: str, severity: Severity | None, rules: Iterable[str]) -> Mode:
        """The first matching matcher's mode, else ``alert``."""
        found = frozenset(rules)
        for matcher in self.matchers:
            if matcher.matches(namespace, severity, found):
                return matcher.mode
        return "alert"

    @property
    def writes(self) -> bool:
        """Whether driftwatch may write to the cluster by itself (a ``revert`` matcher and
        not ``dry_run``): then it checks its write access at start-up."""
        return not self.dry_run and any(m.mode == "revert" for m in self.matchers)

    def write_scope(self) -> tuple[str, ...] | None:
        """The namespaces driftwatch may revert in, when every ``revert`` matcher names
        literal namespaces; ``None``: anywhere (a glob, or a matcher without namespaces)."""
        names: list[str] = []
        for matcher in self.matchers:
            if matcher.mode != "revert":
                continue
            if not matcher.namespaces or any(_GLOB.search(n) for n in matcher.namespaces):
                return None
            names.extend(n for n in matcher.namespaces if n not in names)
        return tuple(names)
