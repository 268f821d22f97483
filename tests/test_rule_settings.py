"""The ``rules:`` configuration section, end to end: parse, build the engine, compare."""

from __future__ import annotations

import re
from typing import Any

import pytest

from driftwatch.drift import Drift, compare
from driftwatch.policy import PolicyKey
from driftwatch.rules import RuleEngine, RuleOptions, Severity
from driftwatch.settings import SettingsError, parse_settings
from tests.builders import np

DB = {"matchLabels": {"app": "db"}}
API = {"podSelector": {"matchLabels": {"app": "api"}}}


def engine_for(config: str) -> RuleEngine:
    return RuleEngine(parse_settings(config, "c.yaml").rules.to_options())


def ingress(peers: list[dict[str, Any]], ports: list[int]) -> dict[str, Any]:
    return {"podSelector": DB, "ingress": [{"from": peers, "ports": [{"port": p} for p in ports]}]}


def egress(peers: list[dict[str, Any]], ports: list[Any]) -> dict[str, Any]:
    return {"podSelector": DB, "policyTypes": ["Egress"], "egress": [{"to": peers, "ports": ports}]}


def block(cidr: str, *excepts: str) -> dict[str, Any]:
    return {"ipBlock": {"cidr": cidr, "except": list(excepts)} if excepts else {"cidr": cidr}}


def drift(
    engine: RuleEngine,
    desired: dict[str, Any] | None,
    live: dict[str, Any] | None,
    namespace: str = "shop",
    live_labels: dict[str, str] | None = None,
) -> Drift:
    key = PolicyKey("default", namespace, "web")
    want = None if desired is None else np("web", namespace, spec=desired)
    have = None if live is None else np("web", namespace, spec=live, labels=live_labels)
    return compare(key, want, have, engine)


def levels(d: Drift) -> dict[str, Severity]:
    """The severity of each rule that fired (the highest, when it fired more than once)."""
    out: dict[str, Severity] = {}
    for f in d.findings:
        out[f.rule] = max(out.get(f.rule, f.severity), f.severity)
    return out


GIT = ingress([API], [8080])
PORT_ADDED = ingress([API], [8080, 8081])  # ports-widened (medium), spec-modified (medium)
PUBLIC = ingress([API, block("203.0.113.0/24")], [8080])  # ingress-from-public-cidr (high)
# Unmanaged, it is ingress-from-world (critical).
ALLOW_ALL: dict[str, Any] = {"podSelector": {}, "ingress": [{}]}


# --- defaults ---------------------------------------------------------------------------


def test_no_rules_section_is_the_default_engine() -> None:
    options = parse_settings("", "c.yaml").rules.to_options()
    assert options == RuleOptions()
    default, configured = RuleEngine(), RuleEngine(options)
    for desired, live in ((GIT, PORT_ADDED), (GIT, PUBLIC), (None, ALLOW_ALL)):
        assert drift(default, desired, live).findings == drift(configured, desired, live).findings


# --- escalate ---------------------------------------------------------------------------

ESCALATE_PROD = 'rules:\n  escalate:\n    - namespaces: ["prod-*"]\n'


@pytest.mark.parametrize(
    ("desired", "live"),
    [(GIT, PORT_ADDED), (GIT, PUBLIC), (None, ALLOW_ALL), (GIT, None)],
    ids=["port-added", "public", "unmanaged-allow-all", "missing"],
)
def test_escalate_raises_every_finding_one_level_in_matching_namespaces(
    desired: dict[str, Any] | None, live: dict[str, Any] | None
) -> None:
    escalating = engine_for(ESCALATE_PROD)
    base = drift(RuleEngine(), desired, live, "prod-eu")
    raised = drift(escalating, desired, live, "prod-eu")
    assert [f.rule for f in raised.findings] == [f.rule for f in base.findings]
    for before, after in zip(base.findings, raised.findings, strict=True):
        assert after.severity is before.severity.raised(1)
        assert after.message == before.message
    assert base.severity is not None
    assert raised.severity is base.severity.raised(1)
    # Other namespaces, including ones that merely contain "prod", are untouched.
    for namespace in ("staging", "preprod-eu", "prod"):
        assert (
            drift(escalating, desired, live, namespace).findings
            == drift(RuleEngine(), desired, live, namespace).findings
        )


