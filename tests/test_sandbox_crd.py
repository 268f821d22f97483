"""CustomResourceDefinitions in the sandbox: a CRD makes its kind served at once
(discovery, OpenAPI, the verbs through kubernetes_asyncio's CustomObjectsApi, watches,
server-side printing with the CRD's columns), its schema prunes and validates objects as
the real server does, and deleting it takes its objects along. Also: ConfigMaps, and Lease
times checked as ``MicroTime``. The real kubectl drives the shipped DriftIncident CRD.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client, config, watch

from driftwatch.sandbox import DEFAULT_TOKEN, Sandbox, SandboxThread
from driftwatch.sandbox.kubectl import Kubectl, KubectlError, kubectl_path
from driftwatch.sandbox.structural import check_object
from driftwatch.sandbox.table import json_path
from tests.aio import async_test

ROOT = Path(__file__).resolve().parents[1]
CRD_PATH = ROOT / "config" / "kubernetes" / "crd-driftincident.yaml"
CRD = yaml.safe_load(CRD_PATH.read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
G, V, P = "driftwatch.io", "v1", "driftincidents"
NS = "dw"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
MERGE = "application/merge-patch+json"


def incident(name: str = "shop.web-1-abc", state: str = "open", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "DriftIncident",
        "metadata": {"name": name, "labels": {"driftwatch.io/open": "true"}},
        "spec": {
            "id": "prod/shop/web#1",
            "cluster": "prod",
            "policyNamespace": "shop",
            "policyName": "web",
            "policy": "shop/web",
            "number": 1,
        },
        "status": {"state": state, "severity": "critical", **status},
    }


def widgets_crd(**version: Any) -> dict[str, Any]:
    """A small CRD with a status subresource (cluster-scoped)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {"ok": {"type": "boolean"}},
                                },
                            },
                        }
                    },
                    **version,
                }
            ],
        },
    }


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[tuple[Sandbox, client.ApiClient]]:
    async with Sandbox(namespaces=("default", NS)) as sb:
        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=str(sb.kubeconfig_path()), client_configuration=configuration
        )
        async with client.ApiClient(configuration=configuration) as api:
            yield sb, api


