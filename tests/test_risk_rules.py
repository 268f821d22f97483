"""The risk rule catalogue, rule by rule: what fires, how loud, which way, and near-misses.

Every case goes through ``compare`` with the full default engine, as ``check`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from driftwatch.drift import Drift, compare
from driftwatch.policy import PolicyKey
from driftwatch.rules import (
    CATALOGUE,
    Direction,
    Finding,
    RuleEngine,
    RuleOptions,
    RuleSettings,
    Severity,
    Status,
    max_severity,
)
from driftwatch.semantic.ipspace import cidr_intervals
from driftwatch.semantic.ports import PortSet
from tests.builders import np

ENGINE = RuleEngine()
NO_SENSITIVE = RuleEngine(RuleOptions(settings=RuleSettings()))
"""An engine with no sensitive ports at all, to see ``ports-widened`` at its base level."""

NS = "shop"
TARGET = "pods app=db in shop"
DB = {"matchLabels": {"app": "db"}}
API = {"podSelector": {"matchLabels": {"app": "api"}}}
WEB = {"podSelector": {"matchLabels": {"app": "web"}}}
KUBE_DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
PRIVATE_V4 = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
)
FLOW_EVIDENCE = {"direction", "selected_pods", "peer", "ports"}

Spec = dict[str, Any]


# --- builders ---------------------------------------------------------------------------


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"port": p} for p in ports]


def udp(*ports: int) -> list[dict[str, Any]]:
    return [{"port": p, "protocol": "UDP"} for p in ports]


def block(cidr: str, *excepts: str) -> dict[str, Any]:
    ip_block: dict[str, Any] = {"cidr": cidr}
    if excepts:
        ip_block["except"] = list(excepts)
    return {"ipBlock": ip_block}


def ns_selector(**labels: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": labels}}


def ns_expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    expr: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        expr["values"] = list(values)
    return {"namespaceSelector": {"matchExpressions": [expr]}}


def pods(**labels: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": labels}}


def in_(key: str, *values: str) -> Spec:
    """A selector written with ``matchExpressions``: ``key In (values)``."""
    return {"matchExpressions": [{"key": key, "operator": "In", "values": list(values)}]}


def by_name(namespace: str) -> dict[str, Any]:
    """A namespace selector on the name label the API server sets."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def rule(
    peers: Sequence[dict[str, Any]] | None = None,
    ports: Sequence[dict[str, Any]] | None = None,
    *,
    key: str = "from",
) -> dict[str, Any]:
    """One rule; ``None`` leaves the field out (all peers, all ports)."""
    out: dict[str, Any] = {}
    if peers is not None:
        out[key] = list(peers)
    if ports is not None:
        out["ports"] = list(ports)
    return out


def ingress(
    *rules: dict[str, Any], types: Sequence[str] | None = None, selector: Spec | None = None
) -> Spec:
    spec: Spec = {"podSelector": DB if selector is None else selector, "ingress": list(rules)}
    if types is not None:
        spec["policyTypes"] = list(types)
    return spec


def egress(
    *rules: dict[str, Any], types: Sequence[str] = ("Egress",), selector: Spec | None = None
) -> Spec:
    return {
        "podSelector": DB if selector is None else selector,
        "policyTypes": list(types),
        "egress": list(rules),
    }


