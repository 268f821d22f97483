"""`driftwatch rules` (the rule catalogue, a public interface) and `driftwatch explain` errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftwatch.cli import main

# id, default severity, direction: the README's table. Ids and defaults are an interface
# (configuration files and alert routing name them); changing one is a breaking change.
CATALOGUE = [
    ("policy-missing", "high", "hygiene"),
    ("policy-unmanaged", "medium", "hygiene"),
    ("spec-modified", "medium", "hygiene"),
    ("metadata-modified", "info", "hygiene"),
    ("ingress-from-world", "critical", "exposure"),
    ("ingress-from-public-cidr", "high", "exposure"),
    ("egress-to-world", "high", "exposure"),
    ("egress-to-metadata-api", "critical", "exposure"),
    ("ingress-from-all-namespaces", "high", "exposure"),
    ("peer-selector-broadened", "medium", "exposure"),
    ("ports-widened", "medium", "exposure"),
    ("ipblock-except-removed", "high", "exposure"),
    ("target-broadened", "medium", "exposure"),
    ("default-deny-removed", "critical", "exposure"),
    ("isolation-removed", "high", "exposure"),
    ("traffic-allowed", "low", "exposure"),
    ("traffic-blocked", "medium", "isolation"),
    ("dns-egress-blocked", "high", "isolation"),
    ("ignored-rules", "low", "hygiene"),
    ("cosmetic", "info", "hygiene"),
]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_rules_json_is_the_full_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "rules", "--format", "json")
    assert (status, err) == (0, "")
    rows = json.loads(out)
    assert all(set(r) == {"id", "severity", "direction", "description"} for r in rows)
    assert [(r["id"], r["severity"], r["direction"]) for r in rows] == CATALOGUE


def test_every_rule_has_a_one_line_description(capsys: pytest.CaptureFixture[str]) -> None:
    rows = json.loads(run(capsys, "rules", "--format", "json")[1])
    for r in rows:
        text = r["description"]
        assert isinstance(text, str)
        assert text.strip() == text, r["id"]
        assert text, r["id"]
        assert "\n" not in text, r["id"]
        assert "\r" not in text, r["id"]


def test_rules_text_has_one_line_per_rule(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "rules")
    assert (status, err) == (0, "")
    assert out.endswith("\n")
    lines = out.splitlines()
    assert len(lines) == len(CATALOGUE)
    descriptions = {
        r["id"]: r["description"] for r in json.loads(run(capsys, "rules", "--format", "json")[1])
    }
    for line, (rule_id, severity, direction) in zip(lines, CATALOGUE, strict=True):
        fields = line.split()
        assert fields[:3] == [rule_id, severity, direction], line
        assert line.endswith(descriptions[rule_id]), line


def test_rules_text_is_the_default_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "rules")[1] == run(capsys, "rules", "--format", "text")[1]


def test_rules_rejects_an_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["rules", "--format", "yaml"])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1


def _assert_one_line_error(status: int, out: str, err: str, *needles: str) -> None:
    assert status == 2
    assert out == ""
    assert err.endswith("\n")
    assert len(err.splitlines()) == 1, err
    assert err.startswith("driftwatch explain: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_explain_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    _assert_one_line_error(*run(capsys, "explain", str(missing)), "nope.yaml")
    _assert_one_line_error(*run(capsys, "explain", str(missing), "--format", "json"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
            "spec: {podSelector: {matchLabels: 5}}\n",
            "matchLabels",
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
            "spec:\n  podSelector: {}\n  ingress:\n    - ports: [{port: 70000}]\n",
            "port",
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
            "spec:\n  podSelector: {}\n  egress:\n    - to: [{ipBlock: {cidr: 10.0.0.0/33}}]\n",
            "cidr",
        ),
        ("a: [\n", "bad.yaml"),
    ],
    ids=["selector", "port", "cidr", "yaml-syntax"],
)
def test_explain_invalid_policy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, needle: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    _assert_one_line_error(*run(capsys, "explain", str(bad)), "bad.yaml", needle)
    _assert_one_line_error(*run(capsys, "explain", str(bad), "--format", "json"))


def test_explain_a_manifest_without_policies(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Not an error (exit 0), but not a blank line either: one line on stderr says so."""
    other = tmp_path / "configmap.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    status, out, err = run(capsys, "explain", str(other))
    assert (status, out) == (0, "")
    assert err == f"driftwatch explain: no NetworkPolicy in {other}\n"
    status, out, err = run(capsys, "explain", str(other), "--format", "json")
    assert (status, out, err) == (0, "[]\n", "")
