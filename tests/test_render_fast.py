"""The fast report path gives exactly the text of the plain one.

``unified_diff`` sets the common head and tail of two renderings aside and diffs only the
middle (when that provably changes nothing), and ``to_yaml`` writes lines straight from the
model with rendered rules, peers and ports reused. Both are checked here against reference
implementations kept in this file: the recursive emitter over ``to_manifest`` they replace,
and ``difflib.unified_diff`` over its lines.
"""

from __future__ import annotations

import copy
import difflib
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.cli.output import render_json, report_json
from driftwatch.drift import compare_all, unified_diff
from driftwatch.drift.diff import diff_lines
from driftwatch.policy import NetworkPolicy, PolicyRule, parse_policy, to_manifest, to_yaml
from driftwatch.policy.render import _scalar, clear_cache, yaml_lines
from driftwatch.rules import RuleEngine
from tests.builders import allow_from, np, np_obj
from tests.strategies import network_policies, rules, small_world_policies

SETTINGS = settings(max_examples=150, deadline=None)
LINE_SETTINGS = settings(max_examples=400, deadline=None)

# ---------------------------------------------------------------------------------------------
# Reference implementations: the emitter and the diff as they were before.


def _ref_emit_map(data: dict[str, Any], pad: str, out: list[str]) -> None:
    for key, value in data.items():
        head = f"{pad}{_scalar(key)}:"
        if isinstance(value, dict):
            if value:
                out.append(head)
                _ref_emit_map(value, pad + "  ", out)
            else:
                out.append(head + " {}")
        elif isinstance(value, list):
            if value:
                out.append(head)
                _ref_emit_list(value, pad, out)
            else:
                out.append(head + " []")
        elif isinstance(value, str):
            out.append(f"{head} {_scalar(value)}")
        else:
            out.append(f"{head} {value}")


def _ref_emit_list(items: list[Any], pad: str, out: list[str]) -> None:
    for item in items:
        if isinstance(item, dict) and item:
            first = len(out)
            _ref_emit_map(item, pad + "  ", out)
            out[first] = f"{pad}- {out[first][len(pad) + 2 :]}"
        elif isinstance(item, dict):
            out.append(f"{pad}- {{}}")
        elif isinstance(item, str):
            out.append(f"{pad}- {_scalar(item)}")
        else:
            out.append(f"{pad}- {item}")


def ref_to_yaml(policy: NetworkPolicy) -> str:
    out: list[str] = []
    _ref_emit_map(to_manifest(policy), "", out)
    return "\n".join(out) + "\n"


def ref_diff_lines(a: list[str], b: list[str]) -> str:
    return "".join(difflib.unified_diff(a, b, "desired", "live", n=3))


def ref_unified_diff(desired: NetworkPolicy | None, live: NetworkPolicy | None) -> str:
    a = ref_to_yaml(desired).splitlines(keepends=True) if desired is not None else []
    b = ref_to_yaml(live).splitlines(keepends=True) if live is not None else []
    return ref_diff_lines(a, b)


# ---------------------------------------------------------------------------------------------
# Generated pairs