def test_escalate_is_capped_at_critical() -> None:
    d = drift(engine_for(ESCALATE_PROD), None, ALLOW_ALL, "prod-eu")
    got = levels(d)
    assert got["ingress-from-world"] is Severity.CRITICAL
    assert got["ingress-from-all-namespaces"] is Severity.CRITICAL  # high + 1
    assert got["policy-unmanaged"] is Severity.HIGH  # medium + 1
    assert d.severity is Severity.CRITICAL


def test_escalate_levels_and_several_entries_add_up() -> None:
    config = (
        "rules:\n"
        "  escalate:\n"
        '    - namespaces: ["prod-*", "pci"]\n'
        "      levels: 2\n"
        '    - namespaces: ["*-eu"]\n'
    )
    engine = engine_for(config)
    labels_only = {"x": "y"}
    assert levels(drift(engine, GIT, GIT, "pci", labels_only)) == {
        "metadata-modified": Severity.MEDIUM  # info + 2
    }
    assert levels(drift(engine, GIT, GIT, "prod-eu", labels_only)) == {
        "metadata-modified": Severity.HIGH  # info + 2 + 1
    }
    assert levels(drift(engine, GIT, GIT, "dev-eu", labels_only)) == {
        "metadata-modified": Severity.LOW
    }


def test_negative_escalation_lowers_and_floors_at_info() -> None:
    engine = engine_for('rules:\n  escalate:\n    - {namespaces: ["sandbox-*"], levels: -2}\n')
    got = levels(drift(engine, GIT, PORT_ADDED, "sandbox-1"))
    assert got["ports-widened"] is Severity.INFO
    assert got["traffic-allowed"] is Severity.INFO


# --- trusted_cidrs ----------------------------------------------------------------------


def test_trusted_cidr_is_not_public() -> None:
    engine = engine_for("rules:\n  trusted_cidrs: [203.0.113.0/24, 2001:db8::/32]\n")
    assert "ingress-from-public-cidr" not in levels(drift(engine, GIT, PUBLIC))
    v6 = ingress([API, block("2001:db8:1::/48")], [8080])
    assert "ingress-from-public-cidr" not in levels(drift(engine, GIT, v6))
    other = ingress([API, block("198.51.100.0/24")], [8080])
    assert levels(drift(engine, GIT, other))["ingress-from-public-cidr"] is Severity.HIGH
    # The range still allows traffic Git does not: that is still reported, quietly.
    assert levels(drift(engine, GIT, PUBLIC))["traffic-allowed"] is Severity.LOW


def test_trusted_cidr_makes_the_rest_of_public_space_the_world() -> None:
    live = ingress([API, block("0.0.0.0/0", "8.0.0.0/8")], [8080])
    assert "ingress-from-world" not in levels(drift(RuleEngine(), GIT, live))
    engine = engine_for("rules:\n  trusted_cidrs: [8.0.0.0/8]\n")
    got = levels(drift(engine, GIT, live))
    assert got["ingress-from-world"] is Severity.CRITICAL
    assert "ingress-from-public-cidr" not in got


def test_trusted_cidr_does_not_hide_the_world() -> None:
    engine = engine_for("rules:\n  trusted_cidrs: [203.0.113.0/24]\n")
    world = ingress([API, block("0.0.0.0/0")], [8080])
    assert levels(drift(engine, GIT, world))["ingress-from-world"] is Severity.CRITICAL
    out = egress([block("0.0.0.0/0")], [{"port": 443}])
    got = levels(drift(engine, egress([API], [{"port": 443}]), out))
    assert got["egress-to-world"] is Severity.HIGH
    assert got["egress-to-metadata-api"] is Severity.CRITICAL


