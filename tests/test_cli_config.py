"""``driftwatch config validate`` and ``driftwatch config schema``; the shipped configurations
(config/examples, systemd, the Kubernetes ConfigMap) validate."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, SecretStr

from driftwatch.cli import main
from driftwatch.cli.config import DURATION_PATTERN, json_schema
from driftwatch.notify import registry
from driftwatch.notify.model import ReceiverType
from driftwatch.settings import Settings, SettingsError, expand_environment, load_settings
from driftwatch.values.durations import parse_duration
from driftwatch.values.secrets import SecretFileModel

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "examples" / "driftwatch.yaml"
CONFIGMAP = ROOT / "config" / "kubernetes" / "configmap.yaml"
SECRET_EXAMPLE = ROOT / "config" / "kubernetes" / "secret.example.yaml"
HOST_CONFIG = ROOT / "systemd" / "driftwatch.yaml"
HOST_ENV = ROOT / "systemd" / "driftwatch.env.example"
SECRETS_DIR = "/run/secrets/driftwatch"

PENDING_KEYS = {"server", "ha"}
"""Top-level keys the shipped Pod configuration uses that the Settings model may not know
yet (they were being added when the manifests were written); all others must validate."""


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftwatch", "config", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


# -- validate -----------------------------------------------------------------------------


def test_a_valid_file_is_reported_valid(tmp_path: Path) -> None:
    config = tmp_path / "driftwatch.yaml"
    config.write_text("desired: {path: ./policies}\nlog: {level: debug}\n")
    done = _cli("validate", str(config))
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{config}: valid\n", "")


def test_an_invalid_file_is_reported_as_run_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "driftwatch.yaml"
    config.write_text(
        "desired:\n  git:\n    url: https://example.com/r.git\n    poll_interval: 5x\n"
        "log:\n  level: loud\n"
    )
    assert main(["config", "validate", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    # file:line: field: message, one line each, as `driftwatch run` prints them.
    with pytest.raises(SettingsError) as raised:
        load_settings(config)
    assert err == f"driftwatch: error: {raised.value}\n"
    assert f"{config}:4: desired.git.poll_interval: '5x' is not a duration" in err
    assert f"{config}:6: log.level: " in err

    done = _cli("validate", str(config))
    assert (done.returncode, done.stdout, done.stderr) == (2, "", err)


def test_validate_reports_every_file_and_fails_if_one_is_invalid(tmp_path: Path) -> None:
    good, bad, missing = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "no.yaml"
    good.write_text("default_namespace: apps\n")
    bad.write_text("default_namespace: apps\nunknown_key: 1\n")
    done = _cli("validate", str(good), str(bad), str(missing))
    assert done.returncode == 2
    assert done.stdout == f"{good}: valid\n"
    assert f"driftwatch: error: {bad}:2: unknown_key: unknown field\n" in done.stderr
    assert f"driftwatch: error: {missing}: cannot read the configuration" in done.stderr


def test_validate_run_requires_the_desired_section(tmp_path: Path) -> None:
    config = tmp_path / "driftwatch.yaml"
    config.write_text("default_namespace: apps\n")
    assert _cli("validate", str(config)).returncode == 0
    done = _cli("validate", "--run", str(config))
    assert done.returncode == 2
    assert done.stderr.startswith(f"driftwatch: error: {config}: desired: required")


def test_validate_reads_secret_files_and_the_environment(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("xoxb-1-2-abc\n")
    config = tmp_path / "driftwatch.yaml"
    config.write_text(
        "notifiers:\n"
        "  - {name: slack, type: slack, token_file: ./token, channel: '#drift'}\n"
        "  - {name: pd, type: pagerduty, routing_key: '${PD_KEY}'}\n"
    )
    done = _cli("validate", str(config), env={"PD_KEY": "k" * 32})
    assert done.returncode == 0, done.stderr
    token.unlink()
    done = _cli("validate", str(config), env={"PD_KEY": ""})
    assert done.returncode == 2
    assert f"{config}:2: notifiers[0].token_file: cannot read" in done.stderr
    assert f"{config}:3: notifiers[1].routing_key: " in done.stderr


# -- the shipped configurations -----------------------------------------------------------


def _pod_config_text(secrets_dir: Path) -> str:
    """The ConfigMap's driftwatch.yaml, its secret files in ``secrets_dir``, written from
    the example Secret (so the two must agree)."""
    (secret,) = [d for d in yaml.safe_load_all(SECRET_EXAMPLE.read_text()) if d]
    for key, value in secret["stringData"].items():
        (secrets_dir / key).write_text(value + "\n")
    (configmap,) = [d for d in yaml.safe_load_all(CONFIGMAP.read_text()) if d]
    text: str = configmap["data"]["driftwatch.yaml"]
    return text.replace(SECRETS_DIR + "/", f"{secrets_dir}/")


def _known_keys_only(text: str) -> tuple[str, set[str]]:
    """``text`` without the top-level keys Settings does not know (must be PENDING_KEYS)."""
    data = yaml.safe_load(text)
    unknown = set(data) - {f.alias or name for name, f in Settings.model_fields.items()}
    assert unknown <= PENDING_KEYS, f"unknown top-level keys: {unknown - PENDING_KEYS}"
    return yaml.safe_dump({k: v for k, v in data.items() if k not in unknown}), unknown


def test_the_kubernetes_configmap_configuration_validates(tmp_path: Path) -> None:
    text, unknown = _known_keys_only(_pod_config_text(tmp_path))
    config = tmp_path / "driftwatch.yaml"
    config.write_text(text)
    done = _cli("validate", "--run", str(config))
    assert (done.returncode, done.stderr) == (0, ""), f"left out, not yet in Settings: {unknown}"
    settings = load_settings(config)
    assert [n.name for n in settings.notifiers] == ["slack", "pagerduty", "siem"]
    if not unknown:  # server: and ha: are in the model: they took effect
        assert getattr(settings, "server").listen == "0.0.0.0:8080"  # noqa: B009 - may be absent
        assert getattr(settings, "ha").enabled is True  # noqa: B009 - may be absent


def test_the_example_and_host_configurations_validate(tmp_path: Path) -> None:
    assert _cli("validate", str(EXAMPLE)).stdout == f"{EXAMPLE}: valid\n"
    env = {
        line.partition("=")[0]: line.partition("=")[2]
        for line in HOST_ENV.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    env["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    done = _cli("validate", "--run", str(HOST_CONFIG), env=env)
    assert (done.returncode, done.stderr) == (0, "")
    # The commented-out `driftwatch run` keys of the example are valid once uncommented.
    lines = EXAMPLE.read_text().splitlines()
    start, end = lines.index("# --- driftwatch run"), lines.index("# --- end")
    uncommented = [line.removeprefix("# ") for line in lines[start + 1 : end]]
    config = tmp_path / "run.yaml"
    config.write_text("\n".join(uncommented) + "\n")
    done = _cli("validate", "--run", str(config))
    assert (done.returncode, done.stderr) == (0, "")


# -- schema -------------------------------------------------------------------------------


def _schema_from_cli() -> dict[str, Any]:
    done = _cli("schema")
    assert (done.returncode, done.stderr) == (0, "")
    schema: dict[str, Any] = json.loads(done.stdout)
    return schema


def _plain(value: Any) -> Any:
    """YAML data as JSON has it (timestamps as RFC 3339 strings)."""
    return json.loads(
        json.dumps(
            value,
            default=lambda v: v.isoformat() if isinstance(v, datetime.date) else str(v),
        )
    )


def _substituted(text: str, environ: dict[str, str]) -> Any:
    """The file's data after ${VAR} substitution, which the schema describes."""

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return expand_environment(value, environ)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return _plain(walk(yaml.safe_load(text)))


