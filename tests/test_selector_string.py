"""kubectl-style label selector strings, as used in ignore rules."""

from __future__ import annotations

import pytest

from driftwatch.policy import parse_selector_string


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "api"}, False),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("env in (prod, staging)", {"env": "staging"}, True),
        ("env notin (prod)", {}, True),
        ("env notin (prod)", {"env": "prod"}, False),
        ("team", {"team": ""}, True),
        ("!legacy", {"legacy": "yes"}, False),
        ("app=web,!legacy,tier", {"app": "web", "tier": "x"}, True),
        ("app=web,!legacy,tier", {"app": "web"}, False),
        ("", {"anything": "x"}, True),
        ("example.com/owner=me", {"example.com/owner": "me"}, True),
    ],
)
def test_selector_semantics(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_selector_string(selector).matches(labels) is matches


@pytest.mark.parametrize("bad", ["a=b,,", "env in ()", "=x", "a b"])
def test_invalid_selector_strings_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid label selector"):
        parse_selector_string(bad)


def test_selector_renders_back_in_kubectl_syntax() -> None:
    text = "app=web,env in (a,b),!legacy,team"
    assert str(parse_selector_string(text)) == text