def test_trusted_world_peer_does_not_make_ports_widened_high() -> None:
    engine = engine_for("rules:\n  trusted_cidrs: [0.0.0.0/0]\n")
    git = ingress([block("0.0.0.0/0")], [8080])
    live = ingress([block("0.0.0.0/0")], [8080, 8081])
    assert levels(drift(RuleEngine(), git, live))["ports-widened"] is Severity.HIGH
    got = levels(drift(engine, git, live))
    assert got["ports-widened"] is Severity.MEDIUM
    assert "ingress-from-world" not in got


# --- sensitive_ports --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        pytest.param([{"port": 8443}], Severity.HIGH, id="int-form"),
        pytest.param([{"port": 161, "protocol": "UDP"}], Severity.HIGH, id="UDP/161"),
        pytest.param([{"port": 161}], Severity.MEDIUM, id="TCP/161-is-not-UDP/161"),
        pytest.param([{"port": 9050}], Severity.HIGH, id="in-range"),
        pytest.param([{"port": 9101}], Severity.MEDIUM, id="outside-range"),
        pytest.param([{"port": 22}], Severity.HIGH, id="built-in-still-applies"),
        pytest.param([{"port": 8081}], Severity.MEDIUM, id="not-sensitive"),
    ],
)
def test_sensitive_ports_escalate_ports_widened(
    ports: list[dict[str, Any]], expected: Severity
) -> None:
    engine = engine_for('rules:\n  sensitive_ports: [8443, "UDP/161", "tcp/9000-9100"]\n')
    git = egress([API], [{"port": 8080}])
    live = egress([API], [{"port": 8080}, *ports])
    d = drift(engine, git, live)
    got = levels(d)
    assert got["ports-widened"] is expected
    widened = next(f for f in d.findings if f.rule == "ports-widened")
    assert ("sensitive_ports" in widened.evidence) is (expected is Severity.HIGH)
    # Only ports-widened listens to it.
    assert got["traffic-allowed"] is Severity.LOW


# --- severity and disabled --------------------------------------------------------------


def test_severity_override() -> None:
    engine = engine_for(
        "rules:\n  severity:\n    ports-widened: low\n    spec-modified: info\n"
        "    ingress-from-public-cidr: critical\n"
    )
    assert levels(drift(engine, GIT, PORT_ADDED))["ports-widened"] is Severity.LOW
    assert levels(drift(engine, GIT, PORT_ADDED))["spec-modified"] is Severity.INFO
    assert levels(drift(engine, GIT, PUBLIC))["ingress-from-public-cidr"] is Severity.CRITICAL
    # The rule's own escalation (world peer, sensitive port) applies on top of the override.
    live = ingress([API], [8080, 22])
    assert levels(drift(engine, GIT, live))["ports-widened"] is Severity.MEDIUM


def test_severity_override_then_namespace_escalation() -> None:
    engine = engine_for(
        'rules:\n  severity: {cosmetic: low}\n  escalate: [{namespaces: ["prod-*"]}]\n'
    )
    split = ingress([block("10.0.0.0/9"), block("10.128.0.0/9")], [8080])
    d = drift(engine, ingress([block("10.0.0.0/8")], [8080]), split, "prod-1")
    assert levels(d) == {"cosmetic": Severity.MEDIUM}


def test_disabled_rules_never_fire() -> None:
    engine = engine_for("rules:\n  disabled: [traffic-allowed, spec-modified, ports-widened]\n")
    assert levels(drift(engine, GIT, PORT_ADDED)) == {}
    got = levels(drift(engine, GIT, PUBLIC))
    assert got == {"ingress-from-public-cidr": Severity.HIGH}
    disabled = {"traffic-allowed", "spec-modified", "ports-widened"}
    assert not disabled & {r.id for r in engine.rules}


def test_disabling_every_finding_leaves_a_drift_with_no_severity() -> None:
    engine = engine_for("rules:\n  disabled: [metadata-modified]\n")
    d = drift(engine, GIT, GIT, live_labels={"a": "b"})
    assert d.findings == ()
    assert d.severity is None


