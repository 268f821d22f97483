"""The sandbox API server in-process, through kubernetes_asyncio (as the daemon will use
it) and raw HTTP: watches with bookmarks and 410, optimistic concurrency, validation,
fault injection, seeding, and never crashing on bad input.

pytest-asyncio is not a dependency: each async test runs under ``asyncio.run`` via
:func:`async_test`.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ParamSpec

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch

from driftwatch.sandbox import DEFAULT_TOKEN, Sandbox, SeedError
from tests.aio import async_test

P = ParamSpec("P")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "config" / "examples" / "policies"
NP_PATH = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
JSON = {"Content-Type": "application/json"}
YAML = {"Content-Type": "application/yaml"}
# Nine levels of ten aliases: 10**9 values once expanded, a few hundred bytes on the wire.
ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def np_body(name: str, ns: str = "shop", app: str | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns, **meta},
        "spec": {"podSelector": {"matchLabels": {"app": app or name}}},
    }


@asynccontextmanager
async def cluster(**options: Any) -> AsyncIterator[tuple[Sandbox, client.NetworkingV1Api]]:
    """A sandbox with a ``shop`` namespace and a kubernetes_asyncio client for it."""
    options.setdefault("bookmark_interval", 0.2)
    async with Sandbox(namespaces=("default", "shop"), **options) as sb:
        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=str(sb.kubeconfig_path()), client_configuration=configuration
        )
        async with client.ApiClient(configuration=configuration) as api:
            yield sb, client.NetworkingV1Api(api)


@asynccontextmanager
async def http(sb: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    async with aiohttp.ClientSession(sb.url, headers=headers) as session:
        yield session


async def collect(
    events: AsyncIterator[dict[str, Any]], count: int, *, skip_bookmarks: bool = True
) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of the next ``count`` events."""
    seen: list[tuple[str, str, str]] = []
    async for event in events:
        if event["type"] == "BOOKMARK" and skip_bookmarks:
            continue
        meta = event["raw_object"]["metadata"]
        seen.append((event["type"], meta.get("name", ""), meta["resourceVersion"]))
        if len(seen) == count:
            break
    return seen


# --- reading and watching -----------------------------------------------------------------


@async_test
async def test_list_and_watch_added_modified_deleted_with_bookmarks() -> None:
    async with cluster() as (sb, net):
        sb.put_object(np_body("web"))
        listing = await net.list_network_policy_for_all_namespaces()
        assert [p.metadata.name for p in listing.items] == ["web"]
        start = listing.metadata.resource_version
        assert start == sb.resource_version

        stream = watch.Watch().stream(
            net.list_namespaced_network_policy,
            "shop",
            resource_version=start,
            allow_watch_bookmarks=True,
            timeout_seconds=10,
        )

        async def mutate() -> None:
            await sb.wait_for_watchers(1, resource="networkpolicies")
            sb.put_object(np_body("api"))
            sb.put_object(np_body("web", app="other"))
            sb.delete_object("networking.k8s.io/v1", "NetworkPolicy", "api", "shop")

        writer = asyncio.create_task(mutate())
        events = await collect(stream, 4, skip_bookmarks=False)
        await writer
        changes = [(t, n) for t, n, _ in events if t != "BOOKMARK"]
        assert changes[:3] == [("ADDED", "api"), ("MODIFIED", "web"), ("DELETED", "api")]
        versions = [int(rv) for _, _, rv in events]
        assert versions == sorted(versions)
        bookmark = await collect(stream, 1, skip_bookmarks=False)
        assert bookmark[0][0] == "BOOKMARK"
        assert bookmark[0][2] == sb.resource_version
        await stream.close()


@async_test
async def test_watch_replays_history_after_the_requested_version() -> None:
    async with cluster() as (sb, net):
        start = sb.resource_version
        sb.put_object(np_body("a"))
        sb.put_object(np_body("b"))
        stream = watch.Watch().stream(
            net.list_network_policy_for_all_namespaces, resource_version=start, timeout_seconds=2
        )
        events = await collect(stream, 2)
        assert [(t, n) for t, n, _ in events] == [("ADDED", "a"), ("ADDED", "b")]
        await stream.close()