def to(
    peers: Sequence[dict[str, Any]] | None = None, ports: Sequence[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return rule(peers, ports, key="to")


def drift(
    desired: Spec | None,
    live: Spec | None,
    *,
    engine: RuleEngine = ENGINE,
    desired_labels: dict[str, str] | None = None,
    live_labels: dict[str, str] | None = None,
) -> Drift:
    key = PolicyKey("default", NS, "web")
    want = None if desired is None else np("web", NS, spec=desired, labels=desired_labels)
    have = None if live is None else np("web", NS, spec=live, labels=live_labels)
    result = compare(key, want, have, engine)
    # The drift's severity is always the highest of its findings'.
    assert result.severity == max_severity(result.findings)
    return result


def rules_of(d: Drift) -> set[str]:
    return {f.rule for f in d.findings}


def found(d: Drift, rule_id: str) -> list[Finding]:
    return [f for f in d.findings if f.rule == rule_id]


def one(d: Drift, rule_id: str) -> Finding:
    hits = found(d, rule_id)
    assert len(hits) == 1, [f.message for f in d.findings]
    return hits[0]


def check(finding: Finding, severity: Severity, direction: Direction, *facts: str) -> Finding:
    """The finding's level and direction, and a one-line message naming every fact."""
    assert finding.severity is severity, finding
    assert finding.direction is direction, finding
    assert finding.message
    assert "\n" not in finding.message
    for fact in facts:
        assert fact in finding.message, (fact, finding.message)
    return finding


def exposures(d: Drift) -> list[Finding]:
    return [f for f in d.findings if f.direction is Direction.EXPOSURE]


# --- the catalogue ----------------------------------------------------------------------

TABLE = {
    "policy-missing": (Severity.HIGH, Direction.HYGIENE),
    "policy-unmanaged": (Severity.MEDIUM, Direction.HYGIENE),
    "spec-modified": (Severity.MEDIUM, Direction.HYGIENE),
    "metadata-modified": (Severity.INFO, Direction.HYGIENE),
    "ingress-from-world": (Severity.CRITICAL, Direction.EXPOSURE),
    "ingress-from-public-cidr": (Severity.HIGH, Direction.EXPOSURE),
    "egress-to-world": (Severity.HIGH, Direction.EXPOSURE),
    "egress-to-metadata-api": (Severity.CRITICAL, Direction.EXPOSURE),
    "ingress-from-all-namespaces": (Severity.HIGH, Direction.EXPOSURE),
    "peer-selector-broadened": (Severity.MEDIUM, Direction.EXPOSURE),
    "ports-widened": (Severity.MEDIUM, Direction.EXPOSURE),
    "ipblock-except-removed": (Severity.HIGH, Direction.EXPOSURE),
    "target-broadened": (Severity.MEDIUM, Direction.EXPOSURE),
    "default-deny-removed": (Severity.CRITICAL, Direction.EXPOSURE),
    "isolation-removed": (Severity.HIGH, Direction.EXPOSURE),
    "traffic-allowed": (Severity.LOW, Direction.EXPOSURE),
    "traffic-blocked": (Severity.MEDIUM, Direction.ISOLATION),
    "dns-egress-blocked": (Severity.HIGH, Direction.ISOLATION),
    "ignored-rules": (Severity.LOW, Direction.HYGIENE),
    "cosmetic": (Severity.INFO, Direction.HYGIENE),
}


def test_catalogue_ids_defaults_and_directions_are_the_public_interface() -> None:
    assert {r.id: (r.severity, r.direction) for r in CATALOGUE} == TABLE
    assert len({r.id for r in CATALOGUE}) == len(CATALOGUE)
    assert all(r.description and "\n" not in r.description for r in CATALOGUE)
    assert {r.id for r in ENGINE.rules} == set(TABLE)


# --- ingress-from-world -----------------------------------------------------------------

GIT_API_5432 = ingress(rule([API], tcp(5432)))


@pytest.mark.parametrize(
    ("peers", "cidrs"),
    [
        pytest.param([block("0.0.0.0/0")], ["0.0.0.0/0"], id="0.0.0.0/0"),
        pytest.param([block("::/0")], ["::/0"], id="::/0"),
        pytest.param([block("::/0", "fc00::/7", "fe80::/10")], ["::/0"], id="v6-minus-ula"),
        pytest.param([block("0.0.0.0/1"), block("128.0.0.0/1")], ["0.0.0.0/0"], id="two-halves"),
        pytest.param(
            [block("0.0.0.0/0", *PRIVATE_V4)], ["0.0.0.0/0"], id="excepting-only-private-space"
        ),
        pytest.param(
            [block("0.0.0.0/0"), block("::/0")], ["0.0.0.0/0", "::/0"], id="both-families"
        ),
    ],
)
def test_ingress_from_world_via_ip_blocks(peers: list[dict[str, Any]], cidrs: list[str]) -> None:
    d = drift(GIT_API_5432, ingress(rule([API, *peers], tcp(5432))))
    f = check(
        one(d, "ingress-from-world"),
        Severity.CRITICAL,
        Direction.EXPOSURE,
        "ingress",
        TARGET,
        "every",
        "internet",
        "TCP 5432",
    )
    assert f.evidence["peer"] == {"cidrs": cidrs}
    assert f.evidence["ports"] == ["TCP/5432"]
    assert f.evidence["direction"] == "ingress"
    assert f.evidence["selected_pods"] == TARGET
    assert d.severity is Severity.CRITICAL
    assert "ingress-from-public-cidr" not in rules_of(d)


def test_stray_dash_opens_the_world_and_widens_the_ports() -> None:
    # Git: one rule, from app=api on 5432. Live: a stray "-" made it two rules, one
    # "from app=api on every port" and one "from everywhere on 5432".
    live = {"podSelector": DB, "ingress": [{"from": [API]}, {"ports": tcp(5432)}]}
    d = drift(GIT_API_5432, live)
    assert d.status is Status.MODIFIED
    check(
        one(d, "ingress-from-world"),
        Severity.CRITICAL,
        Direction.EXPOSURE,
        TARGET,
        "every address",
        "TCP 5432",
    )
    widened = check(
        one(d, "ports-widened"),
        # every port but 5432 includes ssh, a built-in sensitive port
        Severity.HIGH,
        Direction.EXPOSURE,
        TARGET,
        "pods app=api in shop",
        "all ports except TCP 5432",
    )
    assert "TCP/22-23" in widened.evidence["sensitive_ports"]
    check(
        one(d, "ingress-from-all-namespaces"),
        Severity.HIGH,
        Direction.EXPOSURE,
        "every pod in every namespace",
    )
    assert d.severity is Severity.CRITICAL


def test_empty_from_list_is_the_world_too() -> None:
    d = drift(GIT_API_5432, ingress(rule([], tcp(5432))))
    check(one(d, "ingress-from-world"), Severity.CRITICAL, Direction.EXPOSURE, "TCP 5432")


def test_world_with_some_public_range_excepted_is_a_public_cidr_not_the_world() -> None:
    d = drift(GIT_API_5432, ingress(rule([API, block("0.0.0.0/0", "8.0.0.0/8")], tcp(5432))))
    assert "ingress-from-world" not in rules_of(d)
    f = check(
        one(d, "ingress-from-public-cidr"),
        Severity.HIGH,
        Direction.EXPOSURE,
        TARGET,
        "every IPv4 address except 8.0.0.0/8",
        "TCP 5432",
    )
    assert "8.0.0.0/8" not in f.evidence["public"]
    assert "10.0.0.0/8" not in f.evidence["public"]


def test_world_already_allowed_in_git_is_not_new() -> None:
    git = ingress(rule([block("0.0.0.0/0"), block("::/0")], tcp(443)))
    d = drift(git, ingress(rule([block("::/0"), API, block("0.0.0.0/0")], tcp(443))))
    assert rules_of(d) == {"spec-modified", "traffic-allowed"}
    assert "pods app=api in shop" in one(d, "traffic-allowed").message


def test_world_on_another_port_is_new() -> None:
    git = ingress(rule([block("0.0.0.0/0")], tcp(443)))
    d = drift(git, ingress(rule([block("0.0.0.0/0")], tcp(443, 8443))))
    f = check(one(d, "ingress-from-world"), Severity.CRITICAL, Direction.EXPOSURE, "TCP 8443")
    assert f.evidence["ports"] == ["TCP/8443"]


def test_ipv6_world_is_new_even_when_git_allowed_all_of_ipv4() -> None:
    git = ingress(rule([block("0.0.0.0/0")], tcp(443)))
    d = drift(git, ingress(rule([block("0.0.0.0/0"), block("::/0")], tcp(443))))
    f = check(
        one(d, "ingress-from-world"),
        Severity.CRITICAL,
        Direction.EXPOSURE,
        "every IPv6 address",
        "TCP 443",
    )
    assert f.evidence["peer"] == {"cidrs": ["::/0"]}
    assert "ingress-from-public-cidr" not in rules_of(d)


@pytest.mark.parametrize(
    "live",
    [
        pytest.param(ingress(rule([API, {"namespaceSelector": {}}], tcp(5432))), id="ns-{}"),
        pytest.param(ingress(rule([API, block("203.0.113.0/24")], tcp(5432))), id="public"),
        pytest.param(ingress(rule([API, block("10.0.0.0/8")], tcp(5432))), id="private"),
        pytest.param(
            {**ingress(rule([API], tcp(5432))), "egress": [{"ports": tcp(53)}]},
            id="egress-to-world",
        ),
    ],
)
def test_not_the_world(live: Spec) -> None:
    assert "ingress-from-world" not in rules_of(drift(GIT_API_5432, live))


# --- ingress-from-public-cidr -----------------------------------------------------------


def test_ingress_from_public_cidr() -> None:
    d = drift(GIT_API_5432, ingress(rule([API, block("203.0.113.0/24")], tcp(5432))))
    f = check(
        one(d, "ingress-from-public-cidr"),
        Severity.HIGH,
        Direction.EXPOSURE,
        TARGET,
        "203.0.113.0/24",
        "TCP 5432",
    )
    assert f.evidence["public"] == ["203.0.113.0/24"]
    assert f.evidence["peer"] == {"cidrs": ["203.0.113.0/24"]}
    assert d.severity is Severity.HIGH


def test_ingress_from_public_ipv6_cidr() -> None:
    d = drift(GIT_API_5432, ingress(rule([API, block("2001:db8::/32")], tcp(5432))))
    check(one(d, "ingress-from-public-cidr"), Severity.HIGH, Direction.EXPOSURE, "2001:db8::/32")


@pytest.mark.parametrize(
    "cidr",
    [
        "192.168.0.0/16",
        "10.20.0.0/16",
        "172.16.0.0/12",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fd12:3456::/32",
        "fe80::/10",
        "::1/128",
    ],
)
def test_non_public_ranges_are_not_public(cidr: str) -> None:
    d = drift(GIT_API_5432, ingress(rule([API, block(cidr)], tcp(5432))))
    assert not {"ingress-from-public-cidr", "ingress-from-world"} & rules_of(d)
    assert [f.rule for f in exposures(d)] == ["traffic-allowed"]


def test_trusted_cidr_is_not_public() -> None:
    trusting = RuleEngine(
        RuleOptions(settings=RuleSettings(trusted=cidr_intervals("203.0.113.0/24")))
    )
    live = ingress(rule([API, block("203.0.113.0/24")], tcp(5432)))
    assert "ingress-from-public-cidr" not in rules_of(drift(GIT_API_5432, live, engine=trusting))
    wider = ingress(rule([API, block("203.0.112.0/23")], tcp(5432)))
    f = one(drift(GIT_API_5432, wider, engine=trusting), "ingress-from-public-cidr")
    assert f.evidence["public"] == ["203.0.112.0/24"]


def test_public_cidr_already_in_git_is_not_new() -> None:
    git = ingress(rule([block("203.0.113.0/24")], tcp(443)))
    d = drift(git, ingress(rule([block("203.0.113.0/25"), block("203.0.113.128/25")], tcp(443))))
    assert rules_of(d) == {"cosmetic"}


def test_public_cidr_on_other_ports_than_a_new_world_is_still_reported() -> None:
    live = ingress(
        rule([block("0.0.0.0/0")], tcp(443)),
        rule([block("203.0.113.0/24")], tcp(22)),
    )
    d = drift(ingress(rule([API], tcp(443))), live)
    check(one(d, "ingress-from-world"), Severity.CRITICAL, Direction.EXPOSURE, "TCP 443")
    f = check(
        one(d, "ingress-from-public-cidr"),
        Severity.HIGH,
        Direction.EXPOSURE,
        "203.0.113.0/24",
        "TCP 22",
    )
    assert f.evidence["ports"] == ["TCP/22"]


def test_public_egress_is_not_ingress_from_public_cidr() -> None:
    d = drift(egress(to([API])), egress(to([API, block("203.0.113.0/24")])))
    assert not {"ingress-from-public-cidr", "egress-to-world"} & rules_of(d)


# --- egress-to-world --------------------------------------------------------------------


def test_egress_to_world() -> None:
    d = drift(egress(to([API], tcp(443))), egress(to([API, block("0.0.0.0/0")], tcp(443))))
    f = check(
        one(d, "egress-to-world"),
        Severity.HIGH,
        Direction.EXPOSURE,
        f"egress from {TARGET} to every IPv4 address",
        "TCP 443",
    )
    assert f.evidence["peer"] == {"cidrs": ["0.0.0.0/0"]}
    assert "ingress-from-world" not in rules_of(d)


def test_egress_with_no_to_is_the_world() -> None:
    d = drift(egress(to([API], tcp(443))), egress(to(None, tcp(443))))
    check(one(d, "egress-to-world"), Severity.HIGH, Direction.EXPOSURE, "every address", "TCP 443")


@pytest.mark.parametrize(
    ("desired", "live"),
    [
        pytest.param(
            egress(to([API], tcp(443))),
            egress(to([API, block("0.0.0.0/0", "8.0.0.0/8")], tcp(443))),
            id="public-range-excepted",
        ),
        pytest.param(
            egress(to([API], tcp(443))),
            egress(to([API, {"namespaceSelector": {}}], tcp(443))),
            id="every-pod-is-not-every-address",
        ),
        pytest.param(
            egress(to([API, block("0.0.0.0/0")], tcp(443))),
            egress(to([block("0.0.0.0/0")], tcp(443))),
            id="already-in-git",
        ),
    ],
)
def test_not_egress_to_world(desired: Spec, live: Spec) -> None:
    assert not {"egress-to-world", "ingress-from-world"} & rules_of(drift(desired, live))


# --- egress-to-metadata-api -------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "endpoint"),
    [
        ("169.254.0.0/16", "169.254.169.254"),
        ("169.254.169.254/32", "169.254.169.254"),
        ("fd00:ec2::/64", "fd00:ec2::254"),
    ],
)
def test_egress_to_metadata_api(cidr: str, endpoint: str) -> None:
    d = drift(egress(to([API])), egress(to([API, block(cidr)])))
    f = check(
        one(d, "egress-to-metadata-api"),
        Severity.CRITICAL,
        Direction.EXPOSURE,
        TARGET,
        "metadata",
        endpoint,
        "all ports",
    )
    assert f.evidence.keys() >= FLOW_EVIDENCE
    assert d.severity is Severity.CRITICAL


def test_egress_to_world_reaches_the_metadata_api_too() -> None:
    d = drift(egress(to([API], tcp(80))), egress(to([API, block("0.0.0.0/0")], tcp(80))))
    assert {"egress-to-world", "egress-to-metadata-api"} <= rules_of(d)
    assert d.severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("desired", "live"),
    [
        pytest.param(
            egress(to([API])),
            egress(to([API, block("169.254.0.0/16", "169.254.169.254/32")])),
            id="excepted",
        ),
        pytest.param(
            egress(to([API])),
            egress(to([API, block("0.0.0.0/0", "169.254.169.254/32")])),
            id="world-excepting-it",
        ),
        pytest.param(
            egress(to([block("169.254.169.254/32")])),
            egress(to([block("169.254.0.0/16")])),
            id="already-in-git",
        ),
        pytest.param(
            ingress(rule([API])), ingress(rule([API, block("169.254.0.0/16")])), id="ingress"
        ),
    ],
)
def test_not_egress_to_metadata_api(desired: Spec, live: Spec) -> None:
    assert "egress-to-metadata-api" not in rules_of(drift(desired, live))


