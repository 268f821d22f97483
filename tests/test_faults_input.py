"""Bad input (issue #7): fuzzed manifests, configuration files and watch-stream lines.

What a user relies on: nothing a file or the API server sends crashes driftwatch. A broken
manifest is a :class:`DesiredStateError` of one line naming the file; a broken configuration
a :class:`SettingsError` naming the file; a bad watch line (garbage, truncated JSON, a 2 MiB
line, wrong types) is logged as a restarted watch (``reason=bad_stream``) or reported as an
invalid policy, and the events after it still arrive. Example counts are bounded so that
this file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes_asyncio.client import ApiClient, Configuration
from structlog.testing import capture_logs

from driftwatch.daemon.run import Daemon
from driftwatch.daemon.testing import RecordingNotifier, start_until_ready
from driftwatch.desired import DesiredStateError, load_path
from driftwatch.drift import EventKind
from driftwatch.live import (
    LiveDeleted,
    LiveEvent,
    LiveInvalid,
    LivePut,
    LiveSynced,
    PolicyWatcher,
    WatchOptions,
)
from driftwatch.settings import Settings, SettingsError, parse_settings
from tests.aio import async_test
from tests.strategies import network_policies
from tests.test_daemon import EXAMPLES, FAST
from tests.test_live_watcher import QUICK, np_body

pytestmark = pytest.mark.faults

BOUNDED = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NP_PATH = "/apis/networking.k8s.io/v1/networkpolicies"
MIB = 1024 * 1024
GOOD_NS = "valid-events"
"""The namespace of the valid watch events (fuzzed ones use others)."""

# --- fuzzed values -------------------------------------------------------------------------

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


@st.composite
def wrong_types(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> Any:
    """A document with one value somewhere replaced by a random JSON value."""
    doc = copy.deepcopy(draw(documents))
    path = draw(st.sampled_from(paths(doc)))
    if not path:
        return draw(json_values)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = draw(json_values)
    return doc


@st.composite
def mangled(draw: st.DrawFn, text: str) -> str:
    """``text`` cut short, or with random characters spliced in somewhere."""
    cut = draw(st.integers(0, len(text)))
    if draw(st.booleans()):
        return text[:cut]
    return text[:cut] + draw(st.text(max_size=12)) + text[cut:]


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


# --- manifests -----------------------------------------------------------------------------


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True)


GOOD_MANIFEST = (EXAMPLES / "shop" / "frontend.yaml").read_text()
manifest_texts = st.one_of(
    st.text(max_size=200),
    mangled(GOOD_MANIFEST),
    wrong_types(network_policies()).map(_dump),
    st.integers(1, 200_000).map(nested),
    st.integers(1, 200_000).map(lambda n: "a: " * n + "x"),
    st.sampled_from(["---\n" * 50, "- - - -", "\t", "{", "!!python/object:os.system {}"]),
)


def check_manifest(directory: Path, name: str, text: str) -> str:
    """Load ``text`` as ``name``; the error text ('' when it loaded). Anything but a clear
    DesiredStateError fails."""
    for old in directory.iterdir():
        old.unlink()
    (directory / name).write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_path(directory)
    except DesiredStateError as error:
        message = str(error)
        assert message, "an empty error"
        assert "\n" not in message, message
        assert name in message, message
        return message
    return ""


def test_fuzzed_manifests_are_loaded_or_refused_with_one_line_naming_the_file() -> None:
    errors: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)

        @BOUNDED
        @given(text=manifest_texts, suffix=st.sampled_from(["yaml", "json"]))
        def check(text: str, suffix: str) -> None:
            message = check_manifest(directory, f"policies.{suffix}", text)
            if message:
                errors.append(message)

        check()
    assert errors, "no fuzzed manifest was refused: the strategy is too tame"
    print(
        f"input manifests: {BOUNDED.max_examples} fuzzed files per run, {len(errors)} "
        f"refused with a one-line error naming the file, 0 crashes, "
        f"{time.monotonic() - started:.1f} s; e.g. {errors[0]!r}"
    )


def test_a_huge_and_a_deeply_nested_manifest_are_refused_clearly(tmp_path: Path) -> None:
    big = _dump({**np_body("big"), "metadata": {"name": "big", "namespace": "shop"}})
    big += "  annotations: {x: '" + "y" * (2 * MIB) + "'\n"  # a 2 MiB line, misplaced
    for name, text in [
        ("huge.yaml", big),
        ("deep.yaml", nested(100_000)),
        ("deep.json", nested(100_000, '{"a":', "}")),
    ]:
        assert check_manifest(tmp_path, name, text), name


# --- configuration files -------------------------------------------------------------------

GOOD_CONFIG: dict[str, Any] = {
    "cluster": {"name": "prod", "kubeconfig": "/dev/null", "namespaces": ["shop"]},
    "desired": {"git": {"url": "https://git.example.com/p.git", "poll_interval": "1m"}},
    "state": {"path": "/tmp/state.db"},
    "notifiers": [
        {"name": "hook", "type": "webhook", "url": "https://example.com/h", "secret": "s" * 24}
    ],
    "routes": [{"match": {"min_severity": "high"}, "receivers": ["hook"]}],
    "rules": {"disabled": ["cosmetic"], "severity": {"spec-modified": "high"}},
    "log": {"level": "info", "format": "json"},
}
config_texts = st.one_of(
    st.text(max_size=200),
    mangled(_dump(GOOD_CONFIG)),
    wrong_types(st.just(GOOD_CONFIG)).map(_dump),
    st.integers(1, 100).map(nested),  # deeper: see test_known_crashes
    st.sampled_from(["", "~", "[]", "cluster: ${UNSET_VARIABLE}", "{" * 10, "&a [*a]"]),
)


def test_fuzzed_configuration_files_are_loaded_or_refused_naming_the_file() -> None:
    errors: list[str] = []
    loaded = 0

    @BOUNDED
    @given(text=config_texts)
    def check(text: str) -> None:
        nonlocal loaded
        try:
            parse_settings(text, "fuzzed.yaml", base_dir=Path("/"), environ={})
        except SettingsError as error:
            message = str(error)
            assert "fuzzed.yaml" in message, message
            assert "Traceback" not in message
            errors.append(message)
        else:
            loaded += 1

    check()
    assert errors
    print(
        f"input config: {BOUNDED.max_examples} fuzzed files per run, {len(errors)} refused "
        f"naming the file, {loaded} valid, 0 crashes; e.g. {errors[0].splitlines()[0]!r}"
    )


# --- watch-stream lines --------------------------------------------------------------------


def event_line(type_: str, obj: Any) -> bytes:
    return json.dumps({"type": type_, "object": obj}).encode() + b"\n"


def good(n: int) -> bytes:
    """The ``n``-th valid event: policy ``p<n>`` added at resourceVersion ``101 + n`` (the
    list is at 100)."""
    obj = np_body(f"p{n}", ns=GOOD_NS)
    obj["metadata"]["resourceVersion"] = str(101 + n)
    return event_line("ADDED", obj)


def _is_event(line: bytes) -> bool:
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(event, dict) and isinstance(event.get("object"), dict)


def refused(line: bytes) -> bool:
    """Whether the watcher must restart on ``line`` (blank lines are skipped, events read)."""
    return bool(line.strip()) and not _is_event(line)


def _wrong_event(doc: Any) -> bytes:
    """A JSON event whose object is a NetworkPolicy with a value of the wrong type (never a
    resourceVersion: the resume point stays the server's)."""
    if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict):
        doc["metadata"].pop("resourceVersion", None)
    return event_line("MODIFIED", doc)