@async_test
async def test_watch_without_version_starts_with_the_current_state() -> None:
    async with cluster() as (sb, _), http(sb) as session:
        sb.put_object(np_body("a"))
        async with session.get(NP_PATH.format(ns="shop"), params={"watch": "1"}) as response:
            assert response.headers["Content-Type"] == "application/json"
            first = json.loads(await response.content.readline())
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "a")
        assert first["object"]["kind"] == "NetworkPolicy"


@async_test
async def test_label_selector_watch_turns_relabels_into_added_and_deleted() -> None:
    async with cluster() as (sb, net):
        start = sb.resource_version
        sb.put_object(np_body("web", labels={"team": "a"}))
        sb.put_object(np_body("web", labels={"team": "b"}))
        sb.put_object(np_body("web", labels={"team": "a"}))
        stream = watch.Watch().stream(
            net.list_namespaced_network_policy,
            "shop",
            resource_version=start,
            label_selector="team=a",
            timeout_seconds=2,
        )
        events = await collect(stream, 3)
        assert [t for t, _, _ in events] == ["ADDED", "DELETED", "ADDED"]
        await stream.close()


@async_test
async def test_list_selectors_and_paging() -> None:
    async with cluster() as (sb, net):
        for name in ("a", "b", "c"):
            sb.put_object(np_body(name, labels={"tier": "x" if name != "b" else "y"}))
        by_label = await net.list_namespaced_network_policy("shop", label_selector="tier=x")
        assert [p.metadata.name for p in by_label.items] == ["a", "c"]
        by_field = await net.list_network_policy_for_all_namespaces(
            field_selector="metadata.name=b,metadata.namespace=shop"
        )
        assert [p.metadata.name for p in by_field.items] == ["b"]
        first = await net.list_namespaced_network_policy("shop", limit=2)
        assert [p.metadata.name for p in first.items] == ["a", "b"]
        assert first.metadata.remaining_item_count == 1
        rest = await net.list_namespaced_network_policy(
            "shop", limit=2, _continue=first.metadata._continue
        )
        assert [p.metadata.name for p in rest.items] == ["c"]
        assert rest.metadata._continue is None
        with pytest.raises(client.ApiException) as caught:
            await net.list_namespaced_network_policy("shop", field_selector="spec.podSelector=x")
        assert caught.value.status == 400


# --- writing ------------------------------------------------------------------------------


@async_test
async def test_create_conflicts_and_stale_replace() -> None:
    async with cluster() as (sb, net):
        created = await net.create_namespaced_network_policy("shop", np_body("web"))
        assert created.metadata.generation == 1
        assert created.metadata.uid
        assert created.metadata.managed_fields[0].manager == "OpenAPI-Generator"
        with pytest.raises(client.ApiException) as caught:
            await net.create_namespaced_network_policy("shop", np_body("web"))
        assert caught.value.status == 409
        assert json.loads(caught.value.body)["reason"] == "AlreadyExists"

        fresh = await net.read_namespaced_network_policy("web", "shop")
        fresh.spec.pod_selector.match_labels = {"app": "new"}
        replaced = await net.replace_namespaced_network_policy("web", "shop", fresh)
        assert replaced.metadata.generation == 2
        fresh.spec.pod_selector.match_labels = {"app": "stale"}  # still the old version
        with pytest.raises(client.ApiException) as caught:
            await net.replace_namespaced_network_policy("web", "shop", fresh)
        assert caught.value.status == 409
        status = json.loads(caught.value.body)
        assert status["reason"] == "Conflict"
        assert "the object has been modified" in status["message"]
        assert sb.get_object("networking.k8s.io/v1", "NetworkPolicy", "web", "shop") is not None