# --- ingress-from-all-namespaces --------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "fact"),
    [
        ({"namespaceSelector": {}}, "every pod in every namespace"),
        (
            {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "x"}}},
            "pods app=x in every namespace",
        ),
        (ns_expression("team", "NotIn", "x"), "team notin (x)"),
        (ns_expression("team", "DoesNotExist"), "!team"),
    ],
)
def test_ingress_from_all_namespaces(peer: dict[str, Any], fact: str) -> None:
    d = drift(GIT_API_5432, ingress(rule([API, peer], tcp(5432))))
    f = check(
        one(d, "ingress-from-all-namespaces"),
        Severity.HIGH,
        Direction.EXPOSURE,
        TARGET,
        fact,
        "TCP 5432",
    )
    assert f.evidence.keys() >= FLOW_EVIDENCE


@pytest.mark.parametrize(
    "live",
    [
        pytest.param(ingress(rule([API, ns_selector(team="x")], tcp(5432))), id="team=x"),
        pytest.param(ingress(rule([API, ns_expression("team", "Exists")], tcp(5432))), id="exists"),
        pytest.param(ingress(rule([API, {"podSelector": {}}], tcp(5432))), id="own-namespace"),
        pytest.param(
            {**GIT_API_5432, "egress": [{"to": [{"namespaceSelector": {}}]}]}, id="egress"
        ),
    ],
)
def test_not_all_namespaces(live: Spec) -> None:
    assert "ingress-from-all-namespaces" not in rules_of(drift(GIT_API_5432, live))


