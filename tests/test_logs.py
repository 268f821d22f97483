"""Structured logging: JSON lines or console, stdlib routed through it, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from driftwatch.daemon import Redactor, configure_logging
from driftwatch.daemon.logs import LogFormat
from driftwatch.settings import parse_settings

SECRET = "xoxb-123-very-secret"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# --- formats ----------------------------------------------------------------------------


def test_json_is_one_object_per_line_with_timestamp_level_logger_event() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = structlog.get_logger("driftwatch.test")
    log.info("drift detected", namespace="shop", count=2)
    log.warning("multi\nline event")
    log.debug("not shown")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "drift detected"
    assert (first["level"], first["logger"]) == ("info", "driftwatch.test")
    assert (first["namespace"], first["count"]) == ("shop", 2)
    assert (second["event"], second["level"]) == ("multi\nline event", "warning")
    stamp = datetime.fromisoformat(first["timestamp"])
    assert first["timestamp"].endswith("Z")
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)


def test_auto_is_json_when_the_stream_is_not_a_terminal() -> None:
    out = io.StringIO()
    configure_logging("info", "auto", stream=out)
    structlog.get_logger("x").info("hello", key="value")
    [line] = json_lines(out)
    assert (line["event"], line["key"]) == ("hello", "value")


@pytest.mark.parametrize("fmt", ["auto", "console"])
def test_console_on_a_terminal(fmt: LogFormat, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = FakeTTY()
    configure_logging("info", fmt, stream=out)
    structlog.get_logger("driftwatch.test").info("drift detected", namespace="shop")
    text = out.getvalue()
    assert not text.startswith("{")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert re.match(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[info\s*\] drift detected\s+"
        r"\[driftwatch\.test\] namespace=shop\n$",
        plain,
    ), plain
    assert "\x1b[" in text  # colours on a terminal


def test_console_off_a_terminal_or_with_no_color_has_no_colours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    configure_logging("info", "console", stream=out)
    structlog.get_logger("x").info("plain")
    assert "plain" in out.getvalue()
    assert "\x1b[" not in out.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    tty = FakeTTY()
    configure_logging("info", "auto", stream=tty)
    structlog.get_logger("x").info("plain")
    assert "\x1b[" not in tty.getvalue()


def test_levels_filter_and_bad_values_are_refused() -> None:
    out = io.StringIO()
    configure_logging("WARNING", "json", stream=out)
    log = structlog.get_logger("x")
    log.info("no")
    log.warning("yes")
    log.error("yes too")
    assert [line["event"] for line in json_lines(out)] == ["yes", "yes too"]
    with pytest.raises(ValueError, match="unknown log level 'trace'"):
        configure_logging("trace", "json", stream=out)
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        configure_logging("info", "xml", stream=out)  # type: ignore[arg-type]


def test_exceptions_are_formatted() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:
        raise RuntimeError("watch failed")
    except RuntimeError:
        structlog.get_logger("x").exception("task failed", task="watcher")
    structlog.get_logger("x").error("later", exc_info=ValueError("given directly"))
    first, second = json_lines(out)
    assert first["level"] == "error"
    assert first["exception"].startswith("Traceback (most recent call last):")
    assert first["exception"].rstrip().endswith("RuntimeError: watch failed")
    assert "ValueError: given directly" in second["exception"]


def test_reconfiguring_replaces_the_output() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", stream=first)
    log = structlog.get_logger("x")  # created before the second configuration
    configure_logging("info", "json", stream=second)
    log.info("once")
    logging.getLogger("aiohttp.client").info("once too")
    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["once", "once too"]


# --- standard-library logging -----------------------------------------------------------


def test_stdlib_loggers_go_through_the_same_renderer_and_level() -> None:
    out = io.StringIO()
    configure_logging("warning", "json", stream=out)
    logging.getLogger("aiohttp.client").warning("connection reset by %s", "peer")
    logging.getLogger("kubernetes_asyncio.watch").info("filtered out")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("asyncio").exception("loop error")
    first, second = json_lines(out)
    assert first["event"] == "connection reset by peer"
    assert (first["level"], first["logger"]) == ("warning", "aiohttp.client")
    assert first["timestamp"].endswith("Z")
    assert (second["logger"], second["level"]) == ("asyncio", "error")
    assert "ZeroDivisionError" in second["exception"]


def test_stdlib_debug_is_shown_at_debug_level() -> None:
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    logging.getLogger("kubernetes_asyncio.watch").debug("event received")
    structlog.get_logger("driftwatch").debug("tick")
    # slack_sdk's debug lines are every request body: left out even at debug.
    logging.getLogger("slack_sdk.web.async_base_client").debug("Sending a request - ...")
    logging.getLogger("slack_sdk.web.async_base_client").info("rate limited")
    assert [(line["logger"], line["event"]) for line in json_lines(out)] == [
        ("kubernetes_asyncio.watch", "event received"),
        ("driftwatch", "tick"),
        ("slack_sdk.web.async_base_client", "rate limited"),
    ]


# --- redaction --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_registered_secrets_never_appear(fmt: LogFormat) -> None:
    out = FakeTTY() if fmt == "console" else io.StringIO()
    configure_logging("debug", fmt, stream=out, secrets=[SECRET, "hunter2", ""])
    log = structlog.get_logger("x")

    class Request:
        def __repr__(self) -> str:
            return f"<Request headers={{'X-Auth': '{SECRET}'}}>"

    log.info(f"posting with {SECRET}", url=f"https://hooks/{SECRET}/x")
    log.info("nested", payload={"a": [{"b": f"x{SECRET}y"}], "t": (SECRET, 1)}, req=Request())
    logging.getLogger("aiohttp.client").warning("auth %s failed", "hunter2")
    try:
        raise PermissionError(f"401 for token {SECRET}")
    except PermissionError:
        log.exception("call failed")
    text = out.getvalue()
    assert SECRET not in text
    assert "hunter2" not in text
    assert text.count("***") >= 6
    if fmt == "json":
        first, second, third, fourth = json_lines(out)
        assert first["event"] == "posting with ***"
        assert first["url"] == "https://hooks/***/x"
        assert second["payload"] == {"a": [{"b": "x***y"}], "t": ["***", 1]}
        assert second["req"] == "<Request headers={'X-Auth': '***'}>"
        assert third["event"] == "auth *** failed"
        assert "PermissionError: 401 for token ***" in fourth["exception"]


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "api_key",
        "apiKey",
        "api-key",
        "password",
        "Authorization",
        "client_secret",
        "slack_token",
        "PASSWD",
    ],
)
def test_secret_named_keys_are_redacted_anywhere(key: str) -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    structlog.get_logger("x").info("call", **{key: "unregistered-value"})
    structlog.get_logger("x").info("call", headers={key: "unregistered-value", "host": "h"})
    structlog.get_logger("x").info("call", items=[{"nested": {key: ["a", "b"]}}])
    first, second, third = json_lines(out)
    assert first[key] == "***"
    assert second["headers"] == {key: "***", "host": "h"}
    assert third["items"] == [{"nested": {key: "***"}}]
    assert "unregistered-value" not in out.getvalue()


def test_redactor_leaves_the_rest_alone_and_prefers_the_longest_secret() -> None:
    redact = Redactor(["abc", "abcdef"])
    event = {"event": "abcdef abc ab", "n": 3, "ok": True, "none": None, "token": None}
    assert redact(None, "info", event) == {
        "event": "*** *** ab",
        "n": 3,
        "ok": True,
        "none": None,
        "token": None,
    }
    assert Redactor()(None, "info", {"event": "abc"}) == {"event": "abc"}


def test_settings_secrets_feed_the_redactor(tmp_path: Any) -> None:
    settings = parse_settings(
        "cluster: {token: kube-token-1}\ndesired: {git: {url: 'https://u:git-pw@h/r.git'}}\n",
        "c.yaml",
        environ={},
    )
    out = io.StringIO()
    configure_logging("info", "json", stream=out, secrets=settings.secret_values())
    log = structlog.get_logger("x")
    log.info("fetching https://u:git-pw@h/r.git", settings=settings.model_dump())
    log.info("header", value="Bearer kube-token-1")
    text = out.getvalue()
    assert "kube-token-1" not in text
    assert "git-pw" not in text
    [first, second] = json_lines(out)
    assert first["event"] == "fetching https://u:***@h/r.git"
    assert second["value"] == "Bearer ***"


# --- drift fields -----------------------------------------------------------------------


def test_a_line_naming_an_incident_carries_its_cluster_namespace_and_policy() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = structlog.get_logger("driftwatch.notify")
    log.info("notification delivered", incident="prod/shop/web-allow#3", receiver="slack")
    log.info("incident opened", incident="prod/shop/web#1", namespace="given", policy="web")
    log.info("not about an incident", incident="not-an-id")
    delivered, opened, other = json_lines(out)
    assert (delivered["cluster"], delivered["namespace"], delivered["policy"]) == (
        "prod",
        "shop",
        "web-allow",
    )
    assert delivered["incident"] == "prod/shop/web-allow#3"
    assert opened["namespace"] == "given"  # what the line says is kept
    assert "cluster" not in other
