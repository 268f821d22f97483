"""Risk rules: what a drift opens (exposure) or closes (isolation), from the change set."""

from __future__ import annotations

from collections.abc import Iterator

from driftwatch.policy import NetworkPolicy
from driftwatch.rules.model import Direction, Hit, Rule, RuleContext, RuleFunc, Severity, Status
from driftwatch.semantic import (
    EGRESS,
    INGRESS,
    METADATA_API,
    PUBLIC_V4,
    PUBLIC_V6,
    Flow,
    PolicyView,
    PortSet,
)
from driftwatch.semantic import intervals as iv
from driftwatch.semantic import selectors as sel
from driftwatch.semantic.ipspace import block_intervals, covered_ports, describe, to_cidrs

__all__ = ["RISK_RULES"]

MAX_FLOWS = 10
"""Findings one rule reports for one drift; the rest are summed up in one more line."""

DNS = PortSet.build({"UDP": ((53, 53),), "TCP": ((53, 53),)}, ())


def _capped(hits: list[Hit]) -> Iterator[Hit]:
    yield from hits[:MAX_FLOWS]
    if len(hits) > MAX_FLOWS:
        yield Hit(f"... and {len(hits) - MAX_FLOWS} more", {"omitted": len(hits) - MAX_FLOWS})


def _added(ctx: RuleContext, direction: str) -> list[Flow]:
    return [f for f in ctx.changes.added if f.direction == direction] if ctx.changes else []


def _removed(ctx: RuleContext, direction: str) -> list[Flow]:
    return [f for f in ctx.changes.removed if f.direction == direction] if ctx.changes else []


def _views(ctx: RuleContext) -> tuple[PolicyView | None, PolicyView | None]:
    if ctx.changes is None:
        return None, None
    return ctx.changes.desired, ctx.changes.live


def _comparable_desired(ctx: RuleContext) -> PolicyView | None:
    """The desired view where its allowances apply to all the live policy's pods."""
    desired, live = _views(ctx)
    if desired is None or live is None or not sel.contains(desired.target, live.target):
        return None
    return desired


def _public(ctx: RuleContext, family: iv.Intervals) -> iv.Intervals:
    return iv.subtract(family, ctx.settings.trusted)


def _world_ports(ctx: RuleContext, view: PolicyView | None, direction: str) -> PortSet:
    """Ports open to every public IPv4 or every public IPv6 address."""
    if view is None:
        return PortSet()
    ips = view.direction(direction).ips
    return covered_ports(ips, _public(ctx, PUBLIC_V4)) | covered_ports(ips, _public(ctx, PUBLIC_V6))


def _new_world(ctx: RuleContext, direction: str) -> PortSet:
    _, live = _views(ctx)
    return _world_ports(ctx, live, direction) - _world_ports(
        ctx, _comparable_desired(ctx), direction
    )


def _flow_hit(flow: Flow, verb: str = "is now allowed", escalate: int = 0) -> Hit:
    return Hit(flow.describe(verb), flow.to_json(), escalate)


def _world(direction: str, prep: str) -> RuleFunc:
    def check(ctx: RuleContext) -> Iterator[Hit]:
        ports = _new_world(ctx, direction)
        _, live = _views(ctx)
        if ports and live is not None:
            on = f"on {ports.describe()}"
            yield Hit(
                f"{direction} to {live.describe_target()} {prep} every address on the internet "
                f"{on} is now allowed",
                {
                    "direction": direction,
                    "selected_pods": live.describe_target(),
                    "peer": {"cidrs": ["0.0.0.0/0", "::/0"]},
                    "ports": ports.to_json(),
                },
            )

    return check


def _public_cidr(ctx: RuleContext) -> Iterator[Hit]:
    if _new_world(ctx, INGRESS):
        return
    hits = []
    for flow in _added(ctx, INGRESS):
        public = iv.union(_public(ctx, PUBLIC_V4), _public(ctx, PUBLIC_V6))
        exposed = iv.intersect(flow.addresses, public)
        if exposed:
            hit = _flow_hit(flow)
            hits.append(Hit(hit.message, {**hit.evidence, "public": to_cidrs(exposed)}))
    yield from _capped(hits)


