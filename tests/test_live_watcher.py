"""The live watcher against the real sandbox API server over loopback.

Nothing in kubernetes_asyncio or aiohttp is patched: every fault is the sandbox's (cut
watches, compaction, refused connections, 5xx, delays, restarts). The server's change log
(``sb.changes``) is the ground truth the events are checked against. pytest-asyncio is not
a dependency: each async test runs under ``asyncio.run`` via :func:`async_test`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ParamSpec

import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration
from structlog.testing import CapturingLogger

from driftwatch.live import (
    Backoff,
    LiveAccessError,
    LiveDeleted,
    LiveEvent,
    LiveInvalid,
    LiveNotFoundError,
    LivePut,
    LiveResynced,
    LiveSynced,
    PolicyWatcher,
    WatchOptions,
    connect,
)
from driftwatch.manifests import paused_gc
from driftwatch.policy import NetworkPolicy, parse_policy
from driftwatch.sandbox import Sandbox, SandboxThread
from driftwatch.sandbox.kubeconfig import kubeconfig, write_kubeconfig
from tests.aio import async_test

P = ParamSpec("P")
NP = ("networking.k8s.io/v1", "NetworkPolicy")
FAST = WatchOptions(page_size=500, server_timeout=30, read_timeout=2.0)
QUICK = Backoff(initial=0.01, maximum=0.05, factor=2.0, jitter=0.5)
Key = tuple[str, str]


def seeded(seed: int | None = None) -> random.Random:
    return random.Random(seed)  # noqa: S311  (reproducible test data, not secrets)


def np_body(
    name: str, ns: str = "shop", app: str | None = None, port: int | None = None, **meta: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"app": app or name}}}
    if port is not None:
        spec["ingress"] = [{"ports": [{"port": port}]}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns, **meta},
        "spec": spec,
    }


def server_view(sb: Sandbox) -> dict[Key, NetworkPolicy]:
    return {
        (o["metadata"]["namespace"], o["metadata"]["name"]): parse_policy(o)
        for o in sb.list_objects(*NP)
    }


def policy_changes(sb: Sandbox, after: int = 0) -> list[Any]:
    return [
        c for c in sb.changes if c.resource == "networkpolicies" and int(c.resource_version) > after
    ]


class Recorder:
    """Consumes ``watcher.events()`` in a task; keeps every event and the accumulated view."""

    def __init__(self, watcher: PolicyWatcher) -> None:
        self.watcher = watcher
        self.events: list[LiveEvent] = []
        self.view: dict[Key, NetworkPolicy] = {}
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    async def _pump(self) -> None:
        try:
            async with contextlib.aclosing(self.watcher.events()) as stream:
                async for event in stream:
                    self.events.append(event)
                    self._apply(event)
        except Exception as error:
            self.error = error

    def _apply(self, event: LiveEvent) -> None:
        if isinstance(event, LiveSynced):
            assert not self.view, "LiveSynced twice"
            self.view = dict(event.policies)
        elif isinstance(event, LivePut):
            assert (event.key in self.view) != event.created, event
            self.view[event.key] = event.policy
        elif isinstance(event, LiveDeleted | LiveInvalid):
            self.view.pop(event.key, None)

    def changes(self) -> list[LivePut | LiveDeleted]:
        return [e for e in self.events if isinstance(e, LivePut | LiveDeleted)]

    async def wait(self, predicate: Callable[[], bool], timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.error is not None:
                raise self.error
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; {len(self.events)} events: {self.events[-5:]}")
            await asyncio.sleep(0.01)

    async def synced(self) -> LiveSynced:
        await self.wait(lambda: bool(self.events))
        first = self.events[0]
        assert isinstance(first, LiveSynced)
        return first

    async def caught_up(self, sb: Sandbox, timeout: float = 8.0) -> None:
        """Until the view is the server's; then a quiet moment for stray events."""
        await self.wait(lambda: self.view == server_view(sb), timeout)
        count = len(self.events)
        await asyncio.sleep(0.1)
        assert len(self.events) == count, self.events[count:]
        assert self.view == server_view(sb)


@contextlib.asynccontextmanager
async def watching(
    sb: Sandbox, *, token: str | None = None, **kwargs: Any
) -> AsyncIterator[Recorder]:
    kwargs.setdefault("options", FAST)
    kwargs.setdefault("backoff", QUICK)
    kwargs.setdefault("log", CapturingLogger())
    kwargs.setdefault("rng", seeded(7))
    api = await connect(sb.kubeconfig_path(), token=token)
    async with api:
        recorder = Recorder(PolicyWatcher(api, **kwargs))
        recorder.task = asyncio.create_task(recorder._pump())
        try:
            yield recorder
        finally:
            recorder.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder.task


