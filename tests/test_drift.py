"""Structural drift: status per key, the diff, ignore rules, severity and ordering."""

from __future__ import annotations

from dataclasses import replace

import pytest

from driftwatch.drift import IgnoreRules, PolicyMatcher, compare, compare_all, status_of
from driftwatch.policy import PolicyKey, Provenance, parse_selector_string
from driftwatch.rules import RuleEngine, RuleOptions, Severity, Status
from driftwatch.rules.status import STATUS_RULES
from tests.builders import allow_from, np

KEY = PolicyKey("default", "shop", "web")
# The structural layer with the status rules only; the risk rules have tests of their own.
ENGINE = RuleEngine(catalogue=STATUS_RULES)


def test_equal_policies_are_in_sync_with_no_findings_and_no_diff() -> None:
    drift = compare(KEY, np(spec=allow_from("api")), np(spec=allow_from("api")), ENGINE)
    assert drift.status is Status.IN_SYNC
    assert drift.findings == ()
    assert drift.diff == ""
    assert drift.severity is None


def test_spec_change_is_modified_with_a_desired_first_unified_diff() -> None:
    drift = compare(KEY, np(spec=allow_from("api")), np(spec=allow_from("api", 9090)), ENGINE)
    assert drift.status is Status.MODIFIED
    lines = drift.diff.splitlines()
    assert lines[0] == "--- desired"
    assert lines[1] == "+++ live"
    assert "-      port: 8080" in lines
    assert "+      port: 9090" in lines
    spec = [f for f in drift.findings if f.rule == "spec-modified"]
    assert [f.evidence for f in spec] == [{"fields": ["ingress"]}]
    assert drift.severity is Severity.MEDIUM


def test_label_only_change_is_modified_with_metadata_finding_only() -> None:
    drift = compare(KEY, np(labels={"team": "a"}), np(labels={"team": "b", "x": "y"}), ENGINE)
    assert drift.status is Status.MODIFIED
    assert [f.rule for f in drift.findings] == ["metadata-modified"]
    assert drift.findings[0].evidence == {
        "labels": {"added": ["x"], "removed": [], "changed": ["team"]}
    }
    assert drift.severity is Severity.INFO


def test_spec_and_label_change_give_both_findings_and_the_highest_severity() -> None:
    drift = compare(
        KEY, np(spec=allow_from("api")), np(spec=allow_from("db"), labels={"a": "b"}), ENGINE
    )
    assert {"metadata-modified", "spec-modified"} <= {f.rule for f in drift.findings}
    assert drift.severity is Severity.MEDIUM


def test_missing_and_unmanaged() -> None:
    missing = compare(KEY, np(), None, ENGINE)
    assert missing.status is Status.MISSING
    assert missing.findings[0].rule == "policy-missing"
    assert missing.severity is Severity.HIGH
    assert all(line.startswith(("---", "+++", "@@", "-")) for line in missing.diff.splitlines())
    unmanaged = compare(KEY, None, np(), ENGINE)
    assert unmanaged.status is Status.UNMANAGED
    assert unmanaged.findings[0].rule == "policy-unmanaged"
    assert unmanaged.severity is Severity.MEDIUM
    assert "+kind: NetworkPolicy" in unmanaged.diff.splitlines()


def test_status_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="both sides"):
        status_of(None, None)


def test_provenance_and_origin_do_not_make_a_drift() -> None:
    desired = replace(np(), source=Provenance("a.yaml", 3, "abc"))
    live = np()
    assert compare(KEY, desired, live, ENGINE).status is Status.IN_SYNC


def test_compare_all_counts_and_sorts_most_severe_first() -> None:
    desired = {
        ("shop", "a"): np("a"),
        ("shop", "b"): np("b", spec=allow_from("x")),
        ("pay", "c"): np("c", "pay"),
        ("pay", "d"): np("d", "pay", labels={"k": "v"}),
    }
    live = {
        ("shop", "a"): np("a"),
        ("shop", "b"): np("b", spec=allow_from("y")),
        ("pay", "d"): np("d", "pay"),
        ("ops", "e"): np("e", "ops"),
    }
    report = compare_all(desired, live, ENGINE, cluster="prod")
    assert [(d.key.namespace, d.key.name, str(d.severity)) for d in report.drifts] == [
        ("pay", "c", "high"),
        ("ops", "e", "medium"),
        ("shop", "b", "medium"),
        ("pay", "d", "info"),
    ]
    assert report.counts[Status.IN_SYNC] == 1
    assert report.counts[Status.MODIFIED] == 2
    assert report.counts[Status.MISSING] == 1
    assert report.counts[Status.UNMANAGED] == 1
    assert report.max_severity is Severity.HIGH
    assert {d.key.cluster for d in report.drifts} == {"prod"}


def test_ignore_namespaces_policies_labels_and_annotation() -> None:
    desired = {("kube-system", "x"): np("x", "kube-system")}
    live = {
        ("shop", "mesh-1"): np("mesh-1"),
        ("shop", "owned"): np("owned", labels={"owner": "cilium"}),
        ("shop", "opt-out"): np("opt-out", annotations={"driftwatch.io/ignore": "true"}),
        ("shop", "rogue"): np("rogue"),
    }
    ignore = IgnoreRules(
        namespaces=("kube-*",),
        policies=(
            PolicyMatcher(name="mesh-*"),
            PolicyMatcher(selector=parse_selector_string("owner in (cilium,istio)")),
        ),
    )
    report = compare_all(desired, live, ENGINE, ignore=ignore)
    assert [d.key.name for d in report.drifts] == ["rogue"]
    assert report.ignored == 4


def test_policy_matcher_namespace_glob_must_also_match() -> None:
    m = PolicyMatcher(name="allow-*", namespace="prod-*")
    assert m.matches(PolicyKey("c", "prod-eu", "allow-dns"), None)
    assert not m.matches(PolicyKey("c", "dev", "allow-dns"), None)
    assert not m.matches(PolicyKey("c", "prod-eu", "deny"), None)


def test_disabled_rule_and_severity_override() -> None:
    engine = RuleEngine(
        RuleOptions(
            disabled=frozenset({"metadata-modified"}), severity={"spec-modified": Severity.HIGH}
        ),
        catalogue=STATUS_RULES,
    )
    drift = compare(
        KEY, np(spec=allow_from("a")), np(spec=allow_from("b"), labels={"a": "b"}), engine
    )
    assert [(f.rule, f.severity) for f in drift.findings] == [("spec-modified", Severity.HIGH)]
    assert drift.severity is Severity.HIGH


def test_engine_rejects_unknown_rule_ids() -> None:
    with pytest.raises(ValueError, match="nope"):
        RuleEngine(RuleOptions(disabled=frozenset({"nope"})))


def test_severity_order_and_parse() -> None:
    assert Severity.INFO < Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL
    assert Severity.parse("High") is Severity.HIGH
    assert str(Severity.CRITICAL) == "critical"
    assert Severity.HIGH.raised() is Severity.CRITICAL
    assert Severity.CRITICAL.raised() is Severity.CRITICAL
    assert Severity.INFO.raised(-1) is Severity.INFO
    with pytest.raises(ValueError, match="use one of info, low, medium, high, critical"):
        Severity.parse("urgent")