@contextlib.asynccontextmanager
async def http(sb: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    async with aiohttp.ClientSession(sb.url, headers=headers) as session:
        yield session


@async_test
async def test_a_crd_serves_its_kind_through_custom_objects_api() -> None:
    async with cluster() as (sb, api):
        crds = client.ApiextensionsV1Api(api)
        created = await crds.create_custom_resource_definition(CRD)
        conditions = {c.type: c.status for c in created.status.conditions}
        assert conditions == {"NamesAccepted": "True", "Established": "True"}
        assert created.status.accepted_names.short_names == ["di"]
        objects = client.CustomObjectsApi(api)
        made = await objects.create_namespaced_custom_object(G, V, NS, P, incident())
        assert made["metadata"]["generation"] == 1
        assert made["status"]["state"] == "open"
        got = await objects.get_namespaced_custom_object(G, V, NS, P, "shop.web-1-abc")
        assert got == made
        other = incident("other-2-def", state="resolved")
        other["metadata"]["labels"] = {"driftwatch.io/open": "false"}
        await objects.create_namespaced_custom_object(G, V, NS, P, other)
        listed = await objects.list_namespaced_custom_object(
            G, V, NS, P, label_selector="driftwatch.io/open=true"
        )
        assert [o["metadata"]["name"] for o in listed["items"]] == ["shop.web-1-abc"]

        with pytest.raises(client.ApiException) as caught:
            await objects.create_namespaced_custom_object(G, V, NS, P, incident())
        assert (caught.value.status, json.loads(caught.value.body)["reason"]) == (
            409,
            "AlreadyExists",
        )
        got["status"]["state"] = "updated"
        replaced = await objects.replace_namespaced_custom_object(
            G, V, NS, P, "shop.web-1-abc", got
        )
        assert replaced["status"]["state"] == "updated"
        assert replaced["metadata"]["generation"] == 2  # no status subresource: status counts
        with pytest.raises(client.ApiException) as caught:  # the old resourceVersion
            await objects.replace_namespaced_custom_object(G, V, NS, P, "shop.web-1-abc", got)
        assert caught.value.status == 409
        del got["metadata"]["resourceVersion"]
        with pytest.raises(client.ApiException) as caught:  # custom kinds: no blind updates
            await objects.replace_namespaced_custom_object(G, V, NS, P, "shop.web-1-abc", got)
        assert caught.value.status == 422
        assert "metadata.resourceVersion" in json.loads(caught.value.body)["message"]
        # kubernetes_asyncio sends a dict as a JSON patch unless told (a real server
        # refuses that too): the merge patch content type must be given.
        patched = await objects.patch_namespaced_custom_object(
            G, V, NS, P, "shop.web-1-abc", {"status": {"severity": "low"}}, _content_type=MERGE
        )
        assert (patched["status"]["state"], patched["status"]["severity"]) == ("updated", "low")
        async with http(sb) as session:  # no patch strategies for custom kinds: 415
            smp = {"Content-Type": "application/strategic-merge-patch+json"}
            path = f"/apis/{G}/{V}/namespaces/{NS}/{P}/shop.web-1-abc"
            async with session.patch(path, data="{}", headers=smp) as r:
                assert r.status == 415
        await objects.delete_namespaced_custom_object(G, V, NS, P, "other-2-def")
        with pytest.raises(client.ApiException) as caught:
            await objects.get_namespaced_custom_object(G, V, NS, P, "other-2-def")
        assert caught.value.status == 404
        assert sb.changes[-1].resource == P


@async_test
async def test_discovery_openapi_and_the_table_follow_the_crd() -> None:
    async with cluster() as (sb, _), http(sb) as session:
        async with session.get(f"/apis/{G}/{V}") as r:
            assert r.status == 404
        sb.put_object(CRD)
        async with session.get("/apis") as r:
            assert G in [g["name"] for g in (await r.json())["groups"]]
        async with session.get(f"/apis/{G}/{V}") as r:
            (resource,) = (await r.json())["resources"]
        assert resource["shortNames"] == ["di"]
        assert resource["categories"] == ["driftwatch"]
        assert (resource["kind"], resource["singularName"], resource["namespaced"]) == (
            "DriftIncident",
            "driftincident",
            True,
        )
        async with session.get("/openapi/v3") as r:
            index = (await r.json())["paths"]
        async with session.get(index[f"apis/{G}/{V}"]["serverRelativeURL"]) as r:
            document = await r.json()
        schema = document["components"]["schemas"]["io.driftwatch.v1.DriftIncident"]
        assert schema["x-kubernetes-group-version-kind"] == [
            {"group": G, "kind": "DriftIncident", "version": V}
        ]
        assert "outbox" in schema["properties"]["status"]["properties"]
        patch = document["paths"][f"/apis/{G}/{V}/namespaces/{{namespace}}/{P}/{{name}}"]["patch"]
        assert "fieldValidation" in [p["name"] for p in patch["parameters"]]

        sb.put_object({**incident(), "metadata": {"name": "a", "namespace": NS}})
        async with session.get(
            f"/apis/{G}/{V}/namespaces/{NS}/{P}", headers={"Accept": TABLE}
        ) as r:
            table = await r.json()
        columns = [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]]
        assert columns == [
            ("Name", "string", 0),
            ("State", "string", 0),
            ("Severity", "string", 0),
            ("Policy", "string", 0),
            ("Drift", "string", 1),
            ("Pending", "integer", 1),
            ("Cluster", "string", 1),
            ("Age", "date", 0),
        ]
        (row,) = table["rows"]
        assert row["cells"][:7] == ["a", "open", "critical", "shop/web", None, None, "prod"]
        assert row["cells"][7].endswith("s")


@async_test
async def test_the_schema_prunes_unknown_fields_keeps_nulls_it_allows_and_validates() -> None:
    async with cluster() as (sb, api):
        sb.put_object(CRD)
        objects = client.CustomObjectsApi(api)
        body = incident(body={"a": None, "deep": {"x": [1, None]}}, bogus=1)
        body["status"]["severity"] = None  # not nullable: dropped
        made = await objects.create_namespaced_custom_object(G, V, NS, P, body)
        assert "bogus" not in made["status"]
        assert "severity" not in made["status"]
        assert made["status"]["body"] == {"a": None, "deep": {"x": [1, None]}}
        assert api.last_response.getheader("Warning") == '299 - "unknown field \\"status.bogus\\""'

        async def refused(obj: dict[str, Any], **kwargs: Any) -> tuple[int, Any]:
            with pytest.raises(client.ApiException) as caught:
                await objects.create_namespaced_custom_object(G, V, NS, P, obj, **kwargs)
            return caught.value.status, json.loads(caught.value.body)

        strict = await refused(incident("s", bogus=1), field_validation="Strict")
        assert strict[0] == 400
        assert 'strict decoding error: unknown field "status.bogus"' in strict[1]["message"]
        wrong = incident("w")
        wrong["spec"]["number"] = "one"
        del wrong["spec"]["cluster"]
        wrong["status"]["state"] = "gone"
        code, status = await refused(wrong)
        assert code == 422
        assert {c["field"] for c in status["details"]["causes"]} == {
            "spec.number",
            "spec.cluster",
            "status.state",
        }
        assert "spec.number in body must be of type integer" in status["message"]