@async_test
async def test_generation_moves_only_with_spec_and_no_op_writes_are_not_written() -> None:
    async with cluster() as (sb, net):
        await net.create_namespaced_network_policy("shop", np_body("web"))
        version = sb.resource_version
        same = await net.patch_namespaced_network_policy("web", "shop", {"spec": {}})
        assert same.metadata.resource_version == version
        labelled = await net.patch_namespaced_network_policy(
            "web", "shop", {"metadata": {"labels": {"x": "y"}}}
        )
        assert labelled.metadata.generation == 1
        assert int(labelled.metadata.resource_version) > int(version)
        respec = await net.patch_namespaced_network_policy(
            "web", "shop", {"spec": {"policyTypes": ["Egress"]}}
        )
        assert respec.metadata.generation == 2


@async_test
async def test_invalid_policy_is_422_naming_the_field() -> None:
    async with cluster() as (_, net):
        body = np_body("web")
        body["spec"]["ingress"] = [{"ports": [{"port": 70000}]}]
        with pytest.raises(client.ApiException) as caught:
            await net.create_namespaced_network_policy("shop", body)
        status = json.loads(caught.value.body)
        assert caught.value.status == 422
        assert status["reason"] == "Invalid"
        assert status["details"]["causes"][0]["field"] == "spec.ingress[0].ports[0].port"
        assert status["details"]["kind"] == "NetworkPolicy"
        assert status["message"].startswith('NetworkPolicy.networking.k8s.io "web" is invalid')


@async_test
async def test_missing_namespace_is_404_unless_auto_created() -> None:
    async with cluster() as (_, net):
        with pytest.raises(client.ApiException) as caught:
            await net.create_namespaced_network_policy("nowhere", np_body("web", "nowhere"))
        assert caught.value.status == 404
        assert json.loads(caught.value.body)["message"] == 'namespaces "nowhere" not found'
    async with cluster(auto_create_namespaces=True) as (sb, net):
        await net.create_namespaced_network_policy("new", np_body("web", "new"))
        namespace = sb.get_object("v1", "Namespace", "new")
        assert namespace is not None
        assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": "new"}


@async_test
async def test_unknown_fields_follow_field_validation() -> None:
    async with cluster() as (sb, _), http(sb) as session:
        body = np_body("web")
        body["spec"]["podSelectr"] = {}
        url = NP_PATH.format(ns="shop")
        async with session.post(url, json=body, params={"fieldValidation": "Strict"}) as r:
            assert r.status == 400
            assert 'unknown field "spec.podSelectr"' in (await r.json())["message"]
        async with session.post(url, json=body) as r:  # Warn, the default
            assert r.status == 201
            assert r.headers.getall("Warning") == ['299 - "unknown field \\"spec.podSelectr\\""']
            assert "podSelectr" not in (await r.json())["spec"]


@async_test
async def test_dry_run_and_delete_preconditions() -> None:
    async with cluster() as (sb, _), http(sb) as session:
        url = NP_PATH.format(ns="shop")
        async with session.post(url, json=np_body("web"), params={"dryRun": "All"}) as r:
            assert r.status == 201
        assert sb.get_object("networking.k8s.io/v1", "NetworkPolicy", "web", "shop") is None
        sb.put_object(np_body("web"))
        stale = {"preconditions": {"resourceVersion": "1"}}
        async with session.delete(f"{url}/web", json=stale) as r:
            assert r.status == 409
        async with session.delete(f"{url}/web") as r:
            assert r.status == 200
            assert (await r.json())["status"] == "Success"
        assert [c.type for c in sb.changes if c.name == "web"] == ["ADDED", "DELETED"]


@async_test
async def test_deleting_a_namespace_deletes_its_contents() -> None:
    async with cluster() as (sb, _), http(sb) as session:
        sb.put_object(np_body("web"))
        async with session.delete("/api/v1/namespaces/shop") as r:
            assert r.status == 200
        assert sb.list_objects("networking.k8s.io/v1", "NetworkPolicy") == []
        kinds = [(c.type, c.resource) for c in sb.changes[-2:]]
        assert kinds == [("DELETED", "networkpolicies"), ("DELETED", "namespaces")]