def test_all_namespaces_already_in_git_is_not_new() -> None:
    git = ingress(rule([{"namespaceSelector": {}}], tcp(5432)))
    live = ingress(rule([ns_expression("team", "NotIn", "x")], tcp(5432)))
    d = drift(git, live)
    assert not exposures(d)


# --- peer-selector-broadened ------------------------------------------------------------


def test_peer_selector_key_dropped_is_broadened() -> None:
    git = ingress(rule([pods(app="api", tier="be")], tcp(5432)))
    d = drift(git, ingress(rule([pods(app="api")], tcp(5432))))
    f = check(
        one(d, "peer-selector-broadened"),
        Severity.MEDIUM,
        Direction.EXPOSURE,
        "app=api,tier=be",
        "pods app=api in shop",
        "TCP 5432",
    )
    assert f.evidence["was"] == "pods app=api,tier=be in shop"
    assert f.evidence.keys() >= FLOW_EVIDENCE
    assert "ports-widened" not in rules_of(d)


def test_namespace_selector_broadened() -> None:
    git = ingress(rule([ns_selector(team="x")], tcp(5432)))
    d = drift(git, ingress(rule([ns_expression("team", "Exists")], tcp(5432))))
    check(one(d, "peer-selector-broadened"), Severity.MEDIUM, Direction.EXPOSURE, "team=x")
    assert "ingress-from-all-namespaces" not in rules_of(d)


def test_egress_peer_broadened() -> None:
    git = egress(to([pods(app="api", tier="be")], tcp(443)))
    d = drift(git, egress(to([pods(app="api")], tcp(443))))
    check(one(d, "peer-selector-broadened"), Severity.MEDIUM, Direction.EXPOSURE, "egress")


@pytest.mark.parametrize(
    "live",
    [
        pytest.param(ingress(rule([pods(app="api", tier="be")], tcp(5432))), id="narrowed"),
        pytest.param(ingress(rule([pods(app="web")], tcp(5432))), id="replaced"),
        pytest.param(
            ingress(rule([{"podSelector": in_("app", "api")}], tcp(5432))), id="rewritten"
        ),
    ],
)
def test_peer_not_broadened(live: Spec) -> None:
    assert "peer-selector-broadened" not in rules_of(drift(GIT_API_5432, live))


# --- ports-widened ----------------------------------------------------------------------

GIT_API_8080 = ingress(rule([API], tcp(8080)))


@pytest.mark.parametrize(
    ("desired", "live", "fact", "default"),
    [
        pytest.param(
            GIT_API_8080,
            ingress(rule([API], tcp(8080, 8081))),
            "TCP 8081",
            Severity.MEDIUM,
            id="port-added",
        ),
        pytest.param(
            GIT_API_8080,
            ingress(rule([API])),
            "all ports except TCP 8080",
            # every port includes the built-in sensitive ones (ssh, ...)
            Severity.HIGH,
            id="ports-removed",
        ),
        pytest.param(
            ingress(rule([API], [{"port": 8000, "endPort": 8010}])),
            ingress(rule([API], [{"port": 8000, "endPort": 8020}])),
            "TCP 8011-8020",
            Severity.MEDIUM,
            id="endPort-raised",
        ),
        pytest.param(
            GIT_API_8080,
            ingress(rule([API], [*tcp(8080), *udp(8080)])),
            "UDP 8080",
            Severity.MEDIUM,
            id="udp-added",
        ),
        pytest.param(
            GIT_API_8080,
            ingress(rule([API], [*tcp(8080), {"port": "metrics"}])),
            'TCP port "metrics"',
            Severity.MEDIUM,
            id="named-port-added",
        ),
        pytest.param(
            egress(to([API], tcp(8080))),
            egress(to([API], tcp(8080, 9090))),
            "TCP 9090",
            Severity.MEDIUM,
            id="egress",
        ),
    ],
)
def test_ports_widened(desired: Spec, live: Spec, fact: str, default: Severity) -> None:
    f = check(
        one(drift(desired, live, engine=NO_SENSITIVE), "ports-widened"),
        Severity.MEDIUM,
        Direction.EXPOSURE,
        TARGET,
        "pods app=api in shop",
        fact,
    )
    assert f.evidence.keys() >= FLOW_EVIDENCE
    assert "sensitive_ports" not in f.evidence
    assert one(drift(desired, live), "ports-widened").severity is default


