"""The configuration file's schema (pydantic v2).

Validated once at start-up; the values are then turned into the plain dataclasses
the core takes (``IgnoreRules``, ``RuleOptions``), so nothing below this layer
depends on pydantic and no setting lives in a module global.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from driftwatch.drift import IgnoreRules, PolicyMatcher
from driftwatch.policy import LabelSelector, parse_selector_string
from driftwatch.policy.parse import PolicyError, parse_label_selector
from driftwatch.rules import CATALOGUE, RuleOptions, Severity

__all__ = ["IgnoreSettings", "PolicyIgnore", "RuleSettings", "Settings"]

_RULE_IDS = frozenset(r.id for r in CATALOGUE)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyIgnore(_Model):
    """Policies to leave alone: every given condition must hold."""

    name: str = "*"
    """Glob on the policy name (``allow-*``)."""
    namespace: str = "*"
    """Glob on the policy namespace."""
    selector: str | dict[str, object] | None = None
    """Label selector on the policy's own labels: ``team=mesh,!managed`` or
    ``{matchLabels: {...}, matchExpressions: [...]}``."""

    @field_validator("selector")
    @classmethod
    def _valid_selector(
        cls, value: str | dict[str, object] | None
    ) -> str | dict[str, object] | None:
        cls._to_selector(value)
        return value

    @staticmethod
    def _to_selector(value: str | dict[str, object] | None) -> LabelSelector | None:
        if value is None:
            return None
        if isinstance(value, str):
            return parse_selector_string(value)
        try:
            return parse_label_selector(value)
        except PolicyError as e:
            raise ValueError(e.message) from e

    def to_matcher(self) -> PolicyMatcher:
        return PolicyMatcher(self.name, self.namespace, self._to_selector(self.selector))


class IgnoreSettings(_Model):
    """What to leave out of the comparison."""

    namespaces: list[str] = Field(default_factory=list)
    """Namespace globs (``kube-*``) whose policies are never compared."""
    policies: list[PolicyIgnore] = Field(default_factory=list)
    """Individual policies to leave alone."""

    def to_rules(self) -> IgnoreRules:
        return IgnoreRules(tuple(self.namespaces), tuple(p.to_matcher() for p in self.policies))


SeverityName = Literal["info", "low", "medium", "high", "critical"]


class RuleSettings(_Model):
    """The ``rules:`` section: which rules run and how loud they are."""

    disabled: list[str] = Field(default_factory=list)
    """Rule ids that never fire."""
    severity: dict[str, SeverityName] = Field(default_factory=dict)
    """Severity overrides by rule id (``spec-modified: high``)."""

    @field_validator("disabled")
    @classmethod
    def _known_ids(cls, value: list[str]) -> list[str]:
        _check_ids(value)
        return value

    @field_validator("severity")
    @classmethod
    def _known_keys(cls, value: dict[str, str]) -> dict[str, str]:
        _check_ids(value)
        return value

    def to_options(self) -> RuleOptions:
        return RuleOptions(
            disabled=frozenset(self.disabled),
            severity={k: Severity.parse(v) for k, v in self.severity.items()},
        )


def _check_ids(ids: Iterable[str]) -> None:
    unknown = sorted(set(ids) - _RULE_IDS)
    if unknown:
        raise ValueError(f"unknown rule id(s) {', '.join(unknown)}; `driftwatch rules` lists them")


class Settings(_Model):
    """The driftwatch configuration file."""

    default_namespace: str = "default"
    """Namespace for manifests that do not name one (as ``kubectl apply`` would use)."""
    ignore: IgnoreSettings = Field(default_factory=IgnoreSettings)
    """Namespaces and policies to leave alone."""
    rules: RuleSettings = Field(default_factory=RuleSettings)
    """Rule selection and severity overrides."""