@st.composite
def edited(draw: st.DrawFn, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with a few of the changes drift is made of (rules added, dropped, replaced,
    labels and selectors changed)."""
    out = copy.deepcopy(obj)
    meta, spec = out["metadata"], out["spec"]
    for change in draw(st.lists(st.integers(0, 6), min_size=1, max_size=3)):
        field = draw(st.sampled_from(["ingress", "egress"]))
        peers_field = "from" if field == "ingress" else "to"
        current = spec.get(field) or []
        if change == 0:
            spec[field] = [*current, draw(rules(peers_field))]
        elif change == 1 and current:
            del current[draw(st.integers(0, len(current) - 1))]
            spec[field] = current
        elif change == 2 and current:
            current[draw(st.integers(0, len(current) - 1))] = draw(rules(peers_field))
            spec[field] = current
        elif change == 3:
            meta["labels"] = {**(meta.get("labels") or {}), "owner": draw(st.sampled_from("ab"))}
        elif change == 4:
            spec["podSelector"] = {"matchLabels": {"app": draw(st.sampled_from(["x", "y"]))}}
        elif change == 5:
            spec["policyTypes"] = draw(st.sampled_from([["Ingress"], ["Ingress", "Egress"]]))
        elif current:
            spec[field] = [*current, *current]  # repeated blocks: long runs elsewhere
    return out


@st.composite
def policy_pairs(draw: st.DrawFn) -> tuple[NetworkPolicy, NetworkPolicy]:
    obj = draw(network_policies(namespaced=True))
    return parse_policy(obj), parse_policy(draw(edited(obj)))


SAME_SHAPE = ["a\n", "b\n", "c\n", "  - x\n", "    y: 1\n"]
"""Few distinct lines: runs repeat, and the common head and tail compete with other runs."""


@st.composite
def line_edits(draw: st.DrawFn, lines: st.SearchStrategy[str], **size: int) -> list[list[str]]:
    """Two line lists, the second the first with a few lines inserted, deleted or replaced."""
    a = draw(st.lists(lines, **size))
    b = list(a)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(b)))
        cut = draw(st.integers(0, 3))
        b[at : at + cut] = draw(st.lists(lines, max_size=3))
    return draw(st.permutations([a, b]))


# ---------------------------------------------------------------------------------------------
# The emitter


@SETTINGS
@given(network_policies())
def test_to_yaml_is_the_reference_emitter(obj: dict[str, Any]) -> None:
    policy = parse_policy(obj)
    expected = ref_to_yaml(policy)
    assert to_yaml(policy) == expected
    assert yaml_lines(policy) == expected.splitlines(keepends=True)
    assert to_yaml(policy) == expected  # again, from the rendered rules


@SETTINGS
@given(small_world_policies(), small_world_policies())
def test_rules_peers_and_ports_reused_across_policies_render_the_same(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    for policy in (parse_policy(first), parse_policy(second)):
        assert to_yaml(policy) == ref_to_yaml(policy)


def test_rules_built_in_code_have_no_text_and_render_the_same() -> None:
    policy = np(spec=allow_from("api"))
    built = replace(
        policy.spec, ingress=tuple(PolicyRule(r.peers, r.ports) for r in policy.spec.ingress)
    )
    in_code = replace(policy, spec=built)
    assert all(r.text is None for r in in_code.spec.ingress)
    assert to_yaml(in_code) == ref_to_yaml(in_code) == to_yaml(policy)


def test_a_cleared_cache_renders_the_same() -> None:
    policy = np(spec=allow_from("api"), labels={"team": "a"}, annotations={"note": "x: y"})
    before = to_yaml(policy)
    clear_cache()
    assert to_yaml(policy) == before == ref_to_yaml(policy)


def test_an_empty_policy_type_list_and_empty_rules() -> None:
    policy = np(spec={"podSelector": {}, "ingress": [{}], "egress": [{}]})
    policy = replace(policy, spec=replace(policy.spec, policy_types=()))
    assert to_yaml(policy) == ref_to_yaml(policy)
    assert "  policyTypes: []\n" in to_yaml(policy)


# ---------------------------------------------------------------------------------------------
# The diff of two policies


@SETTINGS
@given(policy_pairs())
def test_diff_of_a_policy_and_its_edit_is_difflibs(
    pair: tuple[NetworkPolicy, NetworkPolicy],
) -> None:
    desired, live = pair
    assert unified_diff(desired, live) == ref_unified_diff(desired, live)
    assert unified_diff(live, desired) == ref_unified_diff(live, desired)


@SETTINGS
@given(network_policies(), network_policies())
def test_diff_of_unrelated_policies_is_difflibs(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    desired, live = parse_policy(first), parse_policy(second)
    assert unified_diff(desired, live) == ref_unified_diff(desired, live)


@SETTINGS
@given(small_world_policies(), small_world_policies())
def test_diff_of_overlapping_policies_is_difflibs(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    desired, live = parse_policy(first), parse_policy(second)
    assert unified_diff(desired, live) == ref_unified_diff(desired, live)


@SETTINGS
@given(network_policies())
def test_diff_against_an_absent_side_is_difflibs(obj: dict[str, Any]) -> None:
    policy = parse_policy(obj)
    assert unified_diff(policy, None) == ref_unified_diff(policy, None)
    assert unified_diff(None, policy) == ref_unified_diff(None, policy)
    assert unified_diff(policy, policy) == ""


def test_no_sides_and_equal_sides_have_no_diff() -> None:
    assert unified_diff(None, None) == ""
    assert unified_diff(np(spec=allow_from("api")), np(spec=allow_from("api"))) == ""


def _big_policy() -> NetworkPolicy:
    return parse_policy(
        np_obj(
            labels={"team": "a", "tier": "web"},
            spec={
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [allow_from(f"client-{i}", 8000 + i)["ingress"][0] for i in range(6)],
                "policyTypes": ["Ingress"],
            },
        )
    )


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_one_line_changed(where: str) -> None:
    lines = yaml_lines(_big_policy())
    at = {"start": 0, "middle": len(lines) // 2, "end": len(lines) - 1}[where]
    changed = list(lines)
    changed[at] = "  changed: here\n"
    assert diff_lines(lines, changed) == ref_diff_lines(lines, changed)
    assert diff_lines(changed, lines) == ref_diff_lines(changed, lines)
    assert "+  changed: here\n" in diff_lines(lines, changed)


def test_every_line_changed() -> None:
    lines = yaml_lines(_big_policy())
    changed = [line.replace(":", "=") for line in lines]
    assert diff_lines(lines, changed) == ref_diff_lines(lines, changed)


def test_one_side_empty() -> None:
    lines = yaml_lines(_big_policy())
    assert diff_lines(lines, []) == ref_diff_lines(lines, [])
    assert diff_lines([], lines) == ref_diff_lines([], lines)
    assert diff_lines([], []) == ""
    assert diff_lines(lines, tuple(lines)) == ""


def test_a_longer_run_elsewhere_wins_over_the_common_head() -> None:
    # difflib matches the longest run first: here a[3:7] with all of b, not the common head.
    a = ["A\n", "B\n", "C\n", "A\n", "B\n", "C\n", "D\n"]
    b = ["A\n", "B\n", "C\n", "D\n"]
    assert diff_lines(a, b) == ref_diff_lines(a, b)
    assert diff_lines(a, b) == "--- desired\n+++ live\n@@ -1,6 +1,3 @@\n-A\n-B\n-C\n A\n B\n C\n"


# ---------------------------------------------------------------------------------------------
# The diff of line lists


@LINE_SETTINGS
@given(line_edits(st.sampled_from(SAME_SHAPE), max_size=30))
def test_diff_of_edited_lines_is_difflibs(pair: list[list[str]]) -> None:
    a, b = pair
    assert diff_lines(a, b) == ref_diff_lines(a, b)


@LINE_SETTINGS
@given(
    st.lists(st.sampled_from(SAME_SHAPE), max_size=20),
    st.lists(st.sampled_from(SAME_SHAPE), max_size=20),
)
def test_diff_of_any_lines_is_difflibs(a: list[str], b: list[str]) -> None:
    assert diff_lines(a, b) == ref_diff_lines(a, b)


@st.composite
def long_line_edits(draw: st.DrawFn) -> list[list[str]]:
    """Two lists of 190 to 250 lines, mostly distinct, maybe with a line frequent enough
    for difflib's autojunk, the second edited from the first."""
    a = [f"line {i}\n" for i in range(draw(st.integers(190, 250)))]
    every = draw(st.sampled_from([0, 0, 5, 40]))  # a line every ``every`` lines, if any
    if every:
        a[::every] = ["frequent\n"] * len(a[::every])
    b = list(a)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(b)))
        cut = draw(st.integers(0, 3))
        b[at : at + cut] = draw(st.lists(st.sampled_from(["new\n", "frequent\n"]), max_size=3))
    return draw(st.permutations([a, b]))