def sandbox(**options: Any) -> Sandbox:
    options.setdefault("bookmark_interval", 0.05)
    options.setdefault("namespaces", ("default", "shop", "web"))
    return Sandbox(**options)


def summary(events: list[Any]) -> list[tuple[str, str, str, bool | None]]:
    out: list[tuple[str, str, str, bool | None]] = []
    for e in events:
        if isinstance(e, LivePut):
            out.append(("put", f"{e.key[0]}/{e.key[1]}", e.resource_version, e.created))
        elif isinstance(e, LiveDeleted):
            out.append(("deleted", f"{e.namespace}/{e.name}", e.resource_version, None))
        elif isinstance(e, LiveInvalid):
            out.append(("invalid", f"{e.namespace}/{e.name}", "", None))
        elif isinstance(e, LiveResynced):
            out.append(("resynced", e.since, e.resource_version, None))
    return out


async def disconnected(sb: Sandbox, rec: Recorder) -> None:
    """Cut the watch and keep every new connection refused (until faults.clear())."""
    before = sum(rec.watcher.stats.restarts.values())
    sb.faults.refuse()
    sb.faults.cut_watches(abrupt=True)
    await rec.wait(lambda: sum(rec.watcher.stats.restarts.values()) > before)


# --- listing ----------------------------------------------------------------------------


@async_test
async def test_initial_paginated_list_is_one_synced_event_equal_to_the_server() -> None:
    async with sandbox() as sb:
        for i in range(23):
            sb.put_object(np_body(f"p{i:02}", ns=("shop", "web", "default")[i % 3], port=i + 1))
        options = WatchOptions(page_size=5, read_timeout=2.0)
        async with watching(sb, options=options) as rec:
            tokens: list[str | None] = []
            transport = rec.watcher._transport
            list_page = transport.list_page

            async def spy(namespace: str | None, token: str | None) -> dict[str, Any]:
                tokens.append(token)
                return await list_page(namespace, token)

            transport.list_page = spy  # type: ignore[method-assign]
            synced = await rec.synced()
        assert synced.policies == server_view(sb)
        assert len(synced.policies) == 23
        assert synced.resource_version == sb.resource_version
        assert len(tokens) == 5
        assert tokens[0] is None
        assert all(tokens[1:])
        assert all(p.origin is not None for p in synced.policies.values())
        assert rec.watcher.stats.lists == 1


@async_test
async def test_a_continue_token_compacted_away_restarts_the_list() -> None:
    async with sandbox() as sb:
        for i in range(12):
            sb.put_object(np_body(f"p{i:02}"))
        async with watching(sb, options=WatchOptions(page_size=4, read_timeout=2.0)) as rec:
            transport = rec.watcher._transport
            list_page = transport.list_page
            calls = 0

            async def compacting(namespace: str | None, token: str | None) -> dict[str, Any]:
                nonlocal calls
                calls += 1
                page = await list_page(namespace, token)
                if calls == 1:  # between the first and the second page
                    sb.delete_object(*NP, "p11", "shop")
                    sb.put_object(np_body("p05", port=99))
                    sb.faults.compact()
                return page

            transport.list_page = compacting  # type: ignore[method-assign]
            synced = await rec.synced()
            assert synced.policies == server_view(sb)
            assert calls == 2 + 3  # one page, a 410 on the second, then three pages
            await rec.caught_up(sb)
            assert rec.changes() == []


@async_test
async def test_writes_during_a_paginated_list_are_not_lost() -> None:
    async with sandbox() as sb:
        for i in range(40):
            sb.put_object(np_body(f"p{i:02}"))

        async def churn() -> None:
            for i in range(30):
                sb.put_object(np_body(f"p{(i * 7) % 40:02}", port=i + 1))
                if i % 3 == 0:
                    sb.delete_object(*NP, f"p{(i * 11) % 40:02}", "shop")
                await asyncio.sleep(0)

        async with watching(sb, options=WatchOptions(page_size=3, read_timeout=2.0)) as rec:
            await churn()
            await rec.caught_up(sb)


# --- changes ------------------------------------------------------------------------------