def test_ports_widened_on_world_peer_is_high() -> None:
    git = ingress(rule([block("0.0.0.0/0")], tcp(443)))
    d = drift(git, ingress(rule([block("0.0.0.0/0")], tcp(443, 8443))))
    check(one(d, "ports-widened"), Severity.HIGH, Direction.EXPOSURE, "0.0.0.0/0", "TCP 8443")


def test_ports_widened_on_sensitive_port_is_one_level_higher() -> None:
    d = drift(GIT_API_8080, ingress(rule([API], tcp(8080, 22))))
    f = check(one(d, "ports-widened"), Severity.HIGH, Direction.EXPOSURE, "TCP 22")
    assert f.evidence["sensitive_ports"] == ["TCP/22"]
    configured = RuleEngine(
        RuleOptions(
            settings=RuleSettings(sensitive_ports=PortSet.build({"TCP": ((8081, 8081),)}, ()))
        )
    )
    live = ingress(rule([API], tcp(8080, 8081)))
    assert one(drift(GIT_API_8080, live, engine=configured), "ports-widened").severity is (
        Severity.HIGH
    )
    assert one(drift(GIT_API_8080, live), "ports-widened").severity is Severity.MEDIUM


def test_ports_widened_on_world_peer_and_sensitive_port_is_critical() -> None:
    git = ingress(rule([block("0.0.0.0/0")], tcp(443)))
    d = drift(git, ingress(rule([block("0.0.0.0/0")], tcp(443, 22))))
    check(one(d, "ports-widened"), Severity.CRITICAL, Direction.EXPOSURE, "TCP 22")


@pytest.mark.parametrize(
    "live",
    [
        pytest.param(ingress(rule([API], tcp(8080)), rule([WEB], tcp(9090))), id="new-peer"),
        pytest.param(ingress(rule([API, block("203.0.113.0/24")], tcp(8080))), id="new-cidr"),
        pytest.param(ingress(rule([API], [{"port": 8080, "protocol": "TCP"}])), id="same"),
        pytest.param(ingress(rule([API], [{"port": 8080, "endPort": 8080}])), id="range-of-one"),
    ],
)
def test_ports_not_widened(live: Spec) -> None:
    assert "ports-widened" not in rules_of(drift(GIT_API_8080, live))


def test_port_removed_is_not_widened() -> None:
    d = drift(ingress(rule([API], tcp(8080, 8081))), GIT_API_8080)
    assert not exposures(d)
    check(one(d, "traffic-blocked"), Severity.MEDIUM, Direction.ISOLATION, "TCP 8081")


# --- ipblock-except-removed -------------------------------------------------------------

# 10.0.0.0/8 except 10.1.0.0/16, written as the CIDRs that remain.
REWRITTEN_10_8 = (
    "10.0.0.0/16", "10.2.0.0/15", "10.4.0.0/14", "10.8.0.0/13",
    "10.16.0.0/12", "10.32.0.0/11", "10.64.0.0/10", "10.128.0.0/9",
)  # fmt: skip
GIT_EXCEPT = ingress(rule([block("10.0.0.0/8", "10.1.0.0/16")], tcp(5432)))


@pytest.mark.parametrize(
    ("live", "reopened"),
    [
        pytest.param(ingress(rule([block("10.0.0.0/8")], tcp(5432))), "10.1.0.0/16", id="removed"),
        pytest.param(
            ingress(rule([block("10.0.0.0/8", "10.1.0.0/17")], tcp(5432))),
            "10.1.128.0/17",
            id="narrowed",
        ),
    ],
)
def test_ipblock_except_removed(live: Spec, reopened: str) -> None:
    d = drift(GIT_EXCEPT, live)
    f = check(
        one(d, "ipblock-except-removed"),
        Severity.HIGH,
        Direction.EXPOSURE,
        "ingress",
        reopened,
        "TCP 5432",
    )
    assert f.evidence["reopened"] == [reopened]
    assert f.evidence.keys() >= FLOW_EVIDENCE


def test_public_except_removed_from_the_world() -> None:
    git = egress(to([block("0.0.0.0/0", "8.0.0.0/8")], tcp(443)))
    d = drift(git, egress(to([block("0.0.0.0/0")], tcp(443))))
    check(one(d, "ipblock-except-removed"), Severity.HIGH, Direction.EXPOSURE, "8.0.0.0/8")
    check(one(d, "egress-to-world"), Severity.HIGH, Direction.EXPOSURE, "TCP 443")


@pytest.mark.parametrize(
    "live",
    [
        pytest.param(ingress(rule([block("10.0.0.0/8", "10.0.0.0/15")], tcp(5432))), id="widened"),
        pytest.param(
            ingress(rule([block("10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16")], tcp(5432))),
            id="added",
        ),
        pytest.param(
            ingress(rule([block(c) for c in REWRITTEN_10_8], tcp(5432))),
            id="rewritten-without-except",
        ),
    ],
)
def test_except_not_removed(live: Spec) -> None:
    d = drift(GIT_EXCEPT, live)
    assert "ipblock-except-removed" not in rules_of(d)
    assert not exposures(d)


# --- target-broadened -------------------------------------------------------------------


def test_target_selector_key_dropped_is_broadened() -> None:
    git = ingress(rule([API], tcp(5432)), selector={"matchLabels": {"app": "db", "tier": "x"}})
    d = drift(git, ingress(rule([API], tcp(5432))))
    f = check(
        one(d, "target-broadened"),
        Severity.MEDIUM,
        Direction.EXPOSURE,
        "pods app=db in shop",
        "app=db,tier=x",
    )
    assert f.evidence == {"desired": "pods app=db,tier=x in shop", "live": TARGET}


def test_target_narrowed_blocks_traffic_and_is_not_broadened() -> None:
    live = ingress(rule([API], tcp(5432)), selector={"matchLabels": {"app": "db", "tier": "x"}})
    d = drift(GIT_API_5432, live)
    assert "target-broadened" not in rules_of(d)
    assert not exposures(d)
    check(one(d, "traffic-blocked"), Severity.MEDIUM, Direction.ISOLATION, TARGET, "TCP 5432")


# --- default-deny-removed ---------------------------------------------------------------

