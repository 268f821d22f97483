"""The notification sections of the configuration: receivers validated by their type's own
model with errors at file:line: field, routes naming known receivers, silences, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftwatch.notify.outbox import Limits
from driftwatch.notify.routing import Facts
from driftwatch.settings import SettingsError, parse_settings

CONFIG = """\
state:
  path: state/driftwatch.db
notifiers:
  - name: pd
    type: pagerduty
    routing_key: 0123456789abcdef0123456789abcdef
  - name: shell
    type: console
    format: json
    max_in_flight: 1
    rate_limit: 2.5
routes:
  - min_severity: high
    namespaces: ["prod-*"]
    receivers: [pd]
    continue: true
  - receivers: [shell]
silences:
  - namespaces: [lab]
    starts_at: 2026-11-27T10:00:00Z
    ends_at: 2026-11-27T12:00:00Z
    comment: maintenance (alice)
repeat_interval: 30m
"""


def test_a_full_notification_configuration(tmp_path: Path) -> None:
    settings = parse_settings(CONFIG, "c.yaml", base_dir=tmp_path)
    assert [(n.name, n.type) for n in settings.notifiers] == [
        ("pd", "pagerduty"),
        ("shell", "console"),
    ]
    assert settings.notifiers[1].config.format == "json"
    assert settings.notifiers[1].limits() == Limits(1, 2.5)
    assert settings.notifiers[0].limits() == Limits(4, None)
    assert settings.state.path == tmp_path / "state" / "driftwatch.db"
    assert settings.repeat_interval == 1800
    first, second = (r.to_route() for r in settings.routes)
    facts = Facts("c", "prod-eu", "p", "critical", frozenset())
    assert first.match.matches(facts)
    assert first.continue_
    assert first.receivers == ("pd",)
    assert second.match.matches(Facts("c", "dev", "p", None, frozenset()))
    (silence,) = (s.to_silence() for s in settings.silences)
    assert silence.active(silence.starts_at)
    assert not silence.active(silence.ends_at)
    # The routing key is a secret: the log redactor gets it.
    assert "0123456789abcdef0123456789abcdef" in settings.secret_values()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "notifiers:\n  - name: x\n    type: carrier-pigeon\n",
            "c.yaml:3: notifiers[0].type: unknown receiver type 'carrier-pigeon'",
        ),
        (
            "notifiers:\n  - name: x\n    type: console\n    colour: red\n",
            "c.yaml:4: notifiers[0].colour: ",
        ),
        (
            "notifiers:\n  - name: x\n    type: pagerduty\n",
            "c.yaml:2: notifiers[0].routing_key: ",
        ),
        (
            "notifiers:\n  - name: a b\n    type: console\n",
            "c.yaml:2: notifiers[0].name: ",
        ),
        (
            "notifiers:\n  - {name: x, type: console}\n  - {name: x, type: console}\n",
            "c.yaml:3: notifiers[1].name: names must be unique",
        ),
        (
            "notifiers:\n  - {name: x, type: console}\nroutes:\n  - receivers: [y]\n",
            "c.yaml:4: routes[0].receivers: y: not a configured notifier (configured: x)",
        ),
        (
            "routes:\n  - receivers: [x]\n    severity: high\n",
            "c.yaml:3: routes[0].severity: ",
        ),
        (
            "silences:\n  - starts_at: 2026-11-27T12:00:00Z\n    ends_at: 2026-11-27T10:00:00Z\n",
            "c.yaml:2: silences[0]: ",
        ),
        ("repeat_interval: -1m\n", "c.yaml:1: repeat_interval: "),
        (
            "repeat_interval: 2h\nnotifiers:\n  - name: am\n    type: alertmanager\n"
            "    url: http://am:9093\n    ends_after: 1h\n",
            "c.yaml:6: notifiers[0].ends_after: must be longer than repeat_interval",
        ),
    ],
)
def test_invalid_notification_settings_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(text, "c.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_a_receiver_secret_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "pd-key").write_text("fedcba9876543210fedcba9876543210\n")
    settings = parse_settings(
        "notifiers:\n  - name: pd\n    type: pagerduty\n    routing_key_file: pd-key\n",
        "c.yaml",
        base_dir=tmp_path,
    )
    assert "fedcba9876543210fedcba9876543210" in settings.secret_values()
    assert "fedcba98" not in repr(settings)
