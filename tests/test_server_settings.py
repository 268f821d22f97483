"""The ``server:`` and ``ha:`` sections: listen addresses, secrets read from files (and
redacted), limits, and the high-availability settings' checks and defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftwatch.settings import (
    HaSettings,
    ServerSettings,
    Settings,
    SettingsError,
    parse_listen,
    parse_settings,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),  # noqa: S104 - a listen address under test
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:9090", ("::", 9090)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected
    assert ServerSettings(listen=text).address == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8080", "is not host:port"),
        (":8080", "is not host:port"),
        ("127.0.0.1:http", "is not host:port"),
        ("127.0.0.1:70000", "the port must be 0-65535"),
        ("::1:8080", "write an IPv6 address in brackets"),
        ("[nope]:8080", "in brackets is not an IPv6 address"),
    ],
)
def test_bad_listen_addresses_name_the_field(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(f"server:\n  listen: '{text}'\n", "c.yaml")
    assert str(info.value).startswith("c.yaml:2: server.listen: "), str(info.value)
    assert message in str(info.value)


def test_secrets_are_read_from_files_and_reach_the_redactor(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("api-token-value\n")
    (tmp_path / "hook").write_text("hook-secret-value")
    text = (
        "desired: {git: {url: https://example.com/r.git}}\n"
        "server:\n  listen: 0.0.0.0:8080\n  api_token_file: token\n"
        "  git_webhook_secret_file: hook\n  max_body_bytes: 131072\n"
    )
    settings = parse_settings(text, "c.yaml", base_dir=tmp_path)
    assert settings.server is not None
    assert settings.server.api_token is not None
    assert settings.server.api_token.get_secret_value() == "api-token-value"
    assert settings.server.max_body_bytes == 131072
    assert {"api-token-value", "hook-secret-value"} <= settings.secret_values()
    assert "api-token-value" not in repr(settings)


def test_without_a_server_section_there_is_no_server() -> None:
    assert Settings().server is None
    assert parse_settings("server: {}\n", "c.yaml").server == ServerSettings()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n  api_token_file: /nonexistent/t\n", "c.yaml:2: server.api_token_file: "),
        ("server:\n  max_body_bytes: 10\n", "c.yaml:2: server.max_body_bytes: "),
        ("server:\n  port: 80\n", "c.yaml:2: server.port: unknown field"),
        (
            "desired: {path: .}\nserver:\n  git_webhook_secret: x\n",
            "c.yaml:3: server.git_webhook_secret_file: the Git push hook needs desired.git",
        ),
        (
            "ha:\n  enabled: true\n",
            "c.yaml:2: ha.store: two replicas cannot share a SQLite file; use store: kubernetes",
        ),
        ("ha:\n  renew_deadline: 20s\n", "c.yaml:2: ha.renew_deadline: must be shorter than"),
        ("ha:\n  retry_period: 10s\n", "c.yaml:2: ha.retry_period: must be shorter than"),
        ("ha:\n  store: etcd\n", "c.yaml:2: ha.store: "),
    ],
)
def test_invalid_server_and_ha_settings_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(text, "c.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_ha_defaults_resolve_from_the_pod_environment_when_used() -> None:
    ha = Settings().ha
    assert ha == HaSettings()
    assert (ha.enabled, ha.lease_name, ha.store) == (False, "driftwatch", "sqlite")
    assert (ha.lease_duration, ha.renew_deadline, ha.retry_period) == (15.0, 10.0, 2.0)
    env = {"POD_NAMESPACE": "netpol", "POD_NAME": "driftwatch-0"}
    assert ha.namespace(env) == "netpol"
    assert ha.incidents_namespace(env) == "netpol"
    assert ha.holder(env) == "driftwatch-0"
    assert ha.namespace({}) == "default"
    assert ha.holder({})  # the host name
    ha = HaSettings.model_validate(
        {
            "enabled": True,
            "store": "kubernetes",
            "lease_namespace": "ops",
            "store_namespace": "incidents",
            "identity": "me",
            "lease_duration": "30s",
            "renew_deadline": "20s",
            "retry_period": "5s",
        }
    )
    assert (ha.namespace(env), ha.incidents_namespace(env), ha.holder(env)) == (
        "ops",
        "incidents",
        "me",
    )