@async_test
async def test_create_modify_delete_and_metadata_only_changes() -> None:
    async with sandbox() as sb:
        sb.put_object(np_body("web"))
        async with watching(sb) as rec:
            synced = await rec.synced()
            before = synced.policies[("shop", "web")]

            created = sb.put_object(np_body("api"), manager="kubectl-create")
            modified = sb.put_object(np_body("web", port=8080), manager="kubectl-edit")
            sb.delete_object(*NP, "api", "shop")
            deleted_rv = sb.resource_version
            # Metadata-only: the last-applied annotation set and changed (by other managers),
            # a label on the Namespace. Each is stored (a new resourceVersion).
            rv = int(sb.resource_version)
            for manager, applied in (("helm", "{}"), ("kubectl-client-side-apply", '{"a":1}')):
                annotations = {"kubectl.kubernetes.io/last-applied-configuration": applied}
                sb.put_object(np_body("web", port=8080, annotations=annotations), manager=manager)
            namespace = {"name": "shop", "labels": {"team": "payments"}}
            sb.put_object({"apiVersion": "v1", "kind": "Namespace", "metadata": namespace})
            assert int(sb.resource_version) == rv + 3
            marker = sb.put_object(np_body("marker"))
            await rec.caught_up(sb)

        assert summary(rec.events[1:]) == [
            ("put", "shop/api", created["metadata"]["resourceVersion"], True),
            ("put", "shop/web", modified["metadata"]["resourceVersion"], False),
            ("deleted", "shop/api", deleted_rv, None),
            ("put", "shop/marker", marker["metadata"]["resourceVersion"], True),
        ]
        put_api, put_web, deleted, _ = rec.events[1:]
        assert isinstance(put_api, LivePut)
        assert isinstance(put_web, LivePut)
        assert put_api.policy.origin is not None
        assert put_api.policy.origin.manager == "kubectl-create"
        assert put_web.policy.origin is not None
        assert put_web.policy.origin.manager == "kubectl-edit"
        assert put_web.policy != before
        assert isinstance(deleted, LiveDeleted)
        assert deleted.last == put_api.policy
        # The watcher's own view keeps the freshest object after a metadata-only write.
        latest = rec.watcher.policies[("shop", "web")]
        assert latest.origin is not None
        assert latest.origin.resource_version == str(rv + 2)
        stats = rec.watcher.stats
        assert stats.received["MODIFIED"] == 3  # web: the spec, then the annotation twice
        assert stats.emitted["LivePut"] == 3
        assert stats.emitted["LiveDeleted"] == 1


@async_test
async def test_cut_watches_clean_and_abrupt_resume_with_no_loss_and_no_duplicate() -> None:
    async with sandbox() as sb:
        for i in range(5):
            sb.put_object(np_body(f"p{i}"))
        async with watching(sb) as rec:
            synced = await rec.synced()
            start = int(synced.resource_version)
            for round_ in range(6):
                sb.put_object(np_body(f"p{round_ % 5}", port=round_ + 1))
                sb.faults.cut_watches(abrupt=round_ % 2 == 1)
                # written while the watcher reconnects
                sb.put_object(np_body(f"new{round_}"))
                sb.delete_object(*NP, f"new{round_ - 1}", "shop")
                await asyncio.sleep(0.03)
            await rec.caught_up(sb)
        changes = policy_changes(sb, start)
        assert [(c.key, c.resource_version) for c in changes] == [
            (e.key, e.resource_version) for e in rec.changes()
        ]
        restarts = rec.watcher.stats.restarts
        assert restarts["closed"] >= 1
        assert restarts["disconnected"] >= 1
        assert rec.watcher.stats.relists == 0


@async_test
async def test_compaction_while_disconnected_relists_exactly_the_missed_differences() -> None:
    async with sandbox() as sb:
        for name in ("a", "b", "c", "d"):
            sb.put_object(np_body(name))
        async with watching(sb) as rec:
            await rec.synced()
            await disconnected(sb, rec)
            since = sb.resource_version
            a = sb.put_object(np_body("a", port=1))
            sb.put_object(np_body("b", port=2))
            sb.put_object(np_body("b"))  # back to what the watcher has
            sb.delete_object(*NP, "c", "shop")
            sb.put_object(np_body("d"), manager="someone-else")  # metadata only
            e = sb.put_object(np_body("e"))
            sb.faults.compact()
            sb.faults.clear()
            await rec.caught_up(sb)
        assert summary(rec.events[1:]) == [
            ("put", "shop/a", a["metadata"]["resourceVersion"], False),
            ("put", "shop/e", e["metadata"]["resourceVersion"], True),
            ("deleted", "shop/c", sb.resource_version, None),  # deletions come last
            ("resynced", since, sb.resource_version, None),
        ]
        resynced = rec.events[-1]
        assert isinstance(resynced, LiveResynced)
        assert resynced.changed == 3
        assert rec.watcher.stats.relists == 1
        assert rec.watcher.stats.restarts["expired"] == 1


@async_test
async def test_a_410_http_answer_relists_too() -> None:
    async with sandbox() as sb:
        sb.put_object(np_body("a"))
        async with watching(sb) as rec:
            await rec.synced()
            sb.faults.fail(status=410, count=1, match="networkpolicies")
            sb.faults.cut_watches()
            await rec.wait(lambda: rec.watcher.stats.relists == 1)
            sb.put_object(np_body("b"))
            await rec.caught_up(sb)
        assert summary(rec.events[1:])[0][0] == "resynced"
        assert [e.key for e in rec.changes()] == [("shop", "b")]


