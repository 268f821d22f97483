"""Risk rules: what a drift opens (exposure) or closes (isolation), from the change set."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar, cast

from driftwatch.policy import NetworkPolicy, PolicyRule
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
from driftwatch.semantic.ipspace import (
    ALL_V4,
    ALL_V6,
    build_map,
    covered_ports,
    describe,
    to_cidrs,
)
from driftwatch.semantic.model import allows_same, rules_allowance, rules_excepted

__all__ = ["RISK_RULES", "SENSITIVE_PORTS"]

MAX_FLOWS = 10
"""Findings one rule reports for one drift; the rest are summed up in one more line."""

DNS = PortSet.build({"UDP": ((53, 53),), "TCP": ((53, 53),)}, ())

SENSITIVE_PORTS = PortSet.build(
    {
        "TCP": (
            (22, 23), (2375, 2376), (2379, 2380), (3306, 3306), (3389, 3389), (5432, 5432),
            (6379, 6379), (6443, 6443), (9200, 9200), (10250, 10250), (27017, 27017),
        )
    },
    (),
)  # fmt: skip
"""The built-in sensitive ports (ssh, telnet, Docker, etcd, MySQL, RDP, PostgreSQL, Redis,
Kubernetes API, Elasticsearch, kubelet, MongoDB): the default of ``RuleOptions.settings``,
the same as the configuration's built-in list."""

T = TypeVar("T")


def _capped(hits: list[Hit]) -> Iterator[Hit]:
    yield from hits[:MAX_FLOWS]
    if len(hits) > MAX_FLOWS:
        yield Hit(f"... and {len(hits) - MAX_FLOWS} more", {"omitted": len(hits) - MAX_FLOWS})


def _added(ctx: RuleContext, direction: str) -> tuple[Flow, ...]:
    return ctx.changes.added_in(direction) if ctx.changes else ()


def _removed(ctx: RuleContext, direction: str) -> tuple[Flow, ...]:
    return ctx.changes.removed_in(direction) if ctx.changes else ()


def _views(ctx: RuleContext) -> tuple[PolicyView | None, PolicyView | None]:
    if ctx.changes is None:
        return None, None
    return ctx.changes.desired, ctx.changes.live


def _memo(ctx: RuleContext, key: object, compute: Callable[[], T]) -> T:
    """``compute()`` once per context: several rules need the same derived values."""
    if key not in ctx.memo:
        ctx.memo[key] = compute()
    return cast(T, ctx.memo[key])


def _comparable_desired(ctx: RuleContext) -> PolicyView | None:
    """The desired view where its allowances apply to all the live policy's pods."""

    def compute() -> PolicyView | None:
        desired, live = _views(ctx)
        if desired is None or live is None or not sel.contains(desired.target, live.target):
            return None
        return desired

    return _memo(ctx, "comparable", compute)


def _public(ctx: RuleContext, family: iv.Intervals) -> iv.Intervals:
    return _memo(ctx, ("public", family), lambda: iv.subtract(family, ctx.settings.trusted))


_FAMILIES: tuple[tuple[str, str, iv.Intervals, iv.Intervals], ...] = (
    ("IPv4", "0.0.0.0/0", ALL_V4, PUBLIC_V4),
    ("IPv6", "::/0", ALL_V6, PUBLIC_V6),
)
"""Per address family: its name, its whole-space CIDR, all of it, and its public part."""


def _is_world(ctx: RuleContext, addresses: iv.Intervals) -> bool:
    """Whether ``addresses`` hold every (untrusted) public address of some family."""
    for _, _, _, family in _FAMILIES:
        public = _public(ctx, family)
        if public and iv.contains(addresses, public):
            return True
    return False


def _world_ports(
    ctx: RuleContext, view: PolicyView | None, direction: str, public: iv.Intervals
) -> PortSet:
    """Ports open to every (untrusted) public address of one family."""
    if view is None:
        return PortSet()
    return covered_ports(view.direction(direction).ips, _public(ctx, public))


def _live_world_ports(ctx: RuleContext, direction: str, family: iv.Intervals) -> PortSet:
    """:func:`_world_ports` of the live side; from Git's map and the gained flows where they
    make up the live side exactly, so the live map (a sweep over every rule's blocks) is not
    built for this."""
    desired, live = _views(ctx)
    if (
        desired is None
        or live is None
        or _comparable_desired(ctx) is None
        or not sel.contains(live.target, desired.target)
        or not desired.direction(direction).isolated
        or not live.direction(direction).isolated
        or any(f.pods is None for f in _removed(ctx, direction))
    ):
        return _world_ports(ctx, live, direction, family)
    # Nothing lost and both sides compared: live = Git + gained, address by address.
    space = _public(ctx, family)
    near = [
        (((lo, hi),), ports)
        for lo, hi, ports in desired.direction(direction).ips
        if iv.intersect(((lo, hi),), space)
    ]
    gained = [(f.addresses, f.ports) for f in _added(ctx, direction) if f.pods is None]
    return covered_ports(build_map(near + gained), space)