def test_structural_checks_in_isolation() -> None:
    checked = check_object(
        {"metadata": {}, "spec": {"policy": 7}, "status": {"threads": {"s": {"ts": "1", "n": 2}}}},
        SCHEMA,
    )
    assert {c[1] for c in checked.causes} == {
        "spec.policy",
        "status.threads.s.n",
        "spec.id",
        "spec.cluster",
        "spec.policyNamespace",
        "spec.policyName",
        "spec.number",
    }
    assert json_path({"a": {"b": [{"c": 1}]}}, ".a.b[0].c") == 1
    assert json_path({"a": {}}, "{.a.b}") is None


@async_test
async def test_a_status_subresource_and_deleting_the_crd() -> None:
    async with cluster() as (sb, api):
        sb.put_object(widgets_crd())
        objects = client.CustomObjectsApi(api)
        widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
        made = await objects.create_cluster_custom_object(
            "example.com", "v1", "widgets", {**widget, "spec": {"size": 1}, "status": {"ok": True}}
        )
        assert "status" not in made  # the main resource ignores status
        stream = watch.Watch().stream(
            objects.list_cluster_custom_object,
            "example.com",
            "v1",
            "widgets",
            resource_version=made["metadata"]["resourceVersion"],
            timeout_seconds=5,
        )
        status = await objects.patch_cluster_custom_object_status(
            "example.com",
            "v1",
            "widgets",
            "w",
            {"status": {"ok": True}, "spec": {"size": 9}},
            _content_type=MERGE,
        )
        assert (status["status"], status["spec"], status["metadata"]["generation"]) == (
            {"ok": True},
            {"size": 1},
            1,
        )
        grown = await objects.patch_cluster_custom_object(
            "example.com", "v1", "widgets", "w", {"spec": {"size": 2}}, _content_type=MERGE
        )
        assert (grown["status"], grown["metadata"]["generation"]) == ({"ok": True}, 2)

        async def collect() -> list[tuple[str, str]]:
            return [(e["type"], e["raw_object"]["metadata"]["name"]) async for e in stream]

        watching = asyncio.create_task(collect())
        await sb.wait_for_watchers(resource="widgets")
        sb.delete_object(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com"
        )
        seen = await asyncio.wait_for(watching, 5)  # deleted, then the watch ends
        assert seen[-1] == ("DELETED", "w")
        assert ("MODIFIED", "w") in seen
        with pytest.raises(client.ApiException) as caught:
            await objects.get_cluster_custom_object("example.com", "v1", "widgets", "w")
        assert caught.value.status == 404


@async_test
async def test_invalid_crds_are_refused_naming_the_field() -> None:
    async with cluster() as (_, api):
        crds = client.ApiextensionsV1Api(api)

        async def causes(crd: dict[str, Any]) -> set[str]:
            with pytest.raises(client.ApiException) as caught:
                await crds.create_custom_resource_definition(crd)
            assert caught.value.status == 422
            return {c["field"] for c in json.loads(caught.value.body)["details"]["causes"]}

        misnamed = widgets_crd()
        misnamed["metadata"]["name"] = "gadgets.example.com"
        assert await causes(misnamed) == {"metadata.name"}
        assert await causes(widgets_crd(storage=False)) == {"spec.versions"}
        assert await causes(widgets_crd(schema={})) == {"spec.versions[0].schema.openAPIV3Schema"}
        columns = [{"name": "X", "type": "float", "jsonPath": ".x"}]
        assert await causes(widgets_crd(additionalPrinterColumns=columns)) == {
            "spec.versions[0].additionalPrinterColumns[0].type"
        }
        created = await crds.create_custom_resource_definition(widgets_crd())
        created.spec.scope = "Namespaced"
        with pytest.raises(client.ApiException) as caught:
            await crds.replace_custom_resource_definition("widgets.example.com", created)
        assert "field is immutable" in json.loads(caught.value.body)["message"]