@async_test
async def test_server_errors_and_refused_connections_back_off_then_recover() -> None:
    async with sandbox() as sb:
        sb.put_object(np_body("a"))
        backoff = Backoff(initial=0.02, maximum=0.1, factor=2.0, jitter=0.0)
        async with watching(sb, backoff=backoff) as rec:
            await rec.synced()
            sb.faults.fail(status=500, duration=0.4)
            sb.faults.cut_watches()
            sb.put_object(np_body("b"))
            await asyncio.sleep(0.45)
            errors = rec.watcher.stats.restarts["server_error"]
            # 0.02 + 0.04 + 0.08 + 0.1 + 0.1 ... : a handful, not a hammering
            assert 3 <= errors <= 8, errors
            sb.put_object(np_body("c"))
            await rec.caught_up(sb)

            sb.faults.refuse(duration=0.3)
            sb.faults.cut_watches(abrupt=True)
            sb.put_object(np_body("d"))
            await rec.caught_up(sb)
            assert rec.watcher.stats.restarts["disconnected"] >= 2
        assert [e.key[1] for e in rec.changes()] == ["b", "c", "d"]
        logged = [c for c in rec.watcher._log.calls if c.method_name == "warning"]
        assert any(c.kwargs["reason"] == "server_error" for c in logged)


@async_test
async def test_a_restarted_api_server_is_survived() -> None:
    async with sandbox() as sb:
        for name in ("a", "b"):
            sb.put_object(np_body(name))
        async with watching(sb) as rec:
            await rec.synced()
            sb.faults.restart(downtime=0.2)
            sb.put_object(np_body("a", port=5))
            sb.delete_object(*NP, "b", "shop")
            await rec.caught_up(sb)
            sb.put_object(np_body("c"))
            await rec.caught_up(sb)
        assert [(type(e).__name__, e.key[1]) for e in rec.changes()] == [
            ("LivePut", "a"),
            ("LiveDeleted", "b"),
            ("LivePut", "c"),
        ]


@async_test
async def test_a_replaced_api_server_with_older_versions_is_relisted() -> None:
    """A new server on the same address (an etcd restored from backup): first refused
    connections (unreachable), then 'too large resource version' (504) -> relist."""
    first = sandbox()
    await first.start()
    port = first.port
    for i in range(30):
        first.put_object(np_body("a", port=i + 1))
    first.put_object(np_body("gone"))
    kubeconfig = first.kubeconfig_path()
    api = await connect(kubeconfig)
    async with api:
        rec = Recorder(PolicyWatcher(api, options=FAST, backoff=QUICK, log=CapturingLogger()))
        rec.task = asyncio.create_task(rec._pump())
        await rec.synced()
        await first.stop()
        await rec.wait(lambda: rec.watcher.stats.restarts["unreachable"] >= 2)
        async with sandbox(port=port) as second:
            second.put_object(np_body("a", port=1))
            second.put_object(np_body("new"))
            await rec.caught_up(second)
        rec.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rec.task
    assert rec.watcher.stats.restarts["too_large"] >= 1
    assert sorted((type(e).__name__, e.key[1]) for e in rec.changes()) == [
        ("LiveDeleted", "gone"),
        ("LivePut", "a"),
        ("LivePut", "new"),
    ]


@async_test
async def test_read_timeout_reconnects_with_no_loss() -> None:
    async with sandbox() as sb:
        options = WatchOptions(read_timeout=0.2, bookmarks=False)
        async with watching(sb, options=options) as rec:
            await rec.synced()
            await rec.wait(lambda: rec.watcher.stats.restarts["read_timeout"] >= 2)
            sb.put_object(np_body("a"))
            await rec.caught_up(sb)
            sb.faults.delay(0.5, count=1, match="networkpolicies")  # a slow answer
            sb.faults.cut_watches()
            sb.put_object(np_body("b"))
            await rec.caught_up(sb)
        assert [e.key[1] for e in rec.changes()] == ["a", "b"]


@async_test
async def test_server_side_timeouts_are_resumed_quietly() -> None:
    async with sandbox(max_watch_seconds=0.15) as sb:
        async with watching(sb) as rec:
            await rec.synced()
            for i in range(4):
                sb.put_object(np_body(f"p{i}"))
                await asyncio.sleep(0.1)
            await rec.caught_up(sb)
            assert rec.watcher.stats.restarts["closed"] >= 2
            assert rec.watcher.stats.received["BOOKMARK"] >= 1
        assert [e.key[1] for e in rec.changes()] == ["p0", "p1", "p2", "p3"]


