"""Workload-level connectivity: the rules users rely on, pair by pair, and the command's
formats and errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftwatch.connectivity import (
    ALL,
    NONE,
    Connectivity,
    Conns,
    connection_list,
    connectivity_diff,
    render_diff,
)
from driftwatch.policy import parse_policy
from driftwatch.topology import Topology, TopologyError, topology_of, workload_of


def deploy(name: str, labels: dict[str, str], ns: str = "default", **ports: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "ports": [{"name": k, "containerPort": v} for k, v in ports.items()],
                        }
                    ]
                },
            }
        },
    }


def netpol(name: str, spec: dict[str, Any], ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def state(*objects: dict[str, Any]) -> Connectivity:
    policies = [parse_policy(o) for o in objects if o["kind"] == "NetworkPolicy"]
    return Connectivity(topology_of(objects), policies)


def conns(c: Connectivity, src: str, dst: str) -> str:
    return c.pair(c.index[src], c.index[dst]).text()


WEB = deploy("web", {"app": "web"}, http=8080)
DB = deploy("db", {"app": "db"}, sql=5432)
API = deploy("api", {"app": "api"})
DENY_DB = netpol("db-ingress", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
    {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "sql"}]}
]})  # fmt: skip


def test_unselected_workloads_are_open_and_a_policy_isolates_only_what_it_selects() -> None:
    c = state(WEB, DB, API)
    assert conns(c, "default/api[Deployment]", "default/db[Deployment]") == "All Connections"
    c = state(WEB, DB, API, DENY_DB)
    assert conns(c, "default/web[Deployment]", "default/db[Deployment]") == "TCP 5432"  # named
    assert conns(c, "default/api[Deployment]", "default/db[Deployment]") == "No Connections"
    assert conns(c, "default/db[Deployment]", "default/api[Deployment]") == "All Connections"


def test_both_ends_must_allow() -> None:
    egress_only_dns = netpol("web-egress", {
        "podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
        "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}],
    })  # fmt: skip
    c = state(WEB, DB, API, DENY_DB, egress_only_dns)
    assert conns(c, "default/web[Deployment]", "default/db[Deployment]") == "No Connections"
    assert conns(c, "default/web[Deployment]", "default/api[Deployment]") == "UDP 53"


def test_a_named_port_resolves_on_the_destination_and_else_allows_nothing() -> None:
    to_http = netpol("any-http", {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]})
    c = state(WEB, DB, to_http)
    assert conns(c, "default/db[Deployment]", "default/web[Deployment]") == "TCP 8080"
    assert conns(c, "default/web[Deployment]", "default/db[Deployment]") == "No Connections"


def test_ip_blocks_never_match_pods_and_ranges_are_refined() -> None:
    from_ten = netpol("ten", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}
    ]})  # fmt: skip
    c = state(WEB, DB, from_ten)
    assert conns(c, "default/web[Deployment]", "default/db[Deployment]") == "No Connections"
    listed = {(x.source, x.destination): x.conns.text() for x in connection_list(c)}
    assert listed[("10.0.0.0-10.0.255.255", "default/db[Deployment]")] == "All Connections"
    assert listed[("10.2.0.0-10.255.255.255", "default/db[Deployment]")] == "All Connections"
    assert ("10.1.0.0-10.1.255.255", "default/db[Deployment]") not in listed
    assert listed[("0.0.0.0-255.255.255.255", "default/web[Deployment]")] == "All Connections"


def test_a_change_to_a_policy_that_selects_nothing_changes_nothing() -> None:
    before = netpol("ghost", {"podSelector": {"matchLabels": {"app": "gone"}}, "ingress": []})
    after = netpol("ghost", {"podSelector": {"matchLabels": {"app": "gone"}}, "ingress": [
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}
    ]})  # fmt: skip
    assert connectivity_diff(state(WEB, DB, before), state(WEB, DB, after)) == []


def test_exposure_to_the_internet_is_one_added_external_line_with_merged_ranges() -> None:
    world = netpol("db-ingress", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "sql"}]},
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/1"}}, {"ipBlock": {"cidr": "128.0.0.0/1"}}],
         "ports": [{"port": 5432}]},
    ]})  # fmt: skip
    diffs = connectivity_diff(state(WEB, DB, DENY_DB), state(WEB, DB, world))
    text = render_diff(diffs, "txt", ref1="a", ref2="b")
    assert text.splitlines() == [
        "Connectivity diff:",
        "diff-type: added, source: 0.0.0.0-255.255.255.255[External], destination:"
        " default/db[Deployment], ref1: No Connections, ref2: TCP 5432",
    ]


def test_end_port_and_protocol_order_in_the_text() -> None:
    c = Conns.port_range("UDP", 9090, 9090) | Conns.port_range("TCP", 8080, 8081)
    c = c | Conns.port_range("SCTP", 7070, 7070) | Conns.port_range("TCP", 8082, 8082)
    assert c.text() == "SCTP 7070,TCP 8080-8082,UDP 9090"
    assert (ALL & c) == c
    assert (NONE | c) == c
    assert Conns.port_range("TCP", 1, 65535).text() == "TCP 1-65535"
    ranged = netpol("r", {"podSelector": {}, "ingress": [
        {"ports": [{"port": 8000, "endPort": 8010}, {"port": 53, "protocol": "UDP"}]}
    ]})  # fmt: skip
    assert conns(state(WEB, DB, ranged), "default/web[Deployment]", "default/db[Deployment]") == (
        "TCP 8000-8010,UDP 53"
    )


def test_namespace_selectors_use_namespace_labels_including_the_implicit_name() -> None:
    other = deploy("scanner", {"app": "scanner"}, ns="tools")
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "tools", "labels": {"team": "sec"}},
    }
    by_team = netpol("db", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "sec"}}}]}
    ]})  # fmt: skip
    by_name = netpol("db", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tools"}}}]}
    ]})  # fmt: skip
    for policy in (by_team, by_name):
        c = state(WEB, DB, other, ns, policy)
        assert conns(c, "tools/scanner[Deployment]", "default/db[Deployment]") == "All Connections"
        assert conns(c, "default/web[Deployment]", "default/db[Deployment]") == "No Connections"


def test_pods_are_grouped_by_their_controller() -> None:
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "web-7d9-abcde", "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "7d9"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9", "controller": True}],
        },
        "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}]}]},
    }  # fmt: skip
    w = workload_of(pod)
    assert w is not None
    assert str(w) == "shop/web-7d9[ReplicaSet]"
    top = workload_of(pod, top_level=True)
    assert top is not None
    assert str(top) == "shop/web[Deployment]"
    assert top.named_port("http") is not None
    lone = dict(pod, metadata={"name": "debug", "namespace": "shop"})
    assert str(workload_of(lone)) == "shop/debug[Pod]"
    template = {"metadata": {"labels": {"app": "backup"}}, "spec": {"containers": []}}
    cron = {
        "kind": "CronJob",
        "metadata": {"name": "backup"},
        "spec": {"jobTemplate": {"spec": {"template": template}}},
    }
    job = workload_of(cron)
    assert job is not None
    assert str(job) == "default/backup[CronJob]"
    assert dict(job.labels) == {"app": "backup"}
    with pytest.raises(TopologyError, match=r"containerPort"):
        workload_of(deploy("bad", {}, http=0))


def test_topology_gives_every_namespace_its_name_label() -> None:
    t = Topology.build([workload_of(WEB)])  # type: ignore[list-item]
    assert t.namespace_labels("default") == {"kubernetes.io/metadata.name": "default"}
    assert t.namespace_labels("elsewhere") == {"kubernetes.io/metadata.name": "elsewhere"}


def _write(root: Path, *objects: dict[str, Any]) -> Path:
    root.mkdir()
    (root / "all.yaml").write_text(yaml.safe_dump_all(objects))
    return root


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftwatch", "connectivity", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_formats_carry_the_same_pairs(tmp_path: Path) -> None:
    one = _write(tmp_path / "one", WEB, DB, DENY_DB)
    two = _write(tmp_path / "two", WEB, DB, API)
    txt = _cli("diff", str(one), str(two)).stdout.splitlines()[1:]
    js = json.loads(_cli("diff", str(one), str(two), "--format", "json").stdout)
    rows = list(csv.reader(io.StringIO(_cli("diff", str(one), str(two), "--format", "csv").stdout)))
    md = _cli("diff", str(one), str(two), "--format", "md").stdout.splitlines()
    assert len(txt) == len(js["diff"]) == len(rows) - 1 == len(md) - 2 > 0
    assert rows[0] == [
        "diff-type",
        "source",
        "destination",
        str(one),
        str(two),
        "workloads-diff-info",
    ]
    first = js["diff"][0]
    assert txt[0].startswith(f"diff-type: {first['diff_type']}, source: {first['source']}")
    added = [d for d in js["diff"] if d["workloads_diff_info"]]
    assert added
    assert all(d["workloads_diff_info"].endswith(" added") for d in added)
    assert all("default/api[Deployment]" in d["workloads_diff_info"] for d in added)


def test_bad_input_is_a_clear_error_naming_the_file_and_line(tmp_path: Path) -> None:
    good = _write(tmp_path / "good", WEB)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text("---\nkind: Namespace\nmetadata: {name: a}\n---\n" + yaml.safe_dump(
        deploy("web", {"app": "web"}, http=70000)
    ))  # fmt: skip
    out = _cli("diff", str(good), str(bad))
    assert out.returncode == 2
    assert "x.yaml:5" in out.stderr
    assert "containerPort" in out.stderr
    assert "Traceback" not in out.stderr
    missing = _cli("list", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "no such file or directory" in missing.stderr
