"""Every drift carries its blast radius where the topology is known, and the rules use it:
a policy selecting no workload is lowered one level, a sensitive workload's exposure
raised one level; the radius is exactly the connectivity diff of the two cluster states."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.connectivity import Connectivity, blast_radius, connectivity_diff
from driftwatch.drift import DriftTracker, EventKind
from driftwatch.drift.blast import SELECTS_NO_WORKLOAD, SENSITIVE_WORKLOAD_EXPOSED, Sensitivity
from driftwatch.notify.body import incident_body
from driftwatch.notify.model import Kind, Notification
from driftwatch.notify.pagerduty import event_for
from driftwatch.notify.slack_render import render
from driftwatch.policy import NetworkPolicy, parse_policy
from driftwatch.policy.render import to_manifest
from driftwatch.rules import RuleEngine, Severity
from driftwatch.topology import Topology, topology_of
from tests.strategies import small_world_policies
from tests.test_connectivity_properties import WORLD


def netpol(name: str, ns: str, spec: dict[str, Any]) -> NetworkPolicy:
    return parse_policy(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }
    )


def workload(kind: str, name: str, ns: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {"template": {"metadata": {"labels": labels}, "spec": {"containers": []}}},
    }


TOPOLOGY = topology_of(
    [
        workload("StatefulSet", "db", "prod", {"app": "db"}),
        workload("Deployment", "api", "checkout", {"app": "api"}),
    ]
)
FROM_API = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "api"}}}
GIT_DB = netpol("db", "prod", {
    "podSelector": {"matchLabels": {"app": "db"}},
    "ingress": [{"from": [FROM_API], "ports": [{"port": 5432}]}],
})  # fmt: skip
OPEN_DB = netpol("db", "prod", {
    "podSelector": {"matchLabels": {"app": "db"}},
    "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 5432}]}],
})  # fmt: skip
GIT_GHOST = netpol(
    "ghost", "prod", {"podSelector": {"matchLabels": {"app": "gone"}}, "ingress": []}
)
OPEN_GHOST = netpol("ghost", "prod", {
    "podSelector": {"matchLabels": {"app": "gone"}},
    "ingress": [{"ports": [{"port": 5432}]}],
})  # fmt: skip


def tracker(sensitivity: Sensitivity | None = None) -> DriftTracker:
    t = DriftTracker(RuleEngine(), cluster="prod-eu", sensitivity=sensitivity)
    t.set_desired({("prod", "db"): GIT_DB, ("prod", "ghost"): GIT_GHOST})
    t.set_live({("prod", "db"): GIT_DB, ("prod", "ghost"): GIT_GHOST})
    t.set_topology(TOPOLOGY)
    assert t.drain() == []
    return t


def test_a_drift_names_the_workloads_it_exposes_and_isolates() -> None:
    t = tracker()
    t.put_live(OPEN_DB)
    [event] = t.drain()
    radius = event.drift.blast_radius
    assert radius is not None
    assert radius.selected == ("prod/db[StatefulSet]",)
    lines = {
        (p.diff_type, p.source, p.destination, p.ref1.text(), p.ref2.text()) for p in radius.pairs
    }
    assert lines == {
        ("added", "0.0.0.0-255.255.255.255[External]", "prod/db[StatefulSet]",
         "No Connections", "TCP 5432"),
        ("removed", "checkout/api[Deployment]", "prod/db[StatefulSet]",
         "TCP 5432", "No Connections"),
    }  # fmt: skip
    assert [p.destination for p in radius.gained()] == ["prod/db[StatefulSet]"]
    assert [p.source for p in radius.lost()] == ["checkout/api[Deployment]"]


def test_a_policy_selecting_no_workload_is_lowered_one_level_and_rises_when_one_appears() -> None:
    t = tracker()
    t.put_live(OPEN_GHOST)
    [event] = t.drain()
    rules = [f.rule for f in event.drift.findings]
    assert SELECTS_NO_WORKLOAD in rules
    without = max(f.severity for f in event.drift.findings if f.rule != SELECTS_NO_WORKLOAD)
    assert event.drift.severity == without.raised(-1)
    # A workload elsewhere changes nothing the drift's rules see: not evaluated again.
    elsewhere = workload("Deployment", "web", "shop", {"app": "gone"})
    assert (
        t.set_topology(Topology.build([*TOPOLOGY.workloads, *topology_of([elsewhere]).workloads]))
        == frozenset()
    )
    # A workload the policy selects appears: the drift is evaluated again, at full severity.
    ghost = workload("Deployment", "gone", "prod", {"app": "gone"})
    t.set_topology(Topology.build([*TOPOLOGY.workloads, *topology_of([ghost]).workloads]))
    [update] = t.drain()
    assert update.kind is EventKind.UPDATED
    assert SELECTS_NO_WORKLOAD not in [f.rule for f in update.drift.findings]
    assert update.drift.severity == without


def test_never_below_info_and_nothing_without_a_topology() -> None:
    t = DriftTracker(RuleEngine(), cluster="prod-eu")
    t.set_desired({("prod", "db"): GIT_DB})
    t.set_live({("prod", "db"): OPEN_DB})
    [event] = t.drain()
    assert event.drift.blast_radius is None  # topology unknown: no radius, no adjustment
    assert event.drift.severity is Severity.CRITICAL
    assert Severity.INFO.raised(-1) is Severity.INFO


def test_exposing_a_sensitive_workload_raises_the_drift_one_level() -> None:
    port_only = netpol("db", "prod", {
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"from": [FROM_API], "ports": [{"port": 5432}, {"port": 9187}]}],
    })  # fmt: skip
    plain = tracker()
    plain.put_live(port_only)
    [event] = plain.drain()
    base = event.drift.severity
    assert base is not None
    assert base < Severity.CRITICAL
    for sensitivity in (Sensitivity(namespaces=("pro*",)), Sensitivity(labels=(("app", "db"),))):
        t = tracker(sensitivity)
        t.put_live(port_only)
        [event] = t.drain()
        assert event.drift.severity == base.raised(1)
        [finding] = [f for f in event.drift.findings if f.rule == SENSITIVE_WORKLOAD_EXPOSED]
        assert "prod/db[StatefulSet]" in finding.evidence["workloads"]
    other = tracker(Sensitivity(namespaces=("payments",), labels=(("app", "web"),)))
    other.put_live(port_only)
    [event] = other.drain()
    assert event.drift.severity == base


def test_receivers_show_the_blast_radius() -> None:
    t = tracker()
    t.put_live(OPEN_DB)
    [event] = t.drain()
    at = "2026-11-27T10:00:00.000Z"
    body = incident_body(
        event, kind="opened", incident_id="prod-eu/prod/db#1", occurred_at=at,
        opened_at=at, resolved_at=None, link=None,
    )  # fmt: skip
    assert body["blast_radius"]["added"] == 1
    assert body["blast_radius"]["removed"] == 1
    assert json.loads(json.dumps(body)) == body  # JSON as is (the webhook's body)
    n = Notification("n1", "r", "prod-eu/prod/db#1", Kind.OPENED, body, None, 1)
    slack = json.dumps(render(n).blocks)
    assert "Blast radius (2 pairs)" in slack
    assert "0.0.0.0-255.255.255.255[External]" in slack
    details = event_for(n, "k" * 32)["payload"]["custom_details"]
    assert details["blast_radius"]["pairs"][0]["destination"] == "prod/db[StatefulSet]"


@settings(max_examples=120, deadline=None)
@given(small_world_policies(), small_world_policies(), st.lists(small_world_policies(), max_size=2))
def test_the_radius_is_the_connectivity_diff_of_the_two_cluster_states(
    desired_doc: dict[str, Any], live_doc: dict[str, Any], other_docs: list[dict[str, Any]]
) -> None:
    desired, live = parse_policy(desired_doc), parse_policy(live_doc)
    others = [
        parse_policy({**d, "metadata": {"name": f"other-{i}", "namespace": ns}})
        for i, (d, ns) in enumerate(zip(other_docs, ("shop", "other"), strict=False))
    ]
    by_ns: dict[str, list[NetworkPolicy]] = {}
    for p in others:
        by_ns.setdefault(p.namespace, []).append(p)
    radius = blast_radius(WORLD, by_ns, desired, live)
    full = connectivity_diff(
        Connectivity(WORLD, [*others, desired]), Connectivity(WORLD, [*others, live])
    )
    assert {(p.source, p.destination, p.ref1, p.ref2) for p in radius.pairs} == {
        (p.source, p.destination, p.ref1, p.ref2) for p in full
    }


def test_check_with_a_topology_reports_the_radius(tmp_path: Path) -> None:
    for name, docs in (
        ("git", [GIT_DB]), ("live", [OPEN_DB]),
    ):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "p.yaml").write_text(yaml.safe_dump_all([to_manifest(p) for p in docs]))
    (tmp_path / "topology.yaml").write_text(
        yaml.safe_dump_all(
            [workload("StatefulSet", "db", "prod", {"app": "db"}),
             workload("Deployment", "api", "checkout", {"app": "api"})]
        )
    )  # fmt: skip
    args = [
        *(sys.executable, "-m", "driftwatch", "check", "--desired", str(tmp_path / "git")),
        *("--live", str(tmp_path / "live"), "--topology", str(tmp_path / "topology.yaml")),
    ]
    out = subprocess.run([*args, "--format", "json"], capture_output=True, text=True, check=False)
    assert out.returncode == 1, out.stderr
    [drift] = json.loads(out.stdout)["drifts"]
    assert drift["blast_radius"]["selected"] == ["prod/db[StatefulSet]"]
    assert drift["blast_radius"]["pairs"][0]["ref2"] == "TCP 5432"
    text = subprocess.run(args, capture_output=True, text=True, check=False).stdout
    assert (
        "0.0.0.0-255.255.255.255[External] -> prod/db[StatefulSet]: No Connections => TCP 5432"
        in text
    )
    without = subprocess.run(
        [*args[:-2], "--format", "json"], capture_output=True, text=True, check=False
    )
    assert json.loads(without.stdout)["drifts"][0]["blast_radius"] is None
