"""Property: where the risk engine's policy-level change set is empty, the workload-level
connectivity diff is empty too (a change that allows and blocks nothing new, for any pod,
moves no workload pair), over generated policies of a small world and every workload
that world can hold.

The policy-level change set is what the risk engine reports as moving the perimeter: its
exposure and isolation findings. They cover the flows of ``semantic.changes`` and also
what is not a flow: isolation switched on or off (a deny-all ingress policy rewritten as
a deny-all egress one gains and loses no flow of its own, but opens every shop pod's
ingress; hypothesis found that case, and ``default-deny-removed`` reports it).
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.connectivity import Connectivity, connectivity_diff
from driftwatch.drift import compare
from driftwatch.policy import NetworkPolicy, parse_policy
from driftwatch.rules import Direction, RuleEngine
from driftwatch.semantic import changes, view_of
from driftwatch.topology import ContainerPort, Topology, Workload
from tests.strategies import SMALL_KEYS, SMALL_NAMESPACES, small_world_policies

VALUES = (None, "x", "y", "z")


def _world() -> Topology:
    """Every pod label combination of the small world, in each namespace; half with the
    named ports the policies use, half with ``http`` on another number and no ``dns``."""
    workloads = []
    for ns in SMALL_NAMESPACES:
        for n, values in enumerate(itertools.product(VALUES, repeat=len(SMALL_KEYS))):
            labels = tuple((k, v) for k, v in zip(SMALL_KEYS, values, strict=True) if v)
            ports = (
                (ContainerPort(8080, "TCP", "http"), ContainerPort(53, "UDP", "dns"))
                if n % 2
                else (ContainerPort(9090, "TCP", "http"),)
            )
            workloads.append(Workload(ns, f"w{n}", "Deployment", labels, ports))
    return Topology.build(workloads, {"shop": {"a": "x"}, "other": {}})


WORLD = _world()
ENGINE = RuleEngine()


def _reordered(manifest: dict[str, Any]) -> dict[str, Any]:
    """The same policy written differently: rules, peers and ports in reverse order."""
    spec = dict(manifest["spec"])
    for field, peers in (("ingress", "from"), ("egress", "to")):
        if field in spec:
            spec[field] = [
                {k: list(reversed(v)) if k in (peers, "ports") else v for k, v in rule.items()}
                for rule in reversed(spec[field])
            ]
    return dict(manifest, spec=spec)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[NetworkPolicy, NetworkPolicy]:
    desired = draw(small_world_policies())
    live = _reordered(desired) if draw(st.booleans()) else draw(small_world_policies())
    return parse_policy(desired), parse_policy(live)


@settings(max_examples=200, deadline=None)
@given(pairs())
def test_no_policy_level_change_means_no_workload_level_change(
    pair: tuple[NetworkPolicy, NetworkPolicy],
) -> None:
    desired, live = pair
    drift = compare(desired.key(), desired, live, ENGINE)
    moving = [f.rule for f in drift.findings if f.direction is not Direction.HYGIENE]
    diff = connectivity_diff(Connectivity(WORLD, [desired]), Connectivity(WORLD, [live]))
    if not moving:
        flows = changes(view_of(desired), view_of(live))
        assert not flows.added
        assert not flows.removed
        assert diff == [], [str(d) for d in diff[:3]]


def test_the_isolation_switch_hypothesis_found_is_reported_by_both() -> None:
    def deny(types: list[str]) -> NetworkPolicy:
        return parse_policy({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "small", "namespace": "shop"},
            "spec": {"podSelector": {}, "policyTypes": types},
        })  # fmt: skip

    desired, live = deny(["Ingress"]), deny(["Egress"])
    flows = changes(view_of(desired), view_of(live))
    assert not flows.added
    assert not flows.removed
    drift = compare(desired.key(), desired, live, ENGINE)
    assert "default-deny-removed" in [f.rule for f in drift.findings]
    diff = connectivity_diff(Connectivity(WORLD, [desired]), Connectivity(WORLD, [live]))
    assert {d.diff_type for d in diff} == {"added", "removed"}