def _metadata(ctx: RuleContext) -> Iterator[Hit]:
    for flow in _added(ctx, EGRESS):
        if iv.intersect(flow.addresses, METADATA_API):
            _, live = _views(ctx)
            target = live.describe_target() if live else "pods"
            yield Hit(
                f"egress from {target} to the cloud metadata API "
                f"({describe(iv.intersect(flow.addresses, METADATA_API))}) "
                f"on {flow.ports.describe()} is now allowed",
                flow.to_json(),
            )


def _all_namespaces(ctx: RuleContext) -> Iterator[Hit]:
    hits = [
        _flow_hit(f) for f in _added(ctx, INGRESS) if f.pods is not None and f.pods.all_namespaces
    ]
    yield from _capped(hits)


def _broadened(ctx: RuleContext) -> Iterator[Hit]:
    hits = []
    for direction in (INGRESS, EGRESS):
        desired = _comparable_desired(ctx)
        if desired is None:
            continue
        for flow in _added(ctx, direction):
            if flow.pods is None:
                continue
            narrower = [
                peer
                for peer, ports in desired.direction(direction).pods
                if peer != flow.pods and flow.pods.contains(peer) and ports & flow.ports
            ]
            if narrower:
                was = narrower[0].describe(desired.namespace)
                hit = _flow_hit(flow)
                hits.append(
                    Hit(
                        f"{direction} peer {was} now matches {flow.peer_text()} "
                        f"on {flow.ports.describe()}",
                        {**hit.evidence, "was": was},
                    )
                )
    yield from _capped(hits)


def _ports_widened(ctx: RuleContext) -> Iterator[Hit]:
    desired = _comparable_desired(ctx)
    if desired is None:
        return
    hits = []
    for direction in (INGRESS, EGRESS):
        mine = desired.direction(direction)
        for flow in _added(ctx, direction):
            if flow.pods is not None:
                existed = any(peer.contains(flow.pods) for peer, _ in mine.pods)
                world = False
            else:
                existed = any(iv.intersect(flow.addresses, ((lo, hi),)) for lo, hi, _ in mine.ips)
                world = iv.contains(flow.addresses, _public(ctx, PUBLIC_V4)) or iv.contains(
                    flow.addresses, _public(ctx, PUBLIC_V6)
                )
            if not existed:
                continue
            sensitive = flow.ports & ctx.settings.sensitive_ports
            escalate = (1 if world else 0) + (1 if sensitive else 0)
            hit = _flow_hit(flow, "is now allowed", escalate)
            evidence = dict(hit.evidence)
            if sensitive:
                evidence["sensitive_ports"] = sensitive.to_json()
            hits.append(Hit(hit.message, evidence, escalate))
    yield from _capped(hits)


def _excepts(policy: NetworkPolicy | None, direction: str) -> iv.Intervals:
    if policy is None:
        return ()
    rules = policy.spec.ingress if direction == INGRESS else policy.spec.egress
    ranges: list[tuple[int, int]] = []
    for rule in rules:
        for peer in rule.peers:
            if peer.ip_block is not None and peer.ip_block.excepts:
                cidr = block_intervals(type(peer.ip_block)(peer.ip_block.cidr))
                ranges.extend(iv.subtract(cidr, block_intervals(peer.ip_block)))
    return iv.normalise(ranges)


def _except_removed(ctx: RuleContext) -> Iterator[Hit]:
    hits = []
    for direction in (INGRESS, EGRESS):
        excepted = _excepts(ctx.desired, direction)
        for flow in _added(ctx, direction):
            reopened = iv.intersect(flow.addresses, excepted)
            if reopened:
                hit = _flow_hit(flow)
                hits.append(
                    Hit(
                        f"{direction} range {describe(reopened)} that Git excepts is now allowed "
                        f"on {flow.ports.describe()}",
                        {**hit.evidence, "reopened": to_cidrs(reopened)},
                    )
                )
    yield from _capped(hits)