def test_the_schema_is_json_schema_of_every_section() -> None:
    schema = _schema_from_cli()
    assert schema == json.loads(json.dumps(json_schema()))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        f.alias or name for name, f in Settings.model_fields.items()
    }
    defs = schema["$defs"]
    # A notifiers entry: its own fields plus, chosen by type, the receiver type's.
    entry = defs["NotifierSettings"]
    assert set(entry["properties"]["type"]["enum"]) >= {"slack", "pagerduty", "webhook"}
    slack = defs["Notifier_slack"]
    assert slack["additionalProperties"] is False
    assert {"name", "type", "max_in_flight", "token", "token_file", "channel"} <= set(
        slack["properties"]
    )
    assert "config" not in slack["properties"]
    pagerduty = defs["Notifier_pagerduty"]
    assert "routing_key" not in pagerduty.get("required", [])
    assert {"oneOf": [{"required": ["routing_key"]}, {"required": ["routing_key_file"]}]} in (
        pagerduty["allOf"]
    )
    # Descriptions come from the fields' docstrings.
    assert "Kubeconfig file" in defs["ClusterSettings"]["properties"]["kubeconfig"]["description"]
    assert schema["properties"]["repeat_interval"]["description"].startswith("Remind")
    # Every $ref resolves.
    for ref in re.findall(r'"\$ref": "#/\$defs/([^"]+)"', json.dumps(schema)):
        assert ref in defs, ref