DENY_ALL = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_default_deny_missing_fires_per_direction() -> None:
    d = drift(DENY_ALL, None)
    hits = found(d, "default-deny-removed")
    assert [h.evidence["direction"] for h in hits] == ["ingress", "egress"]
    for h, direction in zip(hits, ("ingress", "egress"), strict=True):
        check(h, Severity.CRITICAL, Direction.EXPOSURE, direction, "every pod in shop", "deleted")
        assert h.evidence["selected_pods"] == "every pod in shop"
    assert d.severity is Severity.CRITICAL
    assert "policy-missing" in rules_of(d)


def test_default_deny_losing_egress_from_policy_types() -> None:
    d = drift(DENY_ALL, {"podSelector": {}, "policyTypes": ["Ingress"]})
    f = check(
        one(d, "default-deny-removed"), Severity.CRITICAL, Direction.EXPOSURE, "egress", "Egress"
    )
    assert f.evidence["direction"] == "egress"
    assert "isolation-removed" not in rules_of(d)


def test_default_deny_now_allowing_something() -> None:
    d = drift(DENY_ALL, {**DENY_ALL, "ingress": [{"from": [API]}]})
    f = check(
        one(d, "default-deny-removed"),
        Severity.CRITICAL,
        Direction.EXPOSURE,
        "ingress",
        "now allows",
    )
    assert f.evidence["direction"] == "ingress"


def test_default_deny_narrowed_to_fewer_pods() -> None:
    d = drift(DENY_ALL, {**DENY_ALL, "podSelector": DB})
    assert len(found(d, "default-deny-removed")) == 2
    check(found(d, "default-deny-removed")[0], Severity.CRITICAL, Direction.EXPOSURE, TARGET)


@pytest.mark.parametrize(
    ("desired", "live"),
    [
        pytest.param(
            {"podSelector": {}, "policyTypes": ["Ingress"]}, DENY_ALL, id="egress-deny-added"
        ),
        pytest.param(
            ingress(rule([API]), types=["Ingress", "Egress"]),
            ingress(rule([API], tcp(80)), types=["Ingress", "Egress"]),
            id="not-deny-all-for-ingress",
        ),
    ],
)
def test_default_deny_not_removed(desired: Spec, live: Spec) -> None:
    d = drift(desired, live)
    assert "default-deny-removed" not in rules_of(d)
    assert not exposures(d)


def test_default_deny_in_a_new_unmanaged_policy_only_blocks() -> None:
    d = drift(None, DENY_ALL)
    assert "default-deny-removed" not in rules_of(d)
    assert not exposures(d)
    assert [f.evidence["direction"] for f in found(d, "traffic-blocked")] == ["ingress", "egress"]


# --- isolation-removed ------------------------------------------------------------------


def test_isolation_removed_when_policy_types_lose_ingress() -> None:
    git = {
        **ingress(rule([API], tcp(5432))),
        "policyTypes": ["Ingress", "Egress"],
        "egress": [to([API], tcp(443))],
    }
    live = {**git, "policyTypes": ["Egress"]}
    d = drift(git, live)
    f = check(
        one(d, "isolation-removed"),
        Severity.HIGH,
        Direction.EXPOSURE,
        "Ingress",
        TARGET,
        "ingress",
    )
    assert f.evidence == {"direction": "ingress", "selected_pods": TARGET}
    assert "default-deny-removed" not in rules_of(d)
    assert "traffic-blocked" not in rules_of(d)
    check(one(d, "ignored-rules"), Severity.LOW, Direction.HYGIENE, "ingress", "Ingress")


def test_deny_all_losing_a_direction_is_default_deny_not_isolation() -> None:
    d = drift(DENY_ALL, {"podSelector": {}, "policyTypes": ["Egress"]})
    assert "isolation-removed" not in rules_of(d)
    assert one(d, "default-deny-removed").evidence["direction"] == "ingress"


# --- traffic-blocked --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "live", "facts"),
    [
        pytest.param(
            ingress(rule([API, WEB], tcp(5432))),
            GIT_API_5432,
            ("pods app=web in shop", "TCP 5432"),
            id="peer-removed",
        ),
        pytest.param(
            ingress(rule([API], tcp(5432)), rule([WEB], tcp(80))),
            GIT_API_5432,
            ("pods app=web in shop", "TCP 80"),
            id="rule-removed",
        ),
        pytest.param(
            ingress(rule([API], tcp(5432, 6432))),
            GIT_API_5432,
            ("pods app=api in shop", "TCP 6432"),
            id="port-removed",
        ),
        pytest.param(
            GIT_API_5432,
            ingress(rule([pods(app="api", tier="be")], tcp(5432))),
            ("pods app=api in shop", "TCP 5432"),
            id="peer-narrowed",
        ),
        pytest.param(
            GIT_API_5432, None, ("pods app=api in shop", "TCP 5432"), id="allow-policy-missing"
        ),
        pytest.param(
            egress(to([block("203.0.113.0/24")], tcp(443))),
            egress(to([block("203.0.113.0/25")], tcp(443))),
            ("203.0.113.128/25", "TCP 443"),
            id="cidr-narrowed",
        ),
    ],
)
def test_traffic_blocked(desired: Spec, live: Spec | None, facts: tuple[str, ...]) -> None:
    d = drift(desired, live)
    f = check(
        one(d, "traffic-blocked"),
        Severity.MEDIUM,
        Direction.ISOLATION,
        "no longer allowed",
        *facts,
    )
    assert f.evidence.keys() >= FLOW_EVIDENCE
    assert not exposures(d)


def test_traffic_blocked_when_a_direction_becomes_deny_all() -> None:
    d = drift(GIT_API_5432, {**GIT_API_5432, "policyTypes": ["Ingress", "Egress"]})
    f = check(one(d, "traffic-blocked"), Severity.MEDIUM, Direction.ISOLATION, "all egress")
    assert f.evidence == {"direction": "egress", "selected_pods": TARGET}
    assert not exposures(d)


def test_missing_allow_policy_blocks_traffic_only() -> None:
    d = drift(GIT_API_5432, None)
    assert d.status is Status.MISSING
    assert rules_of(d) == {"policy-missing", "traffic-blocked"}
    assert d.severity is Severity.HIGH


# --- dns-egress-blocked -----------------------------------------------------------------

TO_API = to([API], tcp(8080))
TO_DNS = to([KUBE_DNS], [*udp(53), *tcp(53)])