@async_test
async def test_events_split_across_chunks_and_a_garbled_line(tmp_path: Path) -> None:
    """A hand-written server: the first watch sends an event in three pieces, then junk;
    the watcher reassembles the event, restarts on the junk (no crash) and resumes."""
    watches: list[str] = []

    def event(name: str, rv: str) -> bytes:
        obj = np_body(name)
        obj["metadata"]["resourceVersion"] = rv
        return json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n"

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") not in ("True", "true"):
            return web.json_response({"metadata": {"resourceVersion": "10"}, "items": []})
        watches.append(request.query["resourceVersion"])
        response = web.StreamResponse()
        await response.prepare(request)
        if len(watches) == 1:
            data = event("p1", "11")
            for piece in (data[:7], data[7:40], data[40:]):
                await response.write(piece)
                await asyncio.sleep(0.02)
            await response.write(b"{this is not json\n")
        else:
            await response.write(event("p2", "12"))
        await asyncio.sleep(10)
        return response

    app = web.Application()
    app.router.add_get("/apis/networking.k8s.io/v1/networkpolicies", handler)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        api = await connect(write_kubeconfig(tmp_path / "kc", kubeconfig(url, "t0ken")))
        async with api:
            watcher = PolicyWatcher(api, options=FAST, backoff=QUICK, log=CapturingLogger())
            async with contextlib.aclosing(watcher.events()) as events:
                assert isinstance(await anext(events), LiveSynced)
                first, second = await anext(events), await anext(events)
    finally:
        await runner.cleanup()
    assert isinstance(first, LivePut)
    assert (first.key, first.resource_version) == (("shop", "p1"), "11")
    assert isinstance(second, LivePut)
    assert (second.key, second.resource_version) == (("shop", "p2"), "12")
    assert watches == ["10", "11"]
    assert watcher.stats.restarts == {"bad_stream": 1}


# --- the randomized test ------------------------------------------------------------------


def expected_events(
    synced: LiveSynced,
    changes: list[Any],
    contents: dict[str, NetworkPolicy | None],
    windows: list[tuple[int, int]],
) -> dict[Key, list[tuple[str, NetworkPolicy | None]]]:
    """Per key, the (resourceVersion, content) events a perfect watcher yields: one per
    change of content, except inside each relist window (since, until], where only the
    net difference shows, as of ``until``."""
    shown: dict[Key, NetworkPolicy | None] = dict(synced.policies)
    server: dict[Key, tuple[str, NetworkPolicy | None]] = {}
    expected: dict[Key, list[tuple[str, NetworkPolicy | None]]] = {}

    def show(key: Key, rv: str, content: NetworkPolicy | None) -> None:
        if shown.get(key) != content:
            shown[key] = content
            expected.setdefault(key, []).append((rv, content))

    pending = sorted(windows)
    for change in changes:
        rv = int(change.resource_version)
        while pending and pending[0][1] < rv:
            _since, until = pending.pop(0)
            for key, (last_rv, content) in sorted(server.items()):
                show(key, last_rv if content is not None else str(until), content)
        server[change.key] = (change.resource_version, contents[change.resource_version])
        if not any(since < rv <= until for since, until in windows):
            show(change.key, change.resource_version, contents[change.resource_version])
    for _since, until in pending:
        for key, (last_rv, content) in sorted(server.items()):
            show(key, last_rv if content is not None else str(until), content)
    return expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_changes_cuts_and_compactions_are_reflected_exactly_once(seed: int) -> None:
    @async_test
    async def scenario() -> None:
        rng = seeded(seed)
        names = [(ns, f"p{i}") for ns in ("shop", "web") for i in range(8)]
        contents: dict[str, NetworkPolicy | None] = {}  # resourceVersion -> what was stored
        async with sandbox() as sb:

            def put(name: str, ns: str, port: int, manager: str) -> None:
                stored = sb.put_object(np_body(name, ns, port=port), manager=manager)
                contents[stored["metadata"]["resourceVersion"]] = parse_policy(stored)

            for ns, name in names[::2]:
                put(name, ns, 1, "seed")
            async with watching(sb, rng=seeded(seed)) as rec:
                synced = await rec.synced()
                start = int(synced.resource_version)
                gap = False
                for _ in range(300):
                    roll = rng.random()
                    ns, name = rng.choice(names)
                    if roll < 0.55:
                        put(name, ns, rng.choice([1, 2, 3]), rng.choice(["kubectl-edit", "helm"]))
                    elif roll < 0.8:
                        if sb.delete_object(*NP, name, ns):
                            contents[sb.resource_version] = None
                    elif roll < 0.86:
                        sb.faults.cut_watches(abrupt=rng.random() < 0.5)
                    elif roll < 0.9 and not gap:
                        await disconnected(sb, rec)
                        gap = True
                    elif roll < 0.95:
                        sb.faults.compact()
                        if gap:
                            sb.faults.clear()
                            gap = False
                    else:
                        await asyncio.sleep(rng.choice([0, 0.005, 0.02]))
                    if rng.random() < 0.3:
                        await asyncio.sleep(0)
                sb.faults.clear()
                put("zz-sentinel", "shop", 1, "seed")
                await rec.caught_up(sb)

            changes = policy_changes(sb, start)
            windows = [
                (int(e.since), int(e.resource_version))
                for e in rec.events
                if isinstance(e, LiveResynced)
            ]
            got: dict[Key, list[tuple[str, NetworkPolicy | None]]] = {}
            for event in rec.changes():
                content = event.policy if isinstance(event, LivePut) else None
                got.setdefault(event.key, []).append((event.resource_version, content))
            assert got == expected_events(synced, changes, contents, windows)
            seen = [(e.key, e.resource_version) for e in rec.changes()]
            assert len(seen) == len(set(seen)), "a change was yielded twice"
            assert rec.view == server_view(sb)
            stats = rec.watcher.stats
            assert stats.relists == len(windows) >= 1
            assert sum(stats.restarts.values()) >= 5
            assert len(changes) >= 150

    scenario()