def test_the_schema_accepts_the_shipped_configurations_and_rejects_mistakes(
    tmp_path: Path,
) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="structure is checked above")
    schema = _schema_from_cli()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    host_env = {
        line.partition("=")[0]: line.partition("=")[2]
        for line in HOST_ENV.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    host_env["CREDENTIALS_DIRECTORY"] = "/run/credentials"
    pod_text, _ = _known_keys_only(_pod_config_text(tmp_path))
    lines = EXAMPLE.read_text().splitlines()
    start, end = lines.index("# --- driftwatch run"), lines.index("# --- end")
    run_keys = "\n".join(line.removeprefix("# ") for line in lines[start + 1 : end])
    readme_yaml = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    shipped = {
        "example": _substituted(EXAMPLE.read_text(), {}),
        "example run keys": _substituted(run_keys, {}),
        "host": _substituted(HOST_CONFIG.read_text(), host_env),
        "pod": _substituted(pod_text, {}),
        **{f"README block {i}": _substituted(b, {}) for i, b in enumerate(readme_yaml)},
    }
    for name, data in shipped.items():
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
        assert errors == [], name

    key_file = {"routing_key_file": "/k"}  # both the key and its file: one of the two
    wrong = [
        {"notifiers": [{"name": "s", "type": "slack", "channel": "#c", "tokn": "x"}]},
        {"notifiers": [{"name": "p", "type": "pagerduty"}]},  # no routing key at all
        {"notifiers": [{"name": "p", "type": "pagerduty", "routing_key": "k", **key_file}]},
        {"notifiers": [{"name": "x", "type": "carrier-pigeon"}]},
        {"desired": {"git": {"url": "u", "poll_interval": "5x"}}},
        {"repeat_interval": "1m1h"},
        {"lgo": {"level": "info"}},
    ]
    for data in wrong:
        assert not validator.is_valid(data), data


@pytest.mark.parametrize(
    ("text", "valid"),
    [("30s", True), ("5m", True), ("1h30m", True), ("250ms", True), ("1.5h", True),
     ("1d", True), ("90", True), (".5s", True), (" 2m ", True), ("", False), ("5x", False),
     ("1m1h", False), ("s", False), ("1h 30m", False), ("-1s", False), ("1mm", False),
     ("5ms5s", False)],
)  # fmt: skip
def test_the_duration_pattern_reads_what_parse_duration_reads(text: str, valid: bool) -> None:
    assert (re.fullmatch(DURATION_PATTERN, text) is not None) is valid
    try:
        parse_duration(text)
        parsed = True
    except ValueError:
        parsed = False
    assert parsed is valid


class PigeonConfig(SecretFileModel):
    """A plugin's receiver type, with a secret."""

    model_config = ConfigDict(extra="forbid")

    loft: str
    """Where the pigeons live."""
    ring_code: SecretStr
    """The secret ring code."""


class OddConfig(BaseModel):
    """A plugin's receiver type with a field JSON Schema cannot describe."""

    hook: Callable[[], None] | None = None


def _build(*args: object) -> Any:
    raise NotImplementedError


def test_the_schema_covers_plugin_receiver_types(monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = {
        **registry.builtin_types(),
        "pigeon": ReceiverType("pigeon", PigeonConfig, _build),
        "odd": ReceiverType("odd", OddConfig, _build),
    }
    monkeypatch.setattr(registry, "receiver_types", lambda: plugins)
    schema = json_schema()
    defs = schema["$defs"]
    assert {"pigeon", "odd", "slack"} <= set(defs["NotifierSettings"]["properties"]["type"]["enum"])
    pigeon = defs["Notifier_pigeon"]
    assert pigeon["properties"]["loft"]["description"] == "Where the pigeons live."
    assert {"ring_code", "ring_code_file"} <= set(pigeon["properties"])
    assert pigeon["required"] == ["name", "type", "loft"]
    assert "no JSON Schema" in defs["Notifier_odd"]["description"]
    json.dumps(schema)  # plain JSON throughout