@async_test
async def test_change_log_is_the_ground_truth() -> None:
    async with cluster() as (sb, net), http(sb) as session:
        start = int(sb.resource_version)
        await net.create_namespaced_network_policy("shop", np_body("web"))
        await net.patch_namespaced_network_policy(
            "web", "shop", {"spec": {"policyTypes": ["Egress"]}}
        )
        await net.delete_namespaced_network_policy("web", "shop")
        log = [c for c in sb.changes if int(c.resource_version) > start]
        assert [(c.type, c.key, c.manager) for c in log] == [
            ("ADDED", ("shop", "web"), "OpenAPI-Generator"),
            ("MODIFIED", ("shop", "web"), "OpenAPI-Generator"),
            ("DELETED", ("shop", "web"), "OpenAPI-Generator"),
        ]
        assert [int(c.resource_version) for c in log] == [start + 1, start + 2, start + 3]
        async with session.get("/_sandbox/changes", params={"since": str(start)}) as r:
            remote = (await r.json())["changes"]
        assert [c["type"] for c in remote] == ["ADDED", "MODIFIED", "DELETED"]


# --- faults -------------------------------------------------------------------------------


@async_test
async def test_compaction_makes_an_old_watch_410() -> None:
    async with cluster() as (sb, net):
        start = sb.resource_version
        sb.put_object(np_body("web"))
        sb.faults.compact()
        stream = watch.Watch().stream(
            net.list_network_policy_for_all_namespaces, resource_version=start, timeout_seconds=2
        )
        with pytest.raises(client.ApiException) as caught:
            await collect(stream, 1)
        assert caught.value.status == 410
        assert "too old resource version" in str(caught.value.reason)
        # From the current version it is fine.
        ok = watch.Watch().stream(
            net.list_network_policy_for_all_namespaces,
            resource_version=sb.resource_version,
            timeout_seconds=5,
        )
        sb.put_object(np_body("next"))
        assert [(t, n) for t, n, _ in await collect(ok, 1)] == [("ADDED", "next")]
        await ok.close()


@async_test
async def test_cut_watches_end_the_client_stream() -> None:
    async with cluster() as (sb, net):
        for abrupt in (False, True):
            stream = watch.Watch().stream(
                net.list_network_policy_for_all_namespaces,
                resource_version=sb.resource_version,
                timeout_seconds=30,
            )
            reader = asyncio.create_task(collect(stream, 1))
            await sb.wait_for_watchers(1)
            assert sb.faults.cut_watches(abrupt=abrupt) == 1
            if abrupt:
                with pytest.raises(aiohttp.ClientPayloadError):
                    await reader
            else:
                assert await reader == []
            await stream.close()


@async_test
async def test_a_client_that_watches_forever_resumes_after_a_cut() -> None:
    async with cluster() as (sb, net):
        stream = watch.Watch().stream(
            net.list_network_policy_for_all_namespaces, resource_version=sb.resource_version
        )
        reader = asyncio.create_task(collect(stream, 2))
        await sb.wait_for_watchers(1)
        sb.put_object(np_body("before"))
        await asyncio.sleep(0.1)
        sb.faults.cut_watches()
        await sb.wait_for_watchers(1)  # kubernetes_asyncio re-watched from its last version
        sb.put_object(np_body("after"))
        events = await reader
        assert [(t, n) for t, n, _ in events] == [("ADDED", "before"), ("ADDED", "after")]
        await stream.close()


@async_test
async def test_fail_mode_answers_500_then_recovers() -> None:
    async with cluster() as (sb, net):
        sb.faults.fail(count=2, match="networkpolicies")
        for _ in range(2):
            with pytest.raises(client.ApiException) as caught:
                await net.list_network_policy_for_all_namespaces()
            assert caught.value.status == 500
        await net.list_network_policy_for_all_namespaces()
        sb.faults.fail(status=503, duration=0.2)
        with pytest.raises(client.ApiException) as caught:
            await net.list_network_policy_for_all_namespaces()
        assert caught.value.status == 503
        assert caught.value.headers["Retry-After"] == "1"
        await asyncio.sleep(0.25)
        await net.list_network_policy_for_all_namespaces()