# --- access, namespaces, invalid objects ------------------------------------------------


@async_test
async def test_a_wrong_token_is_an_access_error_naming_the_rbac_needed() -> None:
    async with sandbox(require_auth=True) as sb:
        async with watching(sb, token="not-the-token") as rec:
            await rec.wait(lambda: rec.error is not None)
        error = rec.error
        assert isinstance(error, LiveAccessError)
        message = str(error)
        assert "401" in message
        assert sb.url in message
        assert "list and watch on networkpolicies.networking.k8s.io cluster-wide" in message
        assert "not-the-token" not in message
        assert "\n" not in message
        assert rec.events == []


@async_test
async def test_forbidden_after_the_first_list_ends_the_stream_with_the_namespaced_rbac() -> None:
    async with sandbox() as sb:
        async with watching(sb, namespaces=("shop", "web")) as rec:
            await rec.synced()
            sb.faults.fail(status=403, match="networkpolicies")
            sb.faults.cut_watches()
            await rec.wait(lambda: rec.error is not None)
        assert isinstance(rec.error, LiveAccessError)
        message = str(rec.error)
        assert "403" in message
        assert "in namespaces shop, web (a Role with those verbs and a RoleBinding" in message


@async_test
async def test_a_namespace_the_server_does_not_know_is_reported_clearly() -> None:
    async with sandbox() as sb:
        sb.faults.fail(status=404, match="/namespaces/ghost/")
        async with watching(sb, namespaces=("shop", "ghost")) as rec:
            await rec.wait(lambda: rec.error is not None)
        assert isinstance(rec.error, LiveNotFoundError)
        assert "namespace 'ghost'" in str(rec.error)


@async_test
async def test_namespace_restriction_lists_and_watches_only_those_namespaces() -> None:
    async with sandbox() as sb:
        for ns in ("shop", "web", "default"):
            sb.put_object(np_body("a", ns))
        async with watching(sb, namespaces=("shop", "web", "shop")) as rec:
            synced = await rec.synced()
            assert set(synced.policies) == {("shop", "a"), ("web", "a")}
            await sb.wait_for_watchers(2, resource="networkpolicies")
            sb.put_object(np_body("b", "default"))
            sb.put_object(np_body("b", "shop"))
            sb.put_object(np_body("a", "web", port=9))
            sb.faults.cut_watches(abrupt=True)
            sb.delete_object(*NP, "a", "default")
            sb.delete_object(*NP, "a", "shop")
            await rec.wait(lambda: len(rec.changes()) == 3)
            await disconnected(sb, rec)
            sb.put_object(np_body("c", "web"))
            sb.put_object(np_body("c", "default"))
            sb.faults.compact()
            sb.faults.clear()
            await rec.wait(lambda: len([e for e in rec.events if isinstance(e, LiveResynced)]) == 2)
            await asyncio.sleep(0.15)
        assert sorted((type(e).__name__, e.key) for e in rec.changes()) == [
            ("LiveDeleted", ("shop", "a")),
            ("LivePut", ("shop", "b")),
            ("LivePut", ("web", "a")),
            ("LivePut", ("web", "c")),
        ]
        assert set(rec.view) == {("shop", "b"), ("web", "a"), ("web", "c")}
        assert rec.watcher.namespaces == ("shop", "web")


