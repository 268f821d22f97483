"""The sandbox's pure parts: patch formats, selectors, managedFields bookkeeping, routing,
tables, and the store's watch semantics — without a server.
"""

from __future__ import annotations

from typing import Any

import pytest

from driftwatch.sandbox import NAMESPACES, NETWORK_POLICIES, PODS, ApiError, default_registry
from driftwatch.sandbox.managed import decode_entries, encode_entries, field_manager, record_update
from driftwatch.sandbox.operations import Operations, WriteOptions
from driftwatch.sandbox.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from driftwatch.sandbox.routing import GroupVersionPath, Target, resolve
from driftwatch.sandbox.selectors import Selector, parse_selector
from driftwatch.sandbox.store import Store
from driftwatch.sandbox.table import human_duration, table_version

# --- patches ------------------------------------------------------------------------------


def test_merge_patch_is_rfc_7386_and_pure() -> None:
    original = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    patched = merge_patch(original, {"a": {"b": None, "c": [3]}, "e": {"f": None}})
    assert patched == {"a": {"c": [3]}, "d": 1, "e": {}}
    assert original == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


def test_json_patch_operations() -> None:
    doc = {"spec": {"ports": [80, 443], "name": "x"}}
    ops = [
        {"op": "add", "path": "/spec/ports/1", "value": 8080},
        {"op": "add", "path": "/spec/ports/-", "value": 9090},
        {"op": "replace", "path": "/spec/name", "value": "y"},
        {"op": "copy", "from": "/spec/name", "path": "/spec/alias"},
        {"op": "move", "from": "/spec/alias", "path": "/spec/other~1name"},
        {"op": "remove", "path": "/spec/ports/0"},
        {"op": "test", "path": "/spec/ports", "value": [8080, 443, 9090]},
    ]
    assert json_patch(doc, ops) == {
        "spec": {"ports": [8080, 443, 9090], "name": "y", "other/name": "y"}
    }
    assert doc == {"spec": {"ports": [80, 443], "name": "x"}}


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ({"op": "add"}, 400),
        ([{"path": "/a"}], 400),
        ([{"op": "frobnicate", "path": "/a"}], 400),
        ([{"op": "add", "path": "a", "value": 1}], 400),
        ([{"op": "add", "path": "/a"}], 400),
        ([{"op": "remove", "path": "/missing"}], 422),
        ([{"op": "replace", "path": "/missing", "value": 1}], 422),
        ([{"op": "add", "path": "/list/9", "value": 1}], 422),
        ([{"op": "add", "path": "/list/01", "value": 1}], 422),
        ([{"op": "test", "path": "/flag", "value": 1}], 422),
        ([{"op": "move", "from": "/obj", "path": "/obj/inner"}], 422),
    ],
)
def test_json_patch_errors(ops: Any, code: int) -> None:
    with pytest.raises(PatchError) as caught:
        json_patch({"list": [1], "flag": True, "obj": {}}, ops)
    assert caught.value.code == code


def test_strategic_merge_replaces_atomic_lists_and_merges_keyed_ones() -> None:
    policy = {"spec": {"ingress": [{"from": [{"podSelector": {}}]}], "policyTypes": ["Ingress"]}}
    patched = strategic_merge_patch(policy, {"spec": {"ingress": [{"ports": [{"port": 80}]}]}})
    assert patched["spec"]["ingress"] == [{"ports": [{"port": 80}]}]

    pod = {
        "metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
        "spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]},
    }
    patch = {
        "metadata": {"finalizers": ["b"], "labels": {"x": None}},
        "spec": {
            "containers": [
                {"name": "b", "image": "2"},
                {"name": "c", "image": "1"},
                {"name": "a", "$patch": "delete"},
            ],
            "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}],
        },
    }
    assert strategic_merge_patch(pod, patch) == {
        "metadata": {"finalizers": ["a", "b"], "labels": {"y": "2"}},
        "spec": {"containers": [{"name": "c", "image": "1"}, {"name": "b", "image": "2"}]},
    }


def test_strategic_merge_directives() -> None:
    original = {"spec": {"a": 1, "b": {"c": 1}}, "metadata": {"finalizers": ["x", "y"]}}
    assert strategic_merge_patch(original, {"spec": {"$patch": "replace", "z": 1}})["spec"] == {
        "z": 1
    }
    assert "b" not in strategic_merge_patch(original, {"spec": {"b": {"$patch": "delete"}}})["spec"]
    assert strategic_merge_patch(original, {"spec": {"$retainKeys": ["a"], "a": 2}})["spec"] == {
        "a": 2
    }
    removed = strategic_merge_patch(
        original, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}
    )
    assert removed["metadata"]["finalizers"] == ["y"]
    with pytest.raises(PatchError):
        strategic_merge_patch(original, {"spec": {"$patch": "explode"}})
    with pytest.raises(PatchError):
        strategic_merge_patch({"spec": {}}, {"spec": {"containers": [{"image": "no-name"}]}})
    with pytest.raises(PatchError):
        strategic_merge_patch(original, [1])


# --- selectors ----------------------------------------------------------------------------


