"""Live state from what ``kubectl get networkpolicies -A -o yaml|json`` wrote."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftwatch.live import LiveSnapshotError, load_snapshot
from driftwatch.policy import LiveOrigin


def live_policy(name: str, namespace: str, port: Any = 80) -> dict[str, Any]:
    """A NetworkPolicy as the API server returns it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "0b6c2a3e-1f0e-4a34-9a6e-1f2c3d4e5f60",
            "resourceVersion": "4711",
            "generation": 2,
            "creationTimestamp": "2026-11-01T10:00:00Z",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"..."}\n'
            },
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "networking.k8s.io/v1",
                    "time": "2026-11-01T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:ingress": {}}},
                },
                {
                    "manager": "kubectl-edit",
                    "operation": "Update",
                    "apiVersion": "networking.k8s.io/v1",
                    "time": "2026-11-27T12:03:22Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:ingress": {}}},
                },
            ],
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": name}},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": port}]}],
        },
    }


def kubectl_list(*items: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(items), "metadata": {}}


def test_kubectl_yaml_dump_gives_policies_with_their_origin(tmp_path: Path) -> None:
    path = tmp_path / "live.yaml"
    dump = kubectl_list(live_policy("web", "prod"), live_policy("db", "data"))
    path.write_text(yaml.safe_dump(dump))

    policies = load_snapshot(path)

    assert list(policies) == [("prod", "web"), ("data", "db")]
    web = policies["prod", "web"]
    assert web.origin == LiveOrigin("kubectl-edit", "Update", "2026-11-27T12:03:22Z", "4711")
    assert web.spec.ingress[0].ports[0].port == 80
    assert web.annotations == ()  # last-applied is not part of the policy


def test_json_dump_equals_yaml_dump(tmp_path: Path) -> None:
    dump = kubectl_list(live_policy("web", "prod"), live_policy("db", "data", port=5432))
    (tmp_path / "live.json").write_text(json.dumps(dump, indent=4))
    (tmp_path / "copy" / "live.yaml").parent.mkdir()
    (tmp_path / "copy" / "live.yaml").write_text(yaml.safe_dump(dump))

    from_json = load_snapshot(tmp_path / "live.json")
    from_yaml = load_snapshot(tmp_path / "copy" / "live.yaml")

    assert from_json == from_yaml
    assert from_json["data", "db"].spec.ingress[0].ports[0].port == 5432
    assert from_json["data", "db"].origin == from_yaml["data", "db"].origin


def test_typed_list_from_the_api_server_without_item_kinds(tmp_path: Path) -> None:
    item = live_policy("web", "prod")
    del item["kind"], item["apiVersion"]
    dump = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList", "items": [item]}
    (tmp_path / "raw.json").write_text(json.dumps(dump))
    assert list(load_snapshot(tmp_path / "raw.json")) == [("prod", "web")]


def test_directory_of_plain_documents_skips_other_kinds(tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    (snap / "ns").mkdir(parents=True)
    policy = live_policy("web", "prod")
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}}
    calico = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy", "metadata": {}}
    (snap / "ns" / "all.yaml").write_text(yaml.safe_dump_all([other, policy, calico]))
    unnamespaced = live_policy("deny", "x")
    del unnamespaced["metadata"]["namespace"]
    (snap / "deny.json").write_text(json.dumps(unnamespaced))
    (snap / "README.md").write_text("not a manifest")

    policies = load_snapshot(snap, default_namespace="fallback")

    assert set(policies) == {("prod", "web"), ("fallback", "deny")}


def test_invalid_policy_names_file_and_item_line(tmp_path: Path) -> None:
    text = yaml.safe_dump(kubectl_list(live_policy("web", "prod"), live_policy("db", "data", 0)))
    path = tmp_path / "live.yaml"
    path.write_text(text)
    second_item = text.splitlines().index("- apiVersion: networking.k8s.io/v1", 3) + 1
    with pytest.raises(LiveSnapshotError) as caught:
        load_snapshot(path)
    assert str(caught.value) == (
        f"{path}:{second_item}: NetworkPolicy data/db: "
        "spec.ingress[0].ports[0].port: 0 is outside 1-65535"
    )


def test_same_policy_twice_names_both_places(tmp_path: Path) -> None:
    web = live_policy("web", "prod")
    changed = copy.deepcopy(web)
    changed["spec"]["ingress"] = []
    (tmp_path / "a.json").write_text(json.dumps(kubectl_list(web), indent=2))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(changed))
    with pytest.raises(LiveSnapshotError) as caught:
        load_snapshot(tmp_path)
    assert str(caught.value) == (
        f"duplicate NetworkPolicy prod/web: {tmp_path / 'a.json'}:5 and {tmp_path / 'b.yaml'}:1"
    )


def test_duplicate_key_in_json_names_file_and_line(tmp_path: Path) -> None:
    text = json.dumps(kubectl_list(live_policy("web", "prod")), indent=4)
    text = text.replace('"name": "web",', '"name": "web",\n"name": "api",', 1)
    path = tmp_path / "live.json"
    path.write_text(text)
    line = text.splitlines().index('"name": "api",') + 1
    with pytest.raises(LiveSnapshotError) as caught:
        load_snapshot(path)
    assert str(caught.value).startswith(f"{path}:{line}: duplicate key 'name' (first at line ")


def test_unreadable_snapshot_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(LiveSnapshotError, match=r"missing\.yaml: no such file or directory$"):
        load_snapshot(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nitems:\n- kind: [\n")
    with pytest.raises(LiveSnapshotError) as caught:
        load_snapshot(bad)
    assert str(caught.value).startswith(f"{bad}:4: ")
    assert "\n" not in str(caught.value)