def _target_broadened(ctx: RuleContext) -> Iterator[Hit]:
    desired, live = _views(ctx)
    if desired is None or live is None or sel.contains(desired.target, live.target):
        return
    yield Hit(
        f"the policy now applies to {live.describe_target()} "
        f"(Git: {desired.describe_target()}), which gain its allowances",
        {"desired": desired.describe_target(), "live": live.describe_target()},
    )


def _default_deny_removed(ctx: RuleContext) -> Iterator[Hit]:
    desired, live = _views(ctx)
    if desired is None:
        return
    for direction in (INGRESS, EGRESS):
        mine = desired.direction(direction)
        if not mine.deny_all:
            continue
        why = None
        if live is None:
            why = "the policy is deleted"
        elif not live.direction(direction).isolated:
            why = f"policyTypes no longer includes {direction.capitalize()}"
        elif not live.direction(direction).deny_all:
            why = f"it now allows {direction} traffic"
        elif not sel.contains(live.target, desired.target):
            why = f"it now selects only {live.describe_target()}"
        if why:
            yield Hit(
                f"default deny of {direction} for {desired.describe_target()} is gone: {why}",
                {"direction": direction, "selected_pods": desired.describe_target()},
            )


def _isolation_removed(ctx: RuleContext) -> Iterator[Hit]:
    desired, live = _views(ctx)
    if desired is None or live is None:
        return
    for direction in (INGRESS, EGRESS):
        mine, theirs = desired.direction(direction), live.direction(direction)
        if mine.isolated and mine.rules and not theirs.isolated:
            yield Hit(
                f"policyTypes lost {direction.capitalize()}: {live.describe_target()} are no "
                f"longer isolated for {direction} by this policy, and its {direction} rules "
                "are ignored",
                {"direction": direction, "selected_pods": live.describe_target()},
            )


def _traffic_blocked(ctx: RuleContext) -> Iterator[Hit]:
    hits = [
        _flow_hit(f, "is no longer allowed") for d in (INGRESS, EGRESS) for f in _removed(ctx, d)
    ]
    desired, live = _views(ctx)
    for direction in (INGRESS, EGRESS):
        if live is None or not live.direction(direction).deny_all:
            continue
        if desired is None or not desired.direction(direction).isolated:
            hits.append(
                Hit(
                    f"all {direction} of {live.describe_target()} is now denied by this policy",
                    {"direction": direction, "selected_pods": live.describe_target()},
                )
            )
    yield from _capped(hits)


def _dns_blocked(ctx: RuleContext) -> Iterator[Hit]:
    _, live = _views(ctx)
    if live is not None and not live.egress.isolated:
        return
    for flow in _removed(ctx, EGRESS):
        lost = flow.ports & DNS
        if lost:
            yield Hit(
                f"egress from {flow.view.describe_target()} to {flow.peer_text()} on "
                f"{lost.describe()} (DNS) is no longer allowed",
                {**flow.to_json(), "ports": lost.to_json()},
            )
            return


def _ignored_rules(ctx: RuleContext) -> Iterator[Hit]:
    _, live = _views(ctx)
    if live is None:
        return
    for direction in (INGRESS, EGRESS):
        view = live.direction(direction)
        if view.rules and not view.isolated:
            yield Hit(
                f"{view.rules} {direction} rule(s) have no effect: policyTypes does not include "
                f"{direction.capitalize()}",
                {"direction": direction, "rules": view.rules},
            )


def _cosmetic(ctx: RuleContext) -> Iterator[Hit]:
    if (
        ctx.status is Status.MODIFIED
        and ctx.changes is not None
        and ctx.changes.equivalent
        and ctx.desired is not None
        and ctx.live is not None
        and ctx.desired.spec != ctx.live.spec
    ):
        yield Hit("the live spec is written differently from Git but allows the same traffic", {})