# --- invalid values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "where", "field", "problem"),
    [
        pytest.param(
            "rules:\n  disabled:\n    - cosmetic\n    - no-such-rule\n",
            3,
            "rules.disabled",
            "no-such-rule",
            id="unknown-disabled-id",
        ),
        pytest.param(
            "default_namespace: x\nrules:\n  severity:\n    no-such-rule: high\n",
            4,
            "rules.severity",
            "no-such-rule",
            id="unknown-severity-id",
        ),
        pytest.param(
            "rules:\n  severity:\n    cosmetic: urgent\n",
            3,
            "rules.severity.cosmetic",
            "'info', 'low', 'medium', 'high' or 'critical'",
            id="unknown-severity-level",
        ),
        pytest.param(
            "rules:\n  trusted_cidrs: [10.0.0.0/33]\n",
            2,
            "rules.trusted_cidrs[0]",
            "'10.0.0.0/33' is not a CIDR",
            id="bad-cidr",
        ),
        pytest.param(
            "rules:\n  trusted_cidrs: [corp]\n",
            2,
            "rules.trusted_cidrs[0]",
            "'corp' is not a CIDR",
            id="not-a-cidr",
        ),
        pytest.param(
            "rules:\n  sensitive_ports: [70000]\n",
            2,
            "rules.sensitive_ports[0]",
            "70000",
            id="port-70000",
        ),
        pytest.param(
            'rules:\n  sensitive_ports: ["UDP/0"]\n',
            2,
            "rules.sensitive_ports[0]",
            "1-65535",
            id="port-0",
        ),
        pytest.param(
            'rules:\n  sensitive_ports: ["TCP/9-8"]\n',
            2,
            "rules.sensitive_ports[0]",
            "1-65535",
            id="reversed-range",
        ),
        pytest.param(
            'rules:\n  sensitive_ports: ["ICMP/8"]\n',
            2,
            "rules.sensitive_ports[0]",
            "is not a port",
            id="unknown-protocol",
        ),
        pytest.param(
            "rules:\n  escalate:\n    - namespaces: [prod-*]\n      levels: 5\n",
            4,
            "rules.escalate[0].levels",
            "less than or equal to 4",
            id="levels-too-high",
        ),
        pytest.param(
            "rules:\n  escalate:\n    - namespaces: [prod-*]\n    - namespaces: [x]\n"
            "      levels: -5\n",
            5,
            "rules.escalate[1].levels",
            "greater than or equal to -4",
            id="levels-too-low",
        ),
        pytest.param(
            "rules:\n  escalate:\n    - levels: 1\n",
            3,
            "rules.escalate[0].namespaces",
            "required",
            id="escalate-without-namespaces",
        ),
        pytest.param(
            "rules:\n  trusted_cidr: [10.0.0.0/8]\n",
            2,
            "rules.trusted_cidr",
            "unknown field",
            id="misspelt-field",
        ),
    ],
)
def test_invalid_rules_settings_name_file_line_and_field(
    config: str, where: int, field: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(config, "c.yaml")
    message = str(info.value)
    assert message.startswith(f"c.yaml:{where}: {field}: "), message
    assert problem in message
    assert len(message.splitlines()) == 1


def test_every_invalid_value_is_reported_at_once() -> None:
    config = "rules:\n  disabled: [nope]\n  trusted_cidrs: [bad]\n  sensitive_ports: [70000]\n"
    with pytest.raises(SettingsError) as info:
        parse_settings(config, "c.yaml")
    lines = str(info.value).splitlines()
    assert [re.sub(r": .*", "", line, count=1) for line in lines] == [
        "c.yaml:2",
        "c.yaml:3",
        "c.yaml:4",
    ]
    assert [line.split(": ")[1] for line in lines] == [
        "rules.disabled",
        "rules.trusted_cidrs[0]",
        "rules.sensitive_ports[0]",
    ]


def test_invalid_list_item_is_named_by_its_own_line_and_index() -> None:
    config = "rules:\n  trusted_cidrs:\n    - 10.0.0.0/8\n    - 192.168.0.0/16\n    - 300.0.0.0/8\n"
    with pytest.raises(SettingsError, match=r"^c\.yaml:5: rules\.trusted_cidrs\[2\]: "):
        parse_settings(config, "c.yaml")