def commit_raw(sb: Sandbox, obj: dict[str, Any], type_: str = "ADDED") -> None:
    """Store an object the way a buggy or newer API server might: without validation."""
    rtype = sb.resource(*NP)
    meta = obj["metadata"]
    old = sb.store.get(rtype, meta["namespace"], meta["name"])
    meta.setdefault("uid", f"uid-{meta['name']}")
    sb.store.commit(type_, rtype, obj, old, "raw")  # type: ignore[arg-type]


def bad_cidr(name: str) -> dict[str, Any]:
    body = np_body(name)
    body["spec"]["ingress"] = [{"from": [{"ipBlock": {"cidr": "300.1.2.3/8"}}]}]
    return body


@async_test
async def test_invalid_objects_are_reported_and_treated_as_absent() -> None:
    async with sandbox() as sb:
        commit_raw(sb, bad_cidr("broken"))
        sb.put_object(np_body("ok"))
        async with watching(sb) as rec:
            synced = await rec.synced()
            await rec.wait(lambda: len(rec.events) == 2)
            assert set(synced.policies) == {("shop", "ok")}
            invalid = rec.events[1]
            assert isinstance(invalid, LiveInvalid)
            assert invalid.key == ("shop", "broken")
            assert "spec.ingress[0].from[0].ipBlock.cidr" in invalid.message

            sb.put_object(np_body("broken"))  # fixed: a valid version arrives
            commit_raw(sb, bad_cidr("ok"), "MODIFIED")  # broken by a raw write
            commit_raw(sb, bad_cidr("ok"), "MODIFIED")  # the same problem again: silent
            commit_raw(sb, bad_cidr("new"))
            sb.delete_object(*NP, "new", "shop")
            sb.put_object(np_body("marker"))
            await rec.wait(lambda: ("shop", "marker") in rec.view)
            await asyncio.sleep(0.1)
        assert summary(rec.events[2:]) == [
            ("put", "shop/broken", summary(rec.events[2:])[0][2], True),
            ("invalid", "shop/ok", "", None),
            ("invalid", "shop/new", "", None),
            ("deleted", "shop/new", summary(rec.events[2:])[3][2], None),
            ("put", "shop/marker", sb.resource_version, True),
        ]
        deleted = rec.events[5]
        assert isinstance(deleted, LiveDeleted)
        assert deleted.last is None
        assert set(rec.view) == {("shop", "broken"), ("shop", "marker")}


@async_test
async def test_more_namespaces_than_connections_is_refused_up_front() -> None:
    configuration = Configuration(host="http://127.0.0.1:1")
    configuration.connection_pool_maxsize = 3
    async with ApiClient(configuration) as api:
        PolicyWatcher(api, namespaces=("a", "b"))
        with pytest.raises(ValueError, match="3 namespaces takes 3 connections"):
            PolicyWatcher(api, namespaces=("a", "b", "c"))
        with pytest.raises(TypeError, match="not a string"):
            PolicyWatcher(api, namespaces="shop")


@async_test
async def test_events_runs_once_at_a_time() -> None:
    async with sandbox() as sb, watching(sb) as rec:
        await rec.synced()
        with pytest.raises(RuntimeError, match="already running"):
            await anext(rec.watcher.events())
        assert rec.watcher.server == sb.url


# --- the event loop stays responsive --------------------------------------------------------


def _seed_many(sb: Sandbox, count: int) -> None:
    rtype = sb.resource(*NP)
    for i in range(count):
        body = np_body(f"p{i:05}", ns=f"ns{i % 50}", port=1 + i % 1000)
        body["spec"]["ingress"][0]["from"] = [
            {"podSelector": {"matchLabels": {"role": "client"}}},
            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
        ]
        body["spec"]["ingress"][0]["ports"][0]["protocol"] = "TCP"
        body["spec"]["policyTypes"] = ["Ingress"]
        body["metadata"].update(uid=f"u{i}", managedFields=[{"manager": "m", "time": "t"}])
        sb.store.commit("ADDED", rtype, body, None, "seed")