bad_lines = st.one_of(
    st.binary(max_size=60).filter(lambda b: b"\n" not in b and not _is_event(b)),
    st.integers(1, 200).map(lambda n: good(0)[:n].rstrip(b"\n")),  # truncated JSON
    st.sampled_from([b"[]", b"null", b'"x"', b"{}", b'{"type": "ADDED"}', b'{"object": 5}']),
    st.just(b"x" * (2 * MIB)),
    wrong_types(network_policies()).map(_wrong_event).map(lambda b: b.rstrip(b"\n")),
    st.tuples(st.sampled_from(["BOOKMARK", "WAT", "5"]), json_values).map(
        lambda t: json.dumps({"type": t[0], "object": {"metadata": {}, "x": t[1]}}).encode()
    ),
)


class WatchServer:
    """A Kubernetes API server for NetworkPolicies that lists ``listed`` at resourceVersion
    100 and then streams ``script``: each valid event served from the resume point the
    client asks for, each bad line once where it stands (after a line the client must
    restart on, the next bad ones wait for the next watch), then holds the stream open."""

    def __init__(self, script: list[tuple[str, bytes]], listed: list[Any] | None = None) -> None:
        self.script = script
        self.listed = listed or []
        self.served: set[int] = set()
        self.watches: list[str] = []
        self.url = ""
        app = web.Application()
        app.router.add_get(NP_PATH, self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.2)

    async def __aenter__(self) -> WatchServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") not in ("True", "true", "1"):
            return web.json_response(
                {
                    "kind": "NetworkPolicyList",
                    "metadata": {"resourceVersion": "100"},
                    "items": self.listed,
                }
            )
        since = int(request.query.get("resourceVersion") or 0)
        self.watches.append(str(since))
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        broken = False  # a line the client restarts on was sent: hold back further ones
        for index, (kind, line) in enumerate(self.script):
            if kind == "good":
                if int(json.loads(line)["object"]["metadata"]["resourceVersion"]) > since:
                    await response.write(line)
            elif index not in self.served and not broken:
                self.served.add(index)
                broken = refused(line)
                await response.write(line + b"\n")
        await asyncio.sleep(3600)
        return response