@async_test
async def test_lease_times_are_micro_times_and_config_maps_are_served() -> None:
    async with cluster() as (sb, api):
        leases = client.CoordinationV1Api(api)

        def lease(**spec: Any) -> dict[str, Any]:
            return {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a", **spec}}

        for bad in ("2026-11-27T12:00:00Z", "2026-11-27T12:00:00.123Z", "yesterday"):
            with pytest.raises(client.ApiException) as caught:
                await leases.create_namespaced_lease(NS, lease(renewTime=bad))
            assert caught.value.status == 400
            assert "2006-01-02T15:04:05.000000Z07:00" in json.loads(caught.value.body)["message"]
        with pytest.raises(client.ApiException) as caught:
            await leases.create_namespaced_lease(NS, lease(leaseDurationSeconds="15"))
        assert caught.value.status == 400
        made = await leases.create_namespaced_lease(
            NS, lease(renewTime="2026-11-27T13:00:00.000001+01:00", leaseDurationSeconds=15)
        )
        assert made.spec.lease_duration_seconds == 15
        stored = sb.get_object("coordination.k8s.io/v1", "Lease", "l", NS)
        assert stored is not None
        assert stored["spec"]["renewTime"] == "2026-11-27T12:00:00.000001Z"

        core = client.CoreV1Api(api)
        cm = {"metadata": {"name": "c"}, "data": {"disabled.json": "{}"}}
        created = await core.create_namespaced_config_map(NS, cm)
        created.data["disabled.json"] = '{"hook": {}}'
        replaced = await core.replace_namespaced_config_map("c", NS, created)
        assert replaced.data == {"disabled.json": '{"hook": {}}'}
        with pytest.raises(client.ApiException) as caught:
            await core.replace_namespaced_config_map("c", NS, created)
        assert caught.value.status == 409
        with pytest.raises(client.ApiException) as caught:
            await core.create_namespaced_config_map(
                NS, {"metadata": {"name": "d"}, "data": {"a b": "x"}}
            )
        assert caught.value.status == 422


@pytest.mark.kubectl
@pytest.mark.skipif(kubectl_path() is None, reason="kubectl is not on PATH")
def test_kubectl_applies_the_crd_and_its_objects(tmp_path: Path) -> None:
    with SandboxThread(namespaces=("default", NS)) as st:
        kubectl = Kubectl(st.kubeconfig_path(tmp_path), tmp_path)
        assert "created" in kubectl.run("apply", "-f", str(CRD_PATH)).stdout
        kubectl.run("wait", "--for", "condition=established", "crd/driftincidents.driftwatch.io")
        assert "driftincidents.driftwatch.io" in kubectl.run("get", "crd").stdout
        manifest = tmp_path / "di.yaml"
        body = incident()
        body["metadata"]["namespace"] = NS
        manifest.write_text(yaml.safe_dump(body))
        assert "created" in kubectl.run("apply", "-f", str(manifest)).stdout
        body["status"]["state"] = "updated"
        manifest.write_text(yaml.safe_dump(body))
        assert "configured" in kubectl.run("apply", "-f", str(manifest)).stdout
        lines = kubectl.run("get", "di", "-n", NS).stdout.splitlines()
        assert lines[0].split() == ["NAME", "STATE", "SEVERITY", "POLICY", "AGE"]
        assert lines[1].split()[:4] == ["shop.web-1-abc", "updated", "critical", "shop/web"]
        explained = kubectl.run("explain", "driftincident.status.outbox").stdout
        assert "notifications waiting for their receiver's confirmation" in explained
        kubectl.run("patch", "di", "shop.web-1-abc", "-n", NS, "--type=merge", "-p",
                    '{"status": {"severity": "low"}}')  # fmt: skip
        got = kubectl.json("get", "driftincident", "shop.web-1-abc", "-n", NS)
        assert got["status"]["severity"] == "low"
        kubectl.run("delete", "crd", "driftincidents.driftwatch.io")
        with pytest.raises(KubectlError):
            kubectl.run("get", "di", "-n", NS)
        assert st.call(lambda: st.sandbox.store.count(st.sandbox.resource("v1", "Namespace"))) >= 2


def test_custom_kinds_survive_in_the_store_across_a_crd_update() -> None:
    async def scenario() -> None:
        async with Sandbox() as sb:
            sb.put_object(CRD)
            sb.put_object({**incident(), "metadata": {"name": "a", "namespace": "default"}})
            changed = json.loads(json.dumps(CRD))
            changed["spec"]["versions"][0]["additionalPrinterColumns"] = []
            sb.put_object(changed)
            assert [
                o["metadata"]["name"] for o in sb.list_objects(f"{G}/{V}", "DriftIncident")
            ] == ["a"]
            rtype = sb.resource(f"{G}/{V}", "DriftIncident")
            assert rtype.printer_columns == ()

    asyncio.run(scenario())
