"""Status rules: what differs between Git and the cluster, structurally."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from driftwatch.policy import NetworkPolicy
from driftwatch.rules.model import Direction, Rule, RuleContext, Severity, Status

__all__ = ["STATUS_RULES"]

Hit = tuple[str, Mapping[str, Any]]


def _changed_keys(
    desired: tuple[tuple[str, str], ...], live: tuple[tuple[str, str], ...]
) -> dict[str, list[str]]:
    want, have = dict(desired), dict(live)
    return {
        "added": sorted(have.keys() - want.keys()),
        "removed": sorted(want.keys() - have.keys()),
        "changed": sorted(k for k in want.keys() & have.keys() if want[k] != have[k]),
    }


def _missing(ctx: RuleContext) -> Iterator[Hit]:
    if ctx.status is Status.MISSING:
        yield (
            f"NetworkPolicy {ctx.key.namespace}/{ctx.key.name} is in Git but not in the cluster",
            {},
        )


def _unmanaged(ctx: RuleContext) -> Iterator[Hit]:
    if ctx.status is Status.UNMANAGED:
        yield (
            f"NetworkPolicy {ctx.key.namespace}/{ctx.key.name} is in the cluster but not in Git",
            {},
        )


def _both(ctx: RuleContext) -> tuple[NetworkPolicy, NetworkPolicy] | None:
    if ctx.status is not Status.MODIFIED or ctx.desired is None or ctx.live is None:
        return None
    return ctx.desired, ctx.live


def _spec_modified(ctx: RuleContext) -> Iterator[Hit]:
    pair = _both(ctx)
    if pair is None or pair[0].spec == pair[1].spec:
        return
    if ctx.changes is not None and ctx.changes.equivalent:
        return  # written differently, same traffic: the `cosmetic` rule says so
    desired, live = pair
    fields = [
        name
        for name, a, b in (
            ("podSelector", desired.spec.pod_selector, live.spec.pod_selector),
            ("policyTypes", desired.spec.policy_types, live.spec.policy_types),
            ("ingress", desired.spec.ingress, live.spec.ingress),
            ("egress", desired.spec.egress, live.spec.egress),
        )
        if a != b
    ]
    yield f"spec differs from Git in {', '.join(fields)}", {"fields": fields}


def _metadata_modified(ctx: RuleContext) -> Iterator[Hit]:
    pair = _both(ctx)
    if pair is None:
        return
    desired, live = pair
    evidence: dict[str, Any] = {}
    if desired.labels != live.labels:
        evidence["labels"] = _changed_keys(desired.labels, live.labels)
    if desired.annotations != live.annotations:
        evidence["annotations"] = _changed_keys(desired.annotations, live.annotations)
    if evidence:
        yield f"{' and '.join(evidence)} differ from Git", evidence


STATUS_RULES: tuple[Rule, ...] = (
    Rule(
        "policy-missing",
        Severity.HIGH,
        Direction.HYGIENE,
        "A policy in Git is absent from the cluster.",
        _missing,
    ),
    Rule(
        "policy-unmanaged",
        Severity.MEDIUM,
        Direction.HYGIENE,
        "A policy in the cluster is not in Git.",
        _unmanaged,
    ),
    Rule(
        "spec-modified",
        Severity.MEDIUM,
        Direction.HYGIENE,
        "The live spec differs from Git.",
        _spec_modified,
    ),
    Rule(
        "metadata-modified",
        Severity.INFO,
        Direction.HYGIENE,
        "Only labels or annotations differ from Git.",
        _metadata_modified,
    ),
)