def _traffic_allowed(ctx: RuleContext) -> Iterator[Hit]:
    yield from _capped([_flow_hit(f) for d in (INGRESS, EGRESS) for f in _added(ctx, d)])


RISK_RULES: tuple[Rule, ...] = (
    Rule(
        "ingress-from-world",
        Severity.CRITICAL,
        Direction.EXPOSURE,
        "Ingress newly allowed from every address (empty `from`, or ipBlocks covering all "
        "public IPv4 or IPv6 space).",
        _world(INGRESS, "from"),
    ),
    Rule(
        "ingress-from-public-cidr",
        Severity.HIGH,
        Direction.EXPOSURE,
        "Ingress newly allowed from a public address range smaller than the world.",
        _public_cidr,
    ),
    Rule(
        "egress-to-world",
        Severity.HIGH,
        Direction.EXPOSURE,
        "Egress newly allowed to every address (empty `to`, or all public space).",
        _world(EGRESS, "to"),
    ),
    Rule(
        "egress-to-metadata-api",
        Severity.CRITICAL,
        Direction.EXPOSURE,
        "Egress newly allowed to the cloud metadata API (169.254.169.254, fd00:ec2::254).",
        _metadata,
    ),
    Rule(
        "ingress-from-all-namespaces",
        Severity.HIGH,
        Direction.EXPOSURE,
        "Ingress newly allowed from pods of every namespace, or of any namespace lacking a label.",
        _all_namespaces,
    ),
    Rule(
        "peer-selector-broadened",
        Severity.MEDIUM,
        Direction.EXPOSURE,
        "An allowed peer's selector now matches a superset of what it matched.",
        _broadened,
    ),
    Rule(
        "ports-widened",
        Severity.MEDIUM,
        Direction.EXPOSURE,
        "More ports or protocols allowed for an existing peer (high when the peer is the "
        "world; one level more for a sensitive port).",
        _ports_widened,
    ),
    Rule(
        "ipblock-except-removed",
        Severity.HIGH,
        Direction.EXPOSURE,
        "Ranges that Git excepts from an ipBlock are now allowed.",
        _except_removed,
    ),
    Rule(
        "target-broadened",
        Severity.MEDIUM,
        Direction.EXPOSURE,
        "spec.podSelector now selects pods Git's does not, and they gain its allowances.",
        _target_broadened,
    ),
    Rule(
        "default-deny-removed",
        Severity.CRITICAL,
        Direction.EXPOSURE,
        "A deny-all for a direction is deleted, no longer covers it, or now allows traffic.",
        _default_deny_removed,
    ),
    Rule(
        "isolation-removed",
        Severity.HIGH,
        Direction.EXPOSURE,
        "policyTypes lost Ingress or Egress on a policy that had rules for it.",
        _isolation_removed,
    ),
    Rule(
        "traffic-allowed",
        Severity.LOW,
        Direction.EXPOSURE,
        "Each flow the live policy allows that Git does not.",
        _traffic_allowed,
    ),
    Rule(
        "traffic-blocked",
        Severity.MEDIUM,
        Direction.ISOLATION,
        "Flows that Git allows are no longer allowed.",
        _traffic_blocked,
    ),
    Rule(
        "dns-egress-blocked",
        Severity.HIGH,
        Direction.ISOLATION,
        "Egress-isolated pods can no longer reach port 53 that Git allowed.",
        _dns_blocked,
    ),
    Rule(
        "ignored-rules",
        Severity.LOW,
        Direction.HYGIENE,
        "The live policy has rules for a direction not in its policyTypes.",
        _ignored_rules,
    ),
    Rule(
        "cosmetic",
        Severity.INFO,
        Direction.HYGIENE,
        "Live differs from Git but is semantically equivalent.",
        _cosmetic,
    ),
)