@async_test
async def test_refuse_delay_and_restart() -> None:
    async with cluster() as (sb, net):
        # aiohttp retries a request once when a pooled connection drops: refuse for a while.
        sb.faults.refuse(duration=0.3)
        with pytest.raises(aiohttp.ClientError):
            await net.list_network_policy_for_all_namespaces()
        await asyncio.sleep(0.35)
        await net.list_network_policy_for_all_namespaces()

        sb.faults.delay(0.3, count=1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await net.list_network_policy_for_all_namespaces()
        assert loop.time() - started >= 0.3

        before = sb.resource_version
        sb.put_object(np_body("web"))
        sb.faults.restart()
        assert sb.get_object("networking.k8s.io/v1", "NetworkPolicy", "web", "shop") is not None
        stream = watch.Watch().stream(
            net.list_network_policy_for_all_namespaces, resource_version=before, timeout_seconds=1
        )
        with pytest.raises(client.ApiException) as caught:
            await collect(stream, 1)
        assert caught.value.status == 410


@async_test
async def test_admin_endpoints_drive_the_same_faults() -> None:
    async with cluster() as (sb, net), http(sb) as session:
        async with session.post("/_sandbox/faults/errors", json={"count": 1}) as r:
            assert r.status == 200
        with pytest.raises(client.ApiException):
            await net.list_network_policy_for_all_namespaces()
        async with session.post("/_sandbox/faults/compact") as r:
            assert (await r.json())["result"] == sb.resource_version
        async with session.post("/_sandbox/faults/delay", json={"seconds": "soon"}) as r:
            assert r.status == 400
        async with session.get("/_sandbox/state") as r:
            state = await r.json()
        assert state["objects"]["namespaces"] == 2
        assert state["compacted"] == sb.resource_version


# --- the HTTP surface ---------------------------------------------------------------------


@async_test
async def test_bad_input_gets_a_status_never_a_crash() -> None:
    async with cluster() as (sb, _), http(sb) as session:
        url = NP_PATH.format(ns="shop")
        cases: list[tuple[str, str, dict[str, Any], int]] = [
            (
                "POST",
                url,
                {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
                400,
            ),
            (
                "POST",
                url,
                {"data": b"[1, 2]", "headers": {"Content-Type": "application/json"}},
                400,
            ),
            ("POST", url, {"data": b"NaN", "headers": JSON}, 400),
            ("POST", url, {"data": b"x", "headers": {"Content-Type": "application/protobuf"}}, 415),
            ("POST", url, {"json": {"kind": "Pod", "metadata": {"name": "x"}}}, 400),
            ("POST", url, {"json": {"metadata": {"name": 7}}}, 422),
            ("POST", url, {"json": {"metadata": "web"}}, 400),
            ("POST", url, {"json": {"metadata": {"name": "Bad_Name"}}}, 422),
            ("POST", url, {"json": np_body("x", ns="other")}, 400),
            ("PATCH", f"{url}/nope", {"json": {}}, 415),
            ("GET", f"{url}?limit=abc", {}, 400),
            ("GET", f"{url}?labelSelector=a%20in%20(", {}, 400),
            ("GET", f"{url}?watch=1&resourceVersion=abc", {}, 400),
            ("GET", f"{url}?watch=1&timeoutSeconds=-1", {}, 400),
            ("GET", "/apis/networking.k8s.io/v1/secrets", {}, 404),
            ("GET", "/nothing/here", {}, 404),
            ("PUT", url, {"json": {}}, 405),
            ("POST", url, {"data": io.BytesIO(b"x" * (3 * 1024 * 1024 + 10))}, 413),
            ("POST", url, {"data": b"[" * 500 + b"]" * 500, "headers": JSON}, 400),
            ("POST", url, {"data": ALIAS_BOMB.encode(), "headers": YAML}, 400),
            ("POST", url, {"data": b"{1: 2}", "headers": YAML}, 400),
        ]
        for method, path, kwargs, expected in cases:
            async with session.request(method, path, **kwargs) as r:
                body = await r.json()
                assert (r.status, body["kind"]) == (expected, "Status"), (method, path, body)
        sb.put_object(np_body("web"))
        patches: list[tuple[str, Any, int]] = [
            ("application/json-patch+json", {"op": "add"}, 400),
            ("application/json-patch+json", [{"op": "remove", "path": "/spec/nope"}], 422),
            ("application/json-patch+json", [{"op": "test", "path": "/kind", "value": "X"}], 422),
            ("application/merge-patch+json", [], 400),
            ("application/strategic-merge-patch+json", {"spec": {"$patch": "explode"}}, 422),
            ("application/merge-patch+json", {"metadata": {"name": "renamed"}}, 400),
        ]
        for ctype, patch, expected in patches:
            headers = {"Content-Type": ctype}
            async with session.patch(f"{url}/web", data=json.dumps(patch), headers=headers) as r:
                assert r.status == expected, (ctype, patch, await r.text())


@async_test
async def test_authentication() -> None:
    async with cluster(require_auth=True) as (sb, net):
        await net.list_network_policy_for_all_namespaces()  # the kubeconfig's token works
        async with aiohttp.ClientSession(sb.url) as anonymous:
            async with anonymous.get("/apis/networking.k8s.io/v1/networkpolicies") as r:
                assert r.status == 401
            async with anonymous.get("/version") as r:
                assert r.status == 200
    async with cluster() as (sb, _):
        wrong = {"Authorization": "Bearer nope"}
        async with (
            aiohttp.ClientSession(sb.url, headers=wrong) as session,
            session.get("/api/v1/namespaces") as r,
        ):
            assert r.status == 401
        async with (
            aiohttp.ClientSession(sb.url) as anonymous,
            anonymous.get("/api/v1/namespaces") as r,
        ):
            assert r.status == 200  # as kubectl over plain HTTP: no credentials at all


@async_test
async def test_discovery_and_openapi_documents() -> None:
    async with cluster() as (sb, _), http(sb) as session:
        async with session.get("/apis/networking.k8s.io/v1") as r:
            resources = {res["name"]: res for res in (await r.json())["resources"]}
        netpol = resources["networkpolicies"]
        assert netpol["shortNames"] == ["netpol"]
        assert netpol["namespaced"] is True
        assert {"watch", "patch", "list"} <= set(netpol["verbs"])
        async with session.get("/apis") as r:
            groups = [g["name"] for g in (await r.json())["groups"]]
        assert groups == [
            "networking.k8s.io",
            "coordination.k8s.io",
            "apiextensions.k8s.io",
            "admissionregistration.k8s.io",
        ]
        async with session.get("/openapi/v3") as r:
            index = (await r.json())["paths"]
        async with session.get(index["apis/networking.k8s.io/v1"]["serverRelativeURL"]) as r:
            document = await r.json()
        item = document["paths"][
            "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}"
        ]
        params = {p["name"] for p in item["patch"]["parameters"]}
        assert {"fieldValidation", "fieldManager", "dryRun"} <= params
        assert item["patch"]["x-kubernetes-group-version-kind"]["kind"] == "NetworkPolicy"
        assert "io.k8s.api.networking.v1.NetworkPolicySpec" in document["components"]["schemas"]
        async with session.get("/openapi/v2") as r:
            assert r.status == 404


@async_test
async def test_server_side_apply_creates_and_detects_conflicts() -> None:
    async with cluster() as (sb, _), http(sb) as session:
        url = NP_PATH.format(ns="shop") + "/web"
        headers = {"Content-Type": "application/apply-patch+yaml"}
        body = json.dumps(np_body("web"))
        async with session.patch(url, data=body, headers=headers) as r:
            assert r.status == 422  # fieldManager is required
        params = {"fieldManager": "gitops"}
        async with session.patch(url, data=body, headers=headers, params=params) as r:
            assert r.status == 201
        sb.put_object(np_body("web", app="hotfix"), manager="kubectl-edit")
        async with session.patch(url, data=body, headers=headers, params=params) as r:
            assert r.status == 409
            assert 'conflict with "kubectl-edit"' in (await r.json())["message"]
        forced = {**params, "force": "true"}
        async with session.patch(url, data=body, headers=headers, params=forced) as r:
            assert r.status == 200
            assert (await r.json())["spec"]["podSelector"] == {"matchLabels": {"app": "web"}}


# --- seeding and clients ------------------------------------------------------------------


@async_test
async def test_seed_applies_the_examples_like_kubectl() -> None:
    async with Sandbox(seed=[EXAMPLES]) as sb:
        policies = sb.list_objects("networking.k8s.io/v1", "NetworkPolicy")
        assert len(policies) == 14
        namespaces = {n["metadata"]["name"] for n in sb.list_objects("v1", "Namespace")}
        assert {"shop", "payments", "monitoring", "ingress-nginx", "default"} <= namespaces
        first = policies[0]["metadata"]
        assert "kubectl.kubernetes.io/last-applied-configuration" in first["annotations"]
        assert first["managedFields"][0]["manager"] == "kubectl-client-side-apply"


def test_seed_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
        "spec: {podSelector: {}}\n---\napiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\nmetadata: {name: y}\nspec: {policyTypes: [Sideways]}\n",
        encoding="utf-8",
    )

    async def start() -> None:
        async with Sandbox(seed=[bad]):
            pass

    with pytest.raises(SeedError, match=r"bad\.yaml:6: .*spec\.policyTypes\[0\]"):
        asyncio.run(start())


@async_test
async def test_table_output_for_kubectl_get() -> None:
    async with cluster() as (sb, _), http(sb) as session:
        sb.put_object(np_body("web"))
        accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        async with session.get(NP_PATH.format(ns="shop"), headers={"Accept": accept}) as r:
            table = await r.json()
        assert table["kind"] == "Table"
        assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Pod-Selector", "Age"]
        assert table["rows"][0]["cells"][:2] == ["web", "app=web"]
        assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


@async_test
async def test_leases_and_pods() -> None:
    async with cluster() as (sb, net):
        api = net.api_client
        leases = client.CoordinationV1Api(api)
        now = datetime.datetime.now(datetime.UTC)
        lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name="driftwatch-leader"),
            spec=client.V1LeaseSpec(
                holder_identity="a", lease_duration_seconds=15, acquire_time=now
            ),
        )
        created = await leases.create_namespaced_lease("shop", lease)
        created.spec.holder_identity = "b"
        renewed = await leases.replace_namespaced_lease("driftwatch-leader", "shop", created)
        assert renewed.spec.holder_identity == "b"
        with pytest.raises(client.ApiException) as caught:  # a rival with the old version
            await leases.replace_namespaced_lease("driftwatch-leader", "shop", created)
        assert caught.value.status == 409

        core = client.CoreV1Api(api)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7"},
        }
        await core.create_namespaced_pod("shop", pod)
        stored = await core.read_namespaced_pod("web", "shop")
        assert stored.status.pod_ip == "10.0.0.7"  # the sandbox keeps a given status
        assert stored.spec.restart_policy == "Always"
        patched = await core.patch_namespaced_pod(
            "web", "shop", {"metadata": {"labels": {"v": "2"}}, "status": {"phase": "Failed"}}
        )
        assert patched.status.phase == "Running"  # status only changes through /status
        status = await core.patch_namespaced_pod_status(
            "web", "shop", {"status": {"phase": "Failed"}}
        )
        assert status.status.phase == "Failed"
        with pytest.raises(client.ApiException) as caught:
            await core.patch_namespaced_pod("web", "shop", {"spec": {"restartPolicy": "Never"}})
        assert caught.value.status == 422
        running = await core.list_namespaced_pod("shop", field_selector="status.phase=Failed")
        assert [p.metadata.name for p in running.items] == ["web"]
        assert sb.changes[-1].resource == "pods"