@pytest.mark.parametrize(
    ("live", "fact"),
    [
        pytest.param(egress(TO_API), "TCP 53; UDP 53", id="dns-rule-removed"),
        pytest.param(egress(TO_API, to([KUBE_DNS], udp(53))), "TCP 53", id="tcp-dropped"),
    ],
)
def test_dns_egress_blocked(live: Spec, fact: str) -> None:
    d = drift(egress(TO_API, TO_DNS), live)
    f = check(
        one(d, "dns-egress-blocked"),
        Severity.HIGH,
        Direction.ISOLATION,
        TARGET,
        "k8s-app=kube-dns",
        "kube-system",
        fact,
        "DNS",
    )
    assert f.evidence.keys() >= FLOW_EVIDENCE
    assert not exposures(d)
    assert d.severity is Severity.HIGH


def test_missing_allow_dns_policy_blocks_dns() -> None:
    d = drift(egress(TO_DNS, selector={}), None)
    check(one(d, "dns-egress-blocked"), Severity.HIGH, Direction.ISOLATION, "every pod in shop")


@pytest.mark.parametrize(
    "live",
    [
        pytest.param(
            egress(TO_API, to([by_name("kube-system")])),
            id="still-allowed-more-broadly",
        ),
        pytest.param(
            {**egress(TO_API, TO_DNS), "policyTypes": ["Ingress"]}, id="no-longer-egress-isolated"
        ),
        pytest.param(egress(TO_DNS, to([API], tcp(8081))), id="other-port-removed"),
    ],
)
def test_dns_not_blocked(live: Spec) -> None:
    assert "dns-egress-blocked" not in rules_of(drift(egress(TO_API, TO_DNS), live))


# --- ignored-rules ----------------------------------------------------------------------


def test_ignored_egress_rules() -> None:
    live = {**ingress(rule([API], tcp(5432)), types=["Ingress"]), "egress": [TO_API, TO_DNS]}
    d = drift(ingress(rule([API], tcp(5432)), types=["Ingress"]), live)
    f = check(
        one(d, "ignored-rules"), Severity.LOW, Direction.HYGIENE, "2 egress rule(s)", "Egress"
    )
    assert f.evidence == {"direction": "egress", "rules": 2}
    # The ignored rules change nothing: no spec-modified, no exposure.
    assert rules_of(d) == {"ignored-rules", "cosmetic"}


def test_ignored_rules_already_ignored_in_git_are_only_cosmetic() -> None:
    git = {**ingress(rule([API], tcp(5432)), types=["Ingress"]), "egress": [TO_API, TO_DNS]}
    d = drift(git, {**git, "egress": [TO_DNS, TO_API]})
    assert [f.rule for f in d.findings] == ["cosmetic"]
    more = drift(git, {**git, "egress": [TO_DNS, TO_API, to([WEB])]})
    f = one(more, "ignored-rules")
    assert f.evidence == {"direction": "egress", "rules": 3}


def test_rules_in_policy_types_are_not_ignored() -> None:
    live = {**GIT_API_5432, "policyTypes": ["Ingress", "Egress"], "egress": [TO_API]}
    assert "ignored-rules" not in rules_of(drift(GIT_API_5432, live))


# --- cosmetic ---------------------------------------------------------------------------

A, B = pods(app="a"), pods(app="b")
IN_ONE = {"podSelector": in_("app", "api")}


@pytest.mark.parametrize(
    ("desired", "live"),
    [
        pytest.param(
            ingress(rule([block("10.0.0.0/8")], tcp(5432))),
            ingress(rule([block("10.0.0.0/9"), block("10.128.0.0/9")], tcp(5432))),
            id="cidr-split",
        ),
        pytest.param(
            ingress(rule([A, B], tcp(80, 443)), rule([block("10.0.0.0/8")])),
            ingress(rule([block("10.0.0.0/8")]), rule([B, A], tcp(443, 80))),
            id="reordered-rules-peers-ports",
        ),
        pytest.param(
            GIT_API_5432,
            ingress(rule([API], tcp(5432)), rule([API], tcp(5432))),
            id="duplicated-rule",
        ),
        pytest.param(
            ingress(rule([API], tcp(80, 81, 82))),
            ingress(rule([API], [{"port": 80, "endPort": 82}])),
            id="port-list-vs-range",
        ),
        pytest.param(GIT_API_5432, ingress(rule([IN_ONE], tcp(5432))), id="matchLabels-vs-In"),
        pytest.param(
            GIT_API_5432,
            ingress(rule([{**by_name(NS), **API}], tcp(5432))),
            id="own-namespace-by-name",
        ),
        pytest.param(
            GIT_API_5432,
            ingress(rule([API], tcp(5432)), selector=in_("app", "db")),
            id="target-matchLabels-vs-In",
        ),
        pytest.param(
            ingress(rule([A, B], tcp(80))),
            ingress(rule([{"podSelector": in_("app", "b", "a")}], tcp(80))),
            id="two-peers-vs-In-two-values",
        ),
        pytest.param(
            ingress(rule([ns_selector(team="x")], tcp(80))),
            ingress(rule([{**ns_selector(team="x"), "podSelector": {}}], tcp(80))),
            id="empty-pod-selector-under-namespace",
        ),
        pytest.param(
            GIT_API_5432,
            ingress(rule([API], [{"port": 5432, "protocol": "TCP"}, *tcp(5432)])),
            id="explicit-default-protocol-duplicated",
        ),
    ],
)
def test_only_cosmetic(desired: Spec, live: Spec) -> None:
    d = drift(desired, live)
    assert d.status is Status.MODIFIED
    assert [f.rule for f in d.findings] == ["cosmetic"]
    check(d.findings[0], Severity.INFO, Direction.HYGIENE, "same traffic")
    assert d.severity is Severity.INFO


def test_cosmetic_with_label_change_adds_metadata_modified_only() -> None:
    d = drift(
        ingress(rule([block("10.0.0.0/8")], tcp(5432))),
        ingress(rule([block("10.0.0.0/9"), block("10.128.0.0/9")], tcp(5432))),
        desired_labels={"team": "a"},
        live_labels={"team": "b"},
    )
    assert sorted(f.rule for f in d.findings) == ["cosmetic", "metadata-modified"]
    assert "spec-modified" not in rules_of(d)


def test_real_change_is_not_cosmetic() -> None:
    d = drift(GIT_API_5432, ingress(rule([API], tcp(5433))))
    assert "cosmetic" not in rules_of(d)
    check(one(d, "spec-modified"), Severity.MEDIUM, Direction.HYGIENE, "ingress")