def test_label_and_field_selectors() -> None:
    obj = {"metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}}}
    assert parse_selector("app=web", "metadata.namespace=shop", NETWORK_POLICIES).matches(obj)
    assert not parse_selector("app in (api,db)", None, NETWORK_POLICIES).matches(obj)
    assert parse_selector("!tier", "metadata.name!=api", NETWORK_POLICIES).matches(obj)
    assert not parse_selector(None, "metadata.name==api", NETWORK_POLICIES).matches(obj)
    assert Selector().is_empty
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Running"}}
    assert parse_selector(None, "status.phase=Running", PODS).matches(pod)
    for label, field in (("a in (", None), (None, "spec.x=1"), (None, "metadata.name")):
        with pytest.raises(ApiError) as caught:
            parse_selector(label, field, NETWORK_POLICIES)
        assert caught.value.code == 400


# --- managedFields ------------------------------------------------------------------------


def test_field_manager_from_the_user_agent() -> None:
    assert field_manager(None, "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07") == "kubectl"
    assert field_manager("kubectl-edit", "kubectl/v1.32.4") == "kubectl-edit"
    assert field_manager("", "OpenAPI-Generator/36.1.0/python") == "OpenAPI-Generator"
    with pytest.raises(ApiError):
        field_manager("x" * 129, "")


def test_record_update_moves_ownership_like_the_real_server() -> None:
    v1 = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    entries = record_update([], None, v1, manager="apply", api_version="v1", now="T1")
    assert [e.manager for e in entries] == ["apply"]

    v2 = {**v1, "spec": {"podSelector": {"matchLabels": {"a": "b"}}, "policyTypes": ["Ingress"]}}
    entries = record_update(entries, v1, v2, manager="edit", api_version="v1", now="T2")
    owned = {e.manager: e.fields for e in entries}
    assert owned["edit"] == {("f:spec", "f:podSelector")}
    assert ("f:spec", "f:podSelector") not in owned["apply"]

    # Removing a field only: the writer gets no entry, the owner loses the field.
    v3 = {"metadata": {}, "spec": v2["spec"]}
    entries = record_update(entries, v2, v3, manager="cleanup", api_version="v1", now="T3")
    assert "cleanup" not in {e.manager for e in entries}
    assert all(not any(p[:2] == ("f:metadata", "f:labels") for p in e.fields) for e in entries)

    encoded = encode_entries(entries)
    assert [e["manager"] for e in encoded] == ["apply", "edit"]
    assert encoded[1]["fieldsV1"] == {"f:spec": {"f:podSelector": {}}}
    assert decode_entries(encoded) == entries


# --- routing, tables ----------------------------------------------------------------------


def test_routing() -> None:
    registry = default_registry()
    assert resolve(registry, "/apis/networking.k8s.io/v1/namespaces/a/networkpolicies/b") == Target(
        NETWORK_POLICIES, "a", "b", ""
    )
    assert resolve(registry, "/api/v1/namespaces/a") == Target(NAMESPACES, None, "a", "")
    assert resolve(registry, "/api/v1/namespaces/a/status") == Target(
        NAMESPACES, None, "a", "status"
    )
    assert resolve(registry, "/api/v1/namespaces/a/pods/p/status") == Target(
        PODS, "a", "p", "status"
    )
    assert resolve(registry, "/apis/networking.k8s.io/v1/watch/networkpolicies") == Target(
        NETWORK_POLICIES, None, None, "", legacy_watch=True
    )
    assert resolve(registry, "/apis/networking.k8s.io/v1") == GroupVersionPath(
        "networking.k8s.io", "v1", False
    )
    for missing in (
        "/apis/networking.k8s.io/v1/networkpolicies/name",  # namespaced object without namespace
        "/apis/networking.k8s.io/v1/namespaces/a/networkpolicies/b/status",  # no status
        "/apis/networking.k8s.io/v1/namespaces/a/networkpolicies/b/c/d",
        "/apis/networking.k8s.io/v2/networkpolicies",
        "/healthz/x",
    ):
        assert resolve(registry, missing) is None, missing


def test_tables() -> None:
    assert [human_duration(s) for s in (-5, 0, 119, 330, 3600, 3 * 86400 + 3600, 800 * 86400)] == [
        "<invalid>",
        "0s",
        "119s",
        "5m30s",
        "60m",
        "3d1h",
        "2y70d",
    ]
    kubectl_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    assert table_version(kubectl_accept) == "v1"
    assert table_version("application/json, */*") is None


# --- the store and the verbs --------------------------------------------------------------


def test_store_history_limit_compacts_and_watch_replays() -> None:
    store = Store(default_registry(), history_limit=3)
    ops = Operations(store)
    options = WriteOptions(manager="test")
    ops.create(NAMESPACES, None, {"metadata": {"name": "shop"}}, options)
    for name in ("a", "b", "c", "d"):
        body = {"metadata": {"name": name}, "spec": {"podSelector": {}}}
        ops.create(NETWORK_POLICIES, "shop", body, options)
    assert store.revision == 5
    assert store.compacted == 2
    with pytest.raises(ApiError) as caught:
        store.watch(NETWORK_POLICIES, None, Selector(), 1)
    assert caught.value.code == 410
    watcher, initial = store.watch(NETWORK_POLICIES, "shop", Selector(), 3)
    assert [obj["metadata"]["name"] for _, obj in initial] == ["c", "d"]
    store.unwatch(watcher)
    with pytest.raises(ApiError) as caught:
        store.watch(NETWORK_POLICIES, None, Selector(), 99)
    assert caught.value.code == 504
