"""The rule engine: runs the enabled rules over one pair, applying configured severities."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from driftwatch.rules.model import Finding, Rule, RuleContext, Severity
from driftwatch.rules.status import STATUS_RULES

__all__ = ["CATALOGUE", "RuleEngine", "RuleOptions", "max_severity"]

CATALOGUE: tuple[Rule, ...] = STATUS_RULES
"""Every rule driftwatch ships, in catalogue order."""


@dataclass(frozen=True, slots=True)
class RuleOptions:
    """What the configuration says about rules (already validated)."""

    disabled: frozenset[str] = frozenset()
    severity: Mapping[str, Severity] = field(default_factory=dict)


def max_severity(findings: Iterable[Finding]) -> Severity | None:
    """The highest severity among ``findings``; ``None`` when there are none."""
    return max((f.severity for f in findings), default=None)


class RuleEngine:
    """Runs the enabled rules of a catalogue over a :class:`RuleContext`."""

    __slots__ = ("_options", "_rules")

    def __init__(
        self, options: RuleOptions | None = None, catalogue: Iterable[Rule] = CATALOGUE
    ) -> None:
        self._options = options or RuleOptions()
        rules = tuple(catalogue)
        known = {r.id for r in rules}
        unknown = sorted((self._options.disabled | self._options.severity.keys()) - known)
        if unknown:
            raise ValueError(f"unknown rule id(s): {', '.join(unknown)}")
        self._rules = tuple(r for r in rules if r.id not in self._options.disabled)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def evaluate(self, ctx: RuleContext) -> tuple[Finding, ...]:
        findings: list[Finding] = []
        for rule in self._rules:
            severity = self._options.severity.get(rule.id, rule.severity)
            for message, evidence in rule.check(ctx):
                findings.append(Finding(rule.id, severity, rule.direction, message, evidence))
        return tuple(findings)