def _new_world(ctx: RuleContext, direction: str) -> dict[str, PortSet]:
    """Ports newly open to a whole family's public space, by family CIDR.

    Per family: Git allowing all of IPv4 does not make all of IPv6 old news.
    """

    def compute() -> dict[str, PortSet]:
        out: dict[str, PortSet] = {}
        if not any(f.pods is None for f in _added(ctx, direction)):
            # No address gained a port: none can be newly open to all of a family.
            return out
        desired = _comparable_desired(ctx)
        # Open to all of a family's public space means its every address is allowed: if Git's
        # addresses and the gained ones together leave one out, nothing is.
        reach = iv.union(
            desired.direction(direction).addresses if desired is not None else (),
            iv.normalise(r for f in _added(ctx, direction) for r in f.addresses),
        )
        for _, cidr, _, public in _FAMILIES:
            if not iv.contains(reach, _public(ctx, public)):
                continue
            ports = _live_world_ports(ctx, direction, public) - _world_ports(
                ctx, desired, direction, public
            )
            if ports:
                out[cidr] = ports
        return out

    return _memo(ctx, ("new-world", direction), compute)


def _flow_hit(flow: Flow, verb: str = "is now allowed", escalate: int = 0) -> Hit:
    return Hit(flow.describe(verb), flow.to_json(), escalate)


def _world(direction: str) -> RuleFunc:
    def check(ctx: RuleContext) -> Iterator[Hit]:
        _, live = _views(ctx)
        if live is None:
            return
        by_ports: dict[PortSet, list[str]] = {}
        for cidr, ports in _new_world(ctx, direction).items():
            by_ports.setdefault(ports, []).append(cidr)
        target = live.describe_target()
        for ports, cidrs in by_ports.items():
            names = [name for name, cidr, _, _ in _FAMILIES if cidr in cidrs]
            every = "every address" if len(names) == len(_FAMILIES) else f"every {names[0]} address"
            where = (
                f"ingress to {target} from {every}"
                if direction == INGRESS
                else f"egress from {target} to {every}"
            )
            yield Hit(
                f"{where} on the internet on {ports.describe()} is now allowed",
                {
                    "direction": direction,
                    "selected_pods": target,
                    "peer": {"cidrs": cidrs},
                    "ports": ports.to_json(),
                },
            )

    return check


def _public_cidr(ctx: RuleContext) -> Iterator[Hit]:
    world = _new_world(ctx, INGRESS)
    hits = []
    for flow in _added(ctx, INGRESS):
        if flow.pods is not None:
            continue
        for _, cidr, space, public in _FAMILIES:
            # What ingress-from-world reports for this family is not reported again here.
            ports = flow.ports - world.get(cidr, PortSet())
            exposed = iv.intersect(flow.addresses, _public(ctx, public))
            if not ports or not exposed:
                continue
            part = Flow(INGRESS, flow.view, ports, addresses=iv.intersect(flow.addresses, space))
            hit = _flow_hit(part)
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
                peer.describe(desired.namespace)
                for peer, ports in desired.direction(direction).contained(flow.pods)
                if peer != flow.pods and ports & flow.ports
            ]
            if narrower:
                was = min(narrower)
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
                existed = bool(mine.ports_for(flow.pods)) or (
                    next(mine.containing(flow.pods), None) is not None
                )
                world = False
            else:
                existed = any(iv.intersect(flow.addresses, ((lo, hi),)) for lo, hi, _ in mine.ips)
                world = _is_world(ctx, flow.addresses)
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


def _excepts(ctx: RuleContext, direction: str) -> iv.Intervals:
    """The ranges Git's ipBlocks except for ``direction``."""
    desired, _ = _views(ctx)
    if desired is not None and desired.direction(direction).isolated:
        return desired.direction(direction).excepted  # analysed with the rules, once per text
    if ctx.desired is None:
        return ()
    # Rules of a direction Git does not isolate are not in its view: analyse them here.
    return rules_excepted(_rules_of(ctx.desired, direction), ctx.desired.namespace)


def _except_removed(ctx: RuleContext) -> Iterator[Hit]:
    hits = []
    for direction in (INGRESS, EGRESS):
        excepted = _excepts(ctx, direction)
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


def _rules_of(policy: NetworkPolicy, direction: str) -> tuple[PolicyRule, ...]:
    return policy.spec.ingress if direction == INGRESS else policy.spec.egress


def _ignored_in_git(ctx: RuleContext, direction: str) -> bool:
    """Git ignores the same rules for ``direction``: the drift adds nothing to report."""
    desired, _ = _views(ctx)
    if ctx.desired is None or ctx.live is None or desired is None:
        return False
    if desired.direction(direction).isolated:
        return False
    ns = ctx.live.namespace
    return allows_same(
        rules_allowance(_rules_of(ctx.live, direction), ns),
        rules_allowance(_rules_of(ctx.desired, direction), ns),
    )


def _ignored_rules(ctx: RuleContext) -> Iterator[Hit]:
    _, live = _views(ctx)
    if live is None:
        return
    for direction in (INGRESS, EGRESS):
        view = live.direction(direction)
        if view.rules and not view.isolated and not _ignored_in_git(ctx, direction):
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
        _world(INGRESS),
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
        _world(EGRESS),
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