@pytest.mark.slow
def test_ten_thousand_policies_never_block_the_event_loop_for_50ms() -> None:
    """Between two ticks of a 2 ms ticker, the loop's thread never computes for 50 ms,
    through the initial list of 10,000 policies and a relist of them. CPU time of the
    loop's thread is measured, not wall time: the sandbox serves from another thread and
    the machine may be busy, neither of which is the watcher blocking the loop."""
    with SandboxThread(bookmark_interval=0.2) as st:
        st.call(_seed_many, st.sandbox, 10_000)

        @async_test
        async def measure() -> None:
            api = await connect(st.kubeconfig_path())
            async with api:
                watcher = PolicyWatcher(api, backoff=QUICK, log=CapturingLogger())
                busy: list[float] = []
                stop = False

                async def ticker() -> None:
                    last = time.thread_time()
                    while not stop:
                        await asyncio.sleep(0.002)
                        now = time.thread_time()
                        busy.append(now - last)
                        last = now

                tick = asyncio.create_task(ticker())
                async with contextlib.aclosing(watcher.events()) as events:
                    synced = await anext(events)
                    assert isinstance(synced, LiveSynced)
                    assert len(synced.policies) == 10_000
                    listing = max(busy)
                    faults = st.sandbox.faults
                    fail = functools.partial(faults.fail, status=410, count=1, match="policies")
                    await asyncio.to_thread(st.call, fail)
                    await asyncio.to_thread(st.call, faults.cut_watches)
                    resynced = await anext(events)  # a relist of 10,000 that changes nothing
                    assert isinstance(resynced, LiveResynced)
                    assert resynced.changed == 0
                stop = True
                await tick
            assert len(busy) > 100
            assert listing < 0.05, f"the loop computed {listing * 1000:.0f} ms in one go"
            assert max(busy) < 0.05, f"the loop computed {max(busy) * 1000:.0f} ms in one go"

        measure()


def test_the_collector_is_paused_while_listing_and_what_survives_frozen() -> None:
    assert gc.isenabled()
    before = gc.get_freeze_count()

    def failed_list() -> None:
        with paused_gc(freeze=True):
            assert not gc.isenabled()
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failed_list()
    assert gc.isenabled()
    assert gc.get_freeze_count() == before  # a failed list freezes nothing
    with paused_gc(freeze=True):
        with paused_gc(freeze=True):
            kept = [[i] for i in range(1000)]
        assert not gc.isenabled()  # the inner end leaves the outer pause alone
        assert gc.get_freeze_count() == before
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(kept)
    with paused_gc(freeze=False):
        assert not gc.isenabled()
    assert gc.isenabled()


def test_pauses_from_two_threads_share_one_switch() -> None:
    """The desired-state loader (a thread) and the watcher (the loop) pause the collector in
    any interleaving; it comes back on only when both are done."""
    assert gc.isenabled()
    loader, lister = paused_gc(), paused_gc(freeze=True)
    loader.__enter__()
    lister.__enter__()
    loader.__exit__(None, None, None)
    assert not gc.isenabled()  # the list is still being built
    lister.__exit__(None, None, None)
    assert gc.isenabled()
    started, ended = threading.Event(), threading.Event()

    def load() -> None:
        with paused_gc():
            started.set()
            ended.wait(5)

    thread = threading.Thread(target=load)
    thread.start()
    started.wait(5)
    with paused_gc(freeze=True):
        assert not gc.isenabled()
    assert not gc.isenabled()  # the loader's pause goes on
    ended.set()
    thread.join(5)
    assert gc.isenabled()


# --- options and backoff ------------------------------------------------------------------


def test_backoff_grows_to_its_maximum_with_seeded_jitter() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, factor=2.0, jitter=0.5)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.ceiling(5000) == 30.0  # no overflow
    first = [backoff.next_delay(n, seeded(42)) for n in range(8)]
    again = [backoff.next_delay(n, seeded(42)) for n in range(8)]
    assert first == again
    for n, delay in enumerate(first):
        assert backoff.ceiling(n) * 0.5 <= delay <= backoff.ceiling(n)
    rng = seeded(3)
    stream = backoff.delays(seeded(3))
    assert [next(stream) for _ in range(4)] == [backoff.next_delay(n, rng) for n in range(4)]
    exact = Backoff(initial=1, maximum=5, factor=3, jitter=0)
    assert [exact.next_delay(n, seeded()) for n in range(4)] == [1, 3, 5, 5]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Backoff(initial=0), "initial"),
        (lambda: Backoff(initial=2, maximum=1), "maximum"),
        (lambda: Backoff(factor=0.5), "factor"),
        (lambda: Backoff(jitter=1.5), "jitter"),
        (lambda: WatchOptions(page_size=0), "page_size"),
        (lambda: WatchOptions(read_timeout=0), "read_timeout"),
        (lambda: WatchOptions(server_timeout=float("inf")), "server_timeout"),
    ],
)
def test_options_reject_nonsense(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_watch_options_defaults_and_whole_second_timeouts() -> None:
    options = WatchOptions()
    assert (options.page_size, options.server_timeout, options.read_timeout) == (500, 300, 90)
    assert options.bookmarks
    assert options.timeout_seconds == 300
    assert WatchOptions(server_timeout=0.2).timeout_seconds == 1
    assert WatchOptions(server_timeout=2.5).timeout_seconds == 3