@settings(max_examples=80, deadline=None)
@given(long_line_edits())
def test_diff_of_long_lists_with_and_without_popular_lines_is_difflibs(
    pair: list[list[str]],
) -> None:
    # From 200 lines on, difflib ignores lines of b that are too frequent ("autojunk").
    a, b = pair
    assert diff_lines(a, b) == ref_diff_lines(a, b)


# ---------------------------------------------------------------------------------------------
# The JSON report


def test_render_json_is_the_plain_encoding_one_drift_per_line() -> None:
    desired = {
        ("shop", "web"): np("web", spec=allow_from("api")),
        ("shop", "db"): np("db", spec=allow_from("web", 5432)),
        ("shop", "gone"): np("gone"),
    }
    live = {
        ("shop", "web"): np("web", spec=allow_from("api", 9090)),
        ("shop", "db"): np("db", spec=allow_from("web", 5432), annotations={"note": "für dich"}),
        ("shop", "extra"): np("extra"),
    }
    report = compare_all(desired, live, RuleEngine())
    data = report_json(report)
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))
    drifts = ",\n  ".join(encoder.encode(d) for d in data["drifts"])
    expected = f'{{"summary": {encoder.encode(data["summary"])},\n "drifts": [\n  {drifts}\n ]}}\n'
    assert render_json(report) == expected
    assert json.loads(render_json(report)) == json.loads(json.dumps(data))
    assert [d["diff"] for d in data["drifts"]] == [
        ref_unified_diff(d.desired, d.live) for d in report.drifts
    ]