@contextlib.asynccontextmanager
async def api_for(url: str) -> AsyncIterator[ApiClient]:
    async with ApiClient(Configuration(host=url)) as api:
        yield api


async def consume(
    server: WatchServer, until: Callable[[list[LiveEvent]], bool], timeout: float = 10
) -> tuple[list[LiveEvent], PolicyWatcher, list[dict[str, Any]]]:
    """Run a watcher against ``server`` until ``until(events)``; its events and logs."""
    got: list[LiveEvent] = []
    options = WatchOptions(read_timeout=2.0, server_timeout=30)
    with capture_logs() as logs:
        async with api_for(server.url) as api:
            watcher = PolicyWatcher(api, options=options, backoff=QUICK)
            async with contextlib.aclosing(watcher.events()) as events:

                async def collect() -> None:
                    async for event in events:
                        got.append(event)
                        if until(got):
                            return

                await asyncio.wait_for(collect(), timeout)
    return got, watcher, logs


def puts(events: list[LiveEvent]) -> list[str]:
    """The names of the valid events' puts (a fuzzed event may be a valid policy too)."""
    return [e.key[1] for e in events if isinstance(e, LivePut) and e.key[0] == GOOD_NS]


def until_puts(count: int) -> Callable[[list[LiveEvent]], bool]:
    return lambda got: len(puts(got)) >= count


@async_test(timeout=60)
async def test_fuzzed_watch_lines_never_stop_the_watcher_or_lose_the_valid_events() -> None:
    figures = {"examples": 0, "bad lines": 0, "restarts": 0, "invalid reported": 0}
    started = time.monotonic()
    # Hypothesis draws synchronously; the servers run on this loop afterwards.
    drawn: list[list[list[bytes]]] = []

    @settings(BOUNDED, max_examples=25)
    @given(st.lists(st.lists(bad_lines, max_size=2), min_size=4, max_size=4))
    def draw(groups: list[list[bytes]]) -> None:
        drawn.append(groups)

    draw()
    for groups in drawn:
        script: list[tuple[str, bytes]] = []
        for n, group in enumerate(groups):
            script.append(("good", good(n)))
            script += [("bad", line) for line in group]
        script.append(("good", good(len(groups))))
        async with WatchServer(script) as server:
            events, watcher, logs = await consume(server, until_puts(len(groups) + 1))
        assert isinstance(events[0], LiveSynced)
        assert puts(events) == [f"p{n}" for n in range(len(groups) + 1)], (groups, events)
        for event in events[1:]:
            assert isinstance(event, LivePut | LiveInvalid | LiveDeleted), event
            if isinstance(event, LiveInvalid):
                assert event.message.startswith("NetworkPolicy"), event
        bad = sum(len(group) for group in groups)
        restarts = watcher.stats.restarts["bad_stream"]
        expected = sum(refused(line) for group in groups for line in group)
        assert restarts == expected, (groups, watcher.stats.restarts)
        interrupted = [e for e in logs if e["event"] == "live watch interrupted"]
        assert len(interrupted) == sum(watcher.stats.restarts.values())
        for entry in interrupted:
            assert entry["log_level"] == "warning"
            assert "sent a" in entry["error"], entry
        figures["examples"] += 1
        figures["bad lines"] += bad
        figures["restarts"] += restarts
        figures["invalid reported"] += sum(isinstance(e, LiveInvalid) for e in events)
    assert figures["restarts"], "no fuzzed line was refused: the strategy is too tame"
    print(
        f"input watch lines: {figures['examples']} fuzzed streams, {figures['bad lines']} "
        f"bad lines, {figures['restarts']} watches restarted (bad_stream), "
        f"{figures['invalid reported']} invalid policies reported, lost 0, crashes 0, "
        f"{time.monotonic() - started:.1f} s"
    )


