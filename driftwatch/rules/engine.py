"""The rule engine: runs the enabled rules over one pair, applying configured severities."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from driftwatch.rules.model import (
    Finding,
    Hit,
    Rule,
    RuleContext,
    RuleSettings,
    Severity,
    Status,
)
from driftwatch.rules.risk import RISK_RULES, SENSITIVE_PORTS
from driftwatch.rules.status import STATUS_RULES
from driftwatch.semantic import changes, view_of

__all__ = ["CATALOGUE", "Escalation", "RuleEngine", "RuleOptions", "max_severity"]

CATALOGUE: tuple[Rule, ...] = STATUS_RULES + RISK_RULES
"""Every rule driftwatch ships, in catalogue order."""


@dataclass(frozen=True, slots=True)
class Escalation:
    """Findings in namespaces matching one of ``namespaces`` (globs) rise ``levels``."""

    namespaces: tuple[str, ...]
    levels: int = 1


@dataclass(frozen=True, slots=True)
class RuleOptions:
    """What the configuration says about rules (already validated)."""

    disabled: frozenset[str] = frozenset()
    severity: Mapping[str, Severity] = field(default_factory=dict)
    escalations: Sequence[Escalation] = ()
    settings: RuleSettings = field(
        default_factory=lambda: RuleSettings(sensitive_ports=SENSITIVE_PORTS)
    )
    """Trusted ranges and sensitive ports; by default the built-in sensitive ports."""


def max_severity(findings: Iterable[Finding]) -> Severity | None:
    """The highest severity among ``findings``; ``None`` when there are none."""
    return max((f.severity for f in findings), default=None)


class RuleEngine:
    """Runs the enabled rules of a catalogue over one (desired, live) pair."""

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

    def _namespace_levels(self, namespace: str) -> int:
        return sum(
            e.levels
            for e in self._options.escalations
            if any(fnmatchcase(namespace, glob) for glob in e.namespaces)
        )

    def evaluate(self, ctx: RuleContext) -> tuple[Finding, ...]:
        """Findings for ``ctx``; the change set is computed here once if not given.

        The rules always see this engine's settings, whatever ``ctx.settings`` holds.
        """
        cs = ctx.changes
        if cs is None and ctx.status is not Status.IN_SYNC:
            cs = changes(
                view_of(ctx.desired) if ctx.desired is not None else None,
                view_of(ctx.live) if ctx.live is not None else None,
            )
        settings = self._options.settings
        if cs is not ctx.changes or ctx.settings is not settings:
            # A new context (and a fresh memo) rather than dataclasses.replace: per drift.
            ctx = RuleContext(ctx.key, ctx.status, ctx.desired, ctx.live, cs, settings)
        extra = self._namespace_levels(ctx.key.namespace) if self._options.escalations else 0
        overrides = self._options.severity
        findings: list[Finding] = []
        for rule in self._rules:
            base: Severity | None = None
            for raw in rule.check(ctx):
                if base is None:
                    base = overrides.get(rule.id, rule.severity)
                hit = raw if isinstance(raw, Hit) else Hit(*raw)
                findings.append(
                    Finding(
                        rule.id,
                        base.raised(hit.escalate + extra),
                        rule.direction,
                        hit.message,
                        hit.evidence,
                    )
                )
        return tuple(findings)
