"""The HTTP server on a real loopback port, with a hand-built backend: probes, metrics
exposition, the incidents API (auth, filters, shapes, ids with ``/`` and ``#``), JSON
errors (404, 405, 413, 500 without a traceback), listening (port 0, IPv6, address in use).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from driftwatch.incidents import Incident, IncidentState, SqliteStore, iso_time
from driftwatch.policy import PolicyKey
from driftwatch.server import Backend, GitTrigger, HttpServer, Metrics, Readiness, ServerError
from driftwatch.settings import ServerSettings
from tests.aio import async_test

TOKEN = "s3cret-token-for-tests"
NOW = 1_800_000_000.0


def settings(**extra: Any) -> ServerSettings:
    return ServerSettings.model_validate({"listen": "127.0.0.1:0", **extra})


@contextlib.asynccontextmanager
async def serving(
    backend: Backend, config: ServerSettings | None = None
) -> AsyncIterator[tuple[HttpServer, aiohttp.ClientSession]]:
    server = HttpServer(config or settings(api_token=TOKEN))
    await server.start(backend)
    try:
        async with aiohttp.ClientSession(base_url=server.url) as client:
            yield server, client
    finally:
        await server.close()


def incident(
    namespace: str,
    name: str,
    number: int = 1,
    *,
    state: IncidentState = IncidentState.OPEN,
    severity: str | None = "high",
    at: float = NOW,
) -> Incident:
    key = PolicyKey("prod", namespace, name)
    resolved = iso_time(at + 60) if state is IncidentState.RESOLVED else None
    return Incident(
        id=f"prod/{namespace}/{name}#{number}",
        key=key,
        number=number,
        state=state,
        severity=severity,
        status="modified",
        fingerprint="f",
        opened_at=iso_time(at),
        updated_at=iso_time(at + 60),
        resolved_at=resolved,
        last_notified_at=iso_time(at),
        body={"schema_version": 1, "type": "drift.opened", "incident_id": f"prod/{namespace}"},
        labels={"team": "shop"},
    )


@contextlib.asynccontextmanager
async def store_with(tmp_path: Path, *incidents: Incident) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore(tmp_path / "state.db").open()
    try:
        for item in incidents:
            await store.save(item, [], NOW)
        yield store
    finally:
        await store.close()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------------------------
# Probes and metrics


@async_test
async def test_healthz_and_readyz_answer_json_with_reasons_and_role() -> None:
    state = {"ready": Readiness(("desired state not loaded", "role not known yet"), None)}
    backend = Backend(metrics=Metrics(), readiness=lambda: state["ready"])
    async with serving(backend) as (_, client):
        async with client.get("/healthz") as r:
            assert (r.status, await r.json()) == (200, {"status": "ok"})
            assert r.headers["Content-Type"].startswith("application/json")
        async with client.get("/readyz") as r:
            assert r.status == 503
            assert await r.json() == {
                "status": "not ready",
                "reasons": ["desired state not loaded", "role not known yet"],
                "role": None,
            }
        state["ready"] = Readiness((), "follower")
        async with client.get("/readyz") as r:
            assert r.status == 200
            assert await r.json() == {"status": "ready", "reasons": [], "role": "follower"}


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


@async_test
async def test_metrics_are_prometheus_text_refreshed_before_each_scrape() -> None:
    metrics = Metrics(version="9.9.9")
    scrapes = []

    async def refresh() -> None:
        scrapes.append(1)
        metrics.set_open_drifts({"high": 2, "critical": 1}, 42.0)
        metrics.set_leader(True)

    async with serving(Backend(metrics=metrics, refresh_metrics=refresh)) as (_, client):
        metrics.watch_event("ADDED")
        metrics.watch_event("WEIRD")
        async with client.get("/metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            found = families(await r.text())
        async with client.get("/metrics", headers={"Accept": "application/openmetrics-text"}) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
    assert len(scrapes) == 2
    info = found["driftwatch_build_info"].samples[0]
    assert (info.labels, info.value) == ({"version": "9.9.9"}, 1.0)
    opened = {s.labels["severity"]: s.value for s in found["driftwatch_drifts_open"].samples}
    assert opened == {"info": 0, "low": 0, "medium": 0, "high": 2, "critical": 1}
    assert found["driftwatch_drift_oldest_open_seconds"].samples[0].value == 42.0
    assert found["driftwatch_leader"].samples[0].value == 1
    events = {
        s.labels["type"]: s.value
        for s in found["driftwatch_watch_events"].samples
        if s.name.endswith("_total") and s.value
    }
    assert events == {"ADDED": 1, "OTHER": 1}
    assert "process_cpu_seconds" in found  # the standard process metrics


@async_test
async def test_a_failing_refresh_still_serves_the_counters() -> None:
    async def refresh() -> None:
        raise OSError("the state database is gone")

    backend = Backend(metrics=Metrics(), refresh_metrics=refresh)
    with capture_logs() as logs:
        async with serving(backend) as (_, client), client.get("/metrics") as r:
            assert r.status == 200
            assert "driftwatch_build_info" in await r.text()
    assert any(e["event"] == "metrics refresh failed; serving the last values" for e in logs)


# ---------------------------------------------------------------------------------------------
# Errors


@async_test
async def test_unknown_routes_wrong_methods_and_handler_failures_answer_json() -> None:
    def broken() -> Readiness:
        raise RuntimeError("boom: /etc/secret-path")

    with capture_logs() as logs:
        async with serving(Backend(metrics=Metrics(), readiness=broken)) as (_, client):
            async with client.get("/nope") as r:
                assert (r.status, await r.json()) == (404, {"error": "not found"})
            async with client.post("/healthz") as r:
                assert r.status == 405
                assert await r.json() == {"error": "method not allowed"}
                assert "GET" in r.headers["Allow"]
            async with client.get("/readyz") as r:
                text = await r.text()
                assert r.status == 500
                assert await r.json() == {"error": "internal error"}
            assert "Traceback" not in text
            assert "boom" not in text
    failed = [e for e in logs if e["event"] == "http handler failed"]
    assert failed
    assert failed[0]["path"] == "/readyz"
    assert "boom" in failed[0]["error"]


@async_test
async def test_bodies_over_the_limit_are_refused_with_413(tmp_path: Path) -> None:
    config = settings(git_webhook_secret="hook-secret", max_body_bytes=2048)
    fetched: list[int] = []
    backend = Backend(metrics=Metrics(), git=GitTrigger(lambda: fetched.append(1), "main"))
    async with serving(backend, config) as (_, client):
        headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00"}
        async with client.post("/hooks/git", data=b"x" * 4096, headers=headers) as r:
            assert r.status == 413
            assert await r.json() == {"error": "request body too large", "limit": 2048}

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
            for _ in range(8):
                yield b"y" * 1024

        async with client.post("/hooks/git", data=chunks(), headers=headers) as r:
            assert r.status == 413
    assert fetched == []


# ---------------------------------------------------------------------------------------------
# The incidents API


@async_test
async def test_the_api_needs_the_bearer_token(tmp_path: Path) -> None:
    async with store_with(tmp_path, incident("shop", "web")) as store:
        backend = Backend(metrics=Metrics(), incidents=store)
        async with serving(backend) as (_, client):
            for headers in ({}, {"Authorization": "Basic dTpw"}, {"Authorization": "Bearer"}):
                async with client.get("/api/v1/incidents", headers=headers) as r:
                    assert r.status == 401
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
                    assert await r.json() == {"error": "missing bearer token"}
            for wrong in ("nope", TOKEN + "x", "ünïcödé"):
                async with client.get(
                    "/api/v1/incidents", headers={"Authorization": f"Bearer {wrong}"}
                ) as r:
                    assert r.status == 401
                    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
                    assert await r.json() == {"error": "invalid bearer token"}
            async with client.get("/api/v1/incidents/prod%2Fshop%2Fweb%231") as r:
                assert r.status == 401
            async with client.get("/api/v1/incidents", headers=auth()) as r:
                assert r.status == 200


@async_test
async def test_without_a_token_the_api_is_disabled_with_404(tmp_path: Path) -> None:
    async with store_with(tmp_path, incident("shop", "web")) as store:
        backend = Backend(metrics=Metrics(), incidents=store)
        async with serving(backend, settings()) as (_, client):
            for path in ("/api/v1/incidents", "/api/v1/incidents/prod%2Fshop%2Fweb%231"):
                async with client.get(path, headers=auth()) as r:
                    assert r.status == 404
                    body = await r.json()
                    assert body == {"error": "the API is disabled: set server.api_token_file"}


@async_test
async def test_incidents_are_listed_filtered_and_found_by_encoded_id(tmp_path: Path) -> None:
    items = [
        incident("shop", "web", at=NOW),
        incident("shop", "db", severity="critical", at=NOW + 10),
        incident("shop-eu", "api", severity="low", at=NOW + 20),
        incident("payments", "deny", at=NOW + 30),
        incident("shop", "web", 2, state=IncidentState.RESOLVED, at=NOW - 3600),
    ]
    async with store_with(tmp_path, *items[:4]) as store:
        await store.save(items[4], [], NOW)
        backend = Backend(metrics=Metrics(), incidents=store)
        async with serving(backend) as (_, client):

            async def ids(query: str) -> list[str]:
                async with client.get(f"/api/v1/incidents{query}", headers=auth()) as r:
                    assert r.status == 200, await r.text()
                    body = await r.json()
                    assert body["count"] == len(body["incidents"])
                    return [i["id"] for i in body["incidents"]]

            # Most recently updated first; resolved ones too.
            assert await ids("") == [
                "prod/payments/deny#1",
                "prod/shop-eu/api#1",
                "prod/shop/db#1",
                "prod/shop/web#1",
                "prod/shop/web#2",
            ]
            assert await ids("?state=resolved") == ["prod/shop/web#2"]
            assert await ids("?state=open&severity=high") == [
                "prod/payments/deny#1",
                "prod/shop/web#1",
            ]
            assert await ids("?namespace=shop") == [
                "prod/shop/db#1",
                "prod/shop/web#1",
                "prod/shop/web#2",
            ]
            assert await ids("?namespace=shop*&severity=critical,low") == [
                "prod/shop-eu/api#1",
                "prod/shop/db#1",
            ]
            async with client.get("/api/v1/incidents?limit=2", headers=auth()) as r:
                body = await r.json()
                assert (body["count"], body["limit"], body["truncated"]) == (2, 2, True)

            async with client.get("/api/v1/incidents/prod%2Fshop%2Fweb%231", headers=auth()) as r:
                assert r.status == 200
                one = await r.json()
            assert one == {
                "id": "prod/shop/web#1",
                "cluster": "prod",
                "namespace": "shop",
                "name": "web",
                "number": 1,
                "state": "open",
                "severity": "high",
                "status": "modified",
                "opened_at": iso_time(NOW),
                "updated_at": iso_time(NOW + 60),
                "resolved_at": None,
                "last_notified_at": iso_time(NOW),
                "labels": {"team": "shop"},
                "body": items[0].body,
            }
            async with client.get("/api/v1/incidents/prod%2Fshop%2Fnope%231", headers=auth()) as r:
                assert r.status == 404
                assert await r.json() == {"error": "no such incident", "id": "prod/shop/nope#1"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?state=closed", "state must be one or more of approved, open, resolved, updated"),
        ("?severity=urgent", "severity must be one or more of"),
        ("?limit=0", "limit must be an integer from 1 to 1000"),
        ("?limit=5000", "limit must be an integer from 1 to 1000"),
        ("?limit=ten", "limit must be an integer from 1 to 1000"),
        ("?sevrity=high", "unknown parameter(s) sevrity"),
    ],
)
@async_test
async def test_bad_filters_are_400(tmp_path: Path, query: str, message: str) -> None:
    async with (
        store_with(tmp_path) as store,
        serving(Backend(metrics=Metrics(), incidents=store)) as (_, client),
        client.get(f"/api/v1/incidents{query}", headers=auth()) as r,
    ):
        assert r.status == 400
        assert (await r.json())["error"].startswith(message)


@async_test
async def test_without_a_store_the_api_says_incidents_are_not_kept() -> None:
    async with serving(Backend(metrics=Metrics())) as (_, client):
        for path in ("/api/v1/incidents", "/api/v1/incidents/a%2Fb%2Fc%231"):
            async with client.get(path, headers=auth()) as r:
                assert r.status == 404
                assert "configure notifiers" in (await r.json())["error"]


# ---------------------------------------------------------------------------------------------
# Listening


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
@async_test
async def test_an_ipv6_listen_address_is_served() -> None:
    config = ServerSettings(listen="[::1]:0")
    server = HttpServer(config)
    await server.start(Backend(metrics=Metrics()))
    try:
        assert server.url.startswith("http://[::1]:")
        assert server.port > 0
        async with aiohttp.ClientSession() as client, client.get(server.url + "/healthz") as r:
            assert r.status == 200
    finally:
        await server.close()


@async_test
async def test_an_address_in_use_is_one_clear_error() -> None:
    first = HttpServer(settings())
    await first.start(Backend(metrics=Metrics()))
    try:
        second = HttpServer(ServerSettings(listen=f"127.0.0.1:{first.port}"))
        with pytest.raises(ServerError, match=rf"cannot listen on 127.0.0.1:{first.port}: "):
            await second.start(Backend(metrics=Metrics()))
    finally:
        await first.close()


def test_metrics_objects_do_not_share_state() -> None:
    one, two = Metrics(process=False), Metrics(process=False)
    one.watch_restart("expired")
    assert 'driftwatch_watch_restarts_total{reason="expired"} 1.0' in one.render()[0].decode()
    assert 'reason="expired"' not in two.render()[0].decode()


def test_an_open_drift_count_goes_back_to_zero_for_any_severity_seen() -> None:
    metrics = Metrics(version="1")
    metrics.set_open_drifts({"none": 1, "high": 1}, 5.0)
    metrics.set_open_drifts({}, 0.0)  # both resolved
    found = families(metrics.render("")[0].decode())
    opened = {s.labels["severity"]: s.value for s in found["driftwatch_drifts_open"].samples}
    assert opened == {"info": 0, "low": 0, "medium": 0, "high": 0, "critical": 0, "none": 0}
