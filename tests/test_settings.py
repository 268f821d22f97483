"""The configuration file: valid files load, invalid ones name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftwatch.policy import PolicyKey
from driftwatch.rules import Severity
from driftwatch.settings import Settings, SettingsError, load_settings, parse_settings
from tests.builders import np

EXAMPLE = Path(__file__).parent.parent / "config" / "examples" / "driftwatch.yaml"


def test_empty_file_gives_defaults() -> None:
    assert parse_settings("", "c.yaml") == Settings()
    assert Settings().default_namespace == "default"


def test_bundled_example_config_is_valid() -> None:
    settings = load_settings(EXAMPLE)
    ignore = settings.ignore.to_rules()
    assert ignore.ignores(PolicyKey("c", "kube-system", "x"), None, None)
    assert ignore.ignores(PolicyKey("c", "shop", "mesh-a"), None, None)
    assert ignore.ignores(
        PolicyKey("c", "shop", "x"), None, np("x", labels={"driftwatch.io/unmanaged": "true"})
    )
    assert not ignore.ignores(PolicyKey("c", "shop", "x"), None, np("x"))


def test_rule_settings_become_engine_options() -> None:
    s = parse_settings(
        "rules:\n  disabled: [metadata-modified]\n  severity: {spec-modified: high}\n", "c"
    )
    options = s.rules.to_options()
    assert options.disabled == frozenset({"metadata-modified"})
    assert options.severity == {"spec-modified": Severity.HIGH}


def test_structured_selector_is_accepted() -> None:
    s = parse_settings(
        "ignore:\n  policies:\n"
        "    - selector: {matchExpressions: [{key: team, operator: Exists}]}\n",
        "c",
    )
    rules = s.ignore.to_rules()
    assert rules.ignores(PolicyKey("c", "a", "b"), np("b", labels={"team": "x"}), None)
    assert not rules.ignores(PolicyKey("c", "a", "b"), np("b"), None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defualt_namespace: x\n", "c.yaml:1: defualt_namespace: unknown field"),
        (
            "rules:\n  severity:\n    spec-modified: urgent\n",
            "c.yaml:3: rules.severity.spec-modified: "
            "Input should be 'info', 'low', 'medium', 'high' or 'critical'",
        ),
        (
            "rules:\n  disabled:\n    - policy-missing\n    - no-such-rule\n",
            "c.yaml:3: rules.disabled: unknown rule id(s) no-such-rule",
        ),
        (
            "ignore:\n  policies:\n    - name: a\n    - selector: 'a in ()'\n",
            "c.yaml:4: ignore.policies[1].selector: invalid label selector",
        ),
        (
            "ignore:\n  policies:\n    - selector: {matchExpressions: [{key: a, operator: Is}]}\n",
            "c.yaml:3: ignore.policies[0].selector: ",
        ),
        ("ignore: [1]\n", "c.yaml:1: ignore: "),
        ("- a\n", "c.yaml:1: the configuration must be a mapping"),
        ("a: [\n", "c.yaml:2: invalid YAML"),
    ],
)
def test_invalid_configuration_names_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(text, "c.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"nope\.yaml: cannot read the configuration"):
        load_settings(tmp_path / "nope.yaml")