DRIFTED = "frontend-allow-from-ingress"


def listed_examples() -> list[dict[str, Any]]:
    """The examples as the API server lists them (resourceVersion 1..n)."""
    docs = [
        doc
        for path in sorted(EXAMPLES.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "NetworkPolicy"
    ]
    for n, doc in enumerate(docs, 1):
        doc["metadata"]["resourceVersion"] = str(n)
    return docs


@async_test(timeout=60)
async def test_the_daemon_keeps_serving_through_bad_watch_lines() -> None:
    """Garbage, truncated JSON, a 2 MiB line and wrong types between two real changes: the
    daemon reports both drifts, logs each bad line as a restarted watch, and runs on."""
    listed = listed_examples()
    wider = copy.deepcopy(next(d for d in listed if d["metadata"]["name"] == DRIFTED))
    wider["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    wider["metadata"]["resourceVersion"] = "101"
    gone = copy.deepcopy(next(d for d in listed if d["metadata"]["name"] == "default-deny"))
    gone["metadata"]["resourceVersion"] = "102"
    bad = [
        b"\x00\xff garbage",
        good(0)[:40],
        b"x" * (2 * MIB),
        _wrong_event({**np_body("typed"), "spec": {"podSelector": [1, 2]}}).rstrip(b"\n"),
        b'{"type": "MODIFIED", "object": []}',
    ]
    script = [
        ("good", event_line("MODIFIED", wider)),
        *[("bad", line) for line in bad],
        ("good", event_line("DELETED", gone)),
    ]
    recorder = RecordingNotifier()
    async with WatchServer(script, listed) as server, api_for(server.url) as api:
        settings_ = Settings.model_validate(
            {"cluster": {"name": "test"}, "desired": {"path": str(EXAMPLES)}}
        )
        daemon = Daemon(settings_, notifiers=[recorder], tuning=FAST, api=api)
        with capture_logs() as logs:
            task = await start_until_ready(daemon, timeout=20)
            try:
                started = time.monotonic()
                await recorder.wait_for(EventKind.OPENED, DRIFTED, timeout=15)
                await recorder.wait_for(EventKind.OPENED, "default-deny", timeout=15)
                recovered = time.monotonic() - started
                assert not task.done(), "the daemon stopped"
                assert daemon.ready.is_set()
            finally:
                daemon.stop()
                await asyncio.wait_for(task, timeout=10)
    assert daemon.watcher is not None
    restarts = daemon.watcher.stats.restarts["bad_stream"]
    assert restarts == 4, daemon.watcher.stats.restarts  # the wrong-typed policy is no restart
    invalid = [e for e in logs if "cannot read" in e["event"] and e.get("name") == "typed"]
    assert invalid, "the wrong-typed policy is reported"
    print(
        f"input daemon: {len(bad)} bad watch lines between 2 changes, {restarts} watches "
        f"restarted, 1 invalid policy reported, both drifts reported {recovered:.2f} s after "
        "the list, lost 0, the daemon kept serving"
    )


# --- crashes this suite found (fixed): nesting beyond reason --------------------------------


def test_a_config_nested_too_deeply_is_a_clear_error() -> None:
    """A document nested ~2,000 deep is refused naming the file (exit 2, not a traceback)."""
    with pytest.raises(SettingsError, match=r"^deep\.yaml: the configuration is nested too"):
        parse_settings(nested(2_000), "deep.yaml", base_dir=Path("/"), environ={})


def test_a_config_alias_holding_itself_is_a_clear_error() -> None:
    """``cluster: &a [*a]`` (a list holding itself) is refused naming the file."""
    with pytest.raises(SettingsError, match=r"^alias\.yaml: .*refers to itself"):
        parse_settings("cluster: &a [*a]", "alias.yaml", base_dir=Path("/"), environ={})


@async_test(timeout=30)
async def test_a_watch_line_nested_too_deeply_restarts_the_watch_and_loses_nothing() -> None:
    """A line nested 100,000 deep is a bad line like any other: the watch restarts and the
    valid events around it arrive."""
    line = b'{"type": "ADDED", "object": ' + nested(100_000).encode() + b"}"
    async with WatchServer([("good", good(0)), ("bad", line), ("good", good(1))]) as server:
        events, _, _ = await consume(server, lambda got: len(puts(got)) >= 2)
    assert puts(events) == ["p0", "p1"]