def test_label_only_change_is_not_cosmetic() -> None:
    d = drift(GIT_API_5432, GIT_API_5432, live_labels={"x": "y"})
    assert rules_of(d) == {"metadata-modified"}


# --- status rules and unmanaged policies ------------------------------------------------


def test_unmanaged_allow_all_is_critical() -> None:
    d = drift(None, {"podSelector": {}, "ingress": [{}]})
    assert d.status is Status.UNMANAGED
    check(one(d, "policy-unmanaged"), Severity.MEDIUM, Direction.HYGIENE, "shop/web")
    check(
        one(d, "ingress-from-world"),
        Severity.CRITICAL,
        Direction.EXPOSURE,
        "every pod in shop",
        "every address",
        "all ports",
    )
    assert "ingress-from-all-namespaces" in rules_of(d)
    assert d.severity is Severity.CRITICAL
    # There is nothing in Git to compare it with: nothing "widened" or "broadened".
    assert not {"ports-widened", "peer-selector-broadened", "target-broadened"} & rules_of(d)


def test_unmanaged_allow_all_egress_reaches_world_and_metadata() -> None:
    d = drift(None, {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]})
    assert {"policy-unmanaged", "egress-to-world", "egress-to-metadata-api"} <= rules_of(d)
    assert d.severity is Severity.CRITICAL


def test_unmanaged_narrow_allow_is_only_unmanaged_and_allowed() -> None:
    d = drift(None, GIT_API_5432)
    assert rules_of(d) == {"policy-unmanaged", "traffic-allowed"}
    assert d.severity is Severity.MEDIUM


def test_missing_policy() -> None:
    d = drift(GIT_API_5432, None)
    check(one(d, "policy-missing"), Severity.HIGH, Direction.HYGIENE, "shop/web", "Git")


def test_spec_and_metadata_modified() -> None:
    d = drift(GIT_API_5432, ingress(rule([API], tcp(5433))), live_labels={"a": "b"})
    check(one(d, "spec-modified"), Severity.MEDIUM, Direction.HYGIENE, "ingress")
    check(one(d, "metadata-modified"), Severity.INFO, Direction.HYGIENE, "labels")


def test_in_sync_has_no_findings() -> None:
    d = drift(GIT_API_5432, GIT_API_5432)
    assert d.status is Status.IN_SYNC
    assert d.findings == ()
    assert d.severity is None


# --- traffic-allowed, capping, evidence, severity ---------------------------------------


def test_traffic_allowed_one_finding_per_new_flow() -> None:
    d = drift(GIT_API_5432, ingress(rule([API, A, B], tcp(5432))))
    hits = found(d, "traffic-allowed")
    assert sorted(h.evidence["peer"]["pods"] for h in hits) == ["app=a", "app=b"]
    for h in hits:
        check(h, Severity.LOW, Direction.EXPOSURE, TARGET, "TCP 5432", "is now allowed")


def test_flow_findings_are_capped_with_a_summary_line() -> None:
    many = [pods(app=f"p{i:02}") for i in range(13)]
    d = drift(GIT_API_5432, ingress(rule([API, *many], tcp(5432))))
    hits = found(d, "traffic-allowed")
    assert len(hits) == 11
    assert hits[-1].message == "... and 3 more"
    assert hits[-1].evidence == {"omitted": 3}


@pytest.mark.parametrize(
    ("desired", "live", "rule_id"),
    [
        (
            GIT_API_5432,
            ingress(rule([API, block("203.0.113.0/24")], tcp(5432))),
            "ingress-from-public-cidr",
        ),
        (egress(to([API])), egress(to([API, block("169.254.0.0/16")])), "egress-to-metadata-api"),
        (
            GIT_API_5432,
            ingress(rule([API, {"namespaceSelector": {}}], tcp(5432))),
            "ingress-from-all-namespaces",
        ),
        (
            ingress(rule([pods(app="api", tier="x")], tcp(5432))),
            GIT_API_5432,
            "peer-selector-broadened",
        ),
        (GIT_API_8080, ingress(rule([API], tcp(8080, 8081))), "ports-widened"),
        (GIT_EXCEPT, ingress(rule([block("10.0.0.0/8")], tcp(5432))), "ipblock-except-removed"),
        (GIT_API_5432, ingress(rule([API, WEB], tcp(5432))), "traffic-allowed"),
        (ingress(rule([API, WEB], tcp(5432))), GIT_API_5432, "traffic-blocked"),
        (egress(TO_API, TO_DNS), egress(TO_API), "dns-egress-blocked"),
        (GIT_API_5432, ingress(rule([block("0.0.0.0/0")], tcp(5432))), "ingress-from-world"),
        (egress(to([API])), egress(to([block("::/0")])), "egress-to-world"),
    ],
)
def test_flow_findings_carry_structured_evidence(desired: Spec, live: Spec, rule_id: str) -> None:
    f = one(drift(desired, live), rule_id)
    assert f.evidence.keys() >= FLOW_EVIDENCE
    assert f.evidence["direction"] in ("ingress", "egress")
    assert f.evidence["selected_pods"] == TARGET
    assert isinstance(f.evidence["peer"], dict)
    assert set(f.evidence["peer"]) in ({"cidrs"}, {"namespaces", "pods"})
    assert isinstance(f.evidence["ports"], list)
    assert f.evidence["ports"]
    assert f.to_json()["evidence"] == dict(f.evidence)


def test_drift_severity_is_the_highest_finding() -> None:
    d = drift(
        ingress(rule([API, WEB], tcp(5432))),
        ingress(rule([API, block("203.0.113.0/24")], tcp(5432, 5433))),
        live_labels={"x": "y"},
    )
    levels = {f.severity for f in d.findings}
    assert {Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH} <= levels
    assert Severity.CRITICAL not in levels
    assert d.severity is Severity.HIGH
    assert d.severity == max(f.severity for f in d.findings)


def test_exposure_and_isolation_together() -> None:
    d = drift(ingress(rule([WEB], tcp(80))), ingress(rule([API], tcp(80))))
    assert {f.rule for f in exposures(d)} == {"traffic-allowed"}
    assert one(d, "traffic-blocked").direction is Direction.ISOLATION


def test_egress_flow_messages_say_from_the_selected_pods() -> None:
    d = drift(egress(to([API])), egress(to([API, block("203.0.113.0/24")])))
    assert one(d, "traffic-allowed").message.startswith(f"egress from {TARGET} to 203.0.113.0/24")
