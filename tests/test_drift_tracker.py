"""The drift tracker: one event per real transition, gating at startup, chunked evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as tally
from hypothesis import strategies as st

from driftwatch.drift import (
    IGNORE_ANNOTATION,
    Drift,
    DriftEvent,
    DriftTracker,
    EventKind,
    IgnoreRules,
    PolicyMatcher,
    ResolveReason,
    compare,
    compare_all,
)
from driftwatch.policy import (
    LiveOrigin,
    NetworkPolicy,
    PolicyKey,
    Provenance,
    parse_selector_string,
)
from driftwatch.rules import (
    Escalation,
    Finding,
    RuleContext,
    RuleEngine,
    RuleOptions,
    Severity,
    Status,
)
from tests.builders import allow_from, np

Name = tuple[str, str]
WEB: Name = ("shop", "web")
KEY = PolicyKey("default", *WEB)

EDIT = LiveOrigin("kubectl-edit", "Update", "2026-11-27T03:12:44Z", "101")
APPLY = LiveOrigin("kubectl-client-side-apply", "Update", "2026-11-27T04:00:00Z", "102")
SCRIPT = LiveOrigin("fix-script", "Update", "2026-11-27T05:00:00Z", "103")
COMMIT_1 = Provenance("policies/shop.yaml", 1, "c0ffee1")
COMMIT_2 = Provenance("policies/shop.yaml", 7, "c0ffee2")

WORLD_SPEC: dict[str, Any] = {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}


def _duplicated_rule(app: str) -> dict[str, Any]:
    spec = allow_from(app)
    spec["ingress"] = spec["ingress"] * 2  # written differently, allows the same traffic
    return spec


def _spelled_out(app: str) -> dict[str, Any]:
    """``allow_from(app)`` with the API defaults written out: ``==`` to it once parsed."""
    spec = allow_from(app)
    spec["policyTypes"] = ["Ingress"]
    spec["ingress"][0]["ports"][0]["protocol"] = "TCP"
    return spec


class CountingEngine(RuleEngine):
    """A rule engine that counts how often it is asked to evaluate a pair."""

    __slots__ = ("calls",)

    def __init__(self, options: RuleOptions | None = None) -> None:
        super().__init__(options)
        self.calls = 0

    def evaluate(self, ctx: RuleContext) -> tuple[Finding, ...]:
        self.calls += 1
        return super().evaluate(ctx)


def base(**kw: Any) -> NetworkPolicy:
    return np(spec=allow_from("api"), **kw)


def live(policy: NetworkPolicy, origin: LiveOrigin | None = EDIT) -> NetworkPolicy:
    return replace(policy, origin=origin)


def git(policy: NetworkPolicy, source: Provenance | None = COMMIT_1) -> NetworkPolicy:
    return replace(policy, source=source)


def started(
    desired: Mapping[Name, NetworkPolicy],
    live_state: Mapping[Name, NetworkPolicy],
    engine: RuleEngine | None = None,
    **kw: Any,
) -> tuple[DriftTracker, list[DriftEvent]]:
    """A tracker given both sides, and the events of its first full drain."""
    tracker = DriftTracker(engine or RuleEngine(), **kw)
    tracker.set_desired(desired)
    tracker.set_live(live_state)
    return tracker, tracker.drain()


def drifted(live_policy: NetworkPolicy) -> DriftTracker:
    """A tracker with one open ``modified`` drift of shop/web: Git has :func:`base`."""
    tracker, events = started({WEB: git(base())}, {WEB: live_policy})
    assert [e.kind for e in events] == [EventKind.OPENED]
    return tracker


def shown(drift: Drift | None) -> tuple[Any, ...] | None:
    """A drift as a consumer sees it (``Drift`` may cache its diff lazily, which ``==`` sees)."""
    if drift is None:
        return None
    d = drift
    return (d.key, d.status, d.desired, d.live, d.diff, d.findings, d.severity)


def seen(event: DriftEvent) -> tuple[Any, ...]:
    """An event as a consumer sees it."""
    e = event
    return (e.kind, e.key, shown(e.drift), shown(e.previous), e.reason, e.sequence, e.live)


def only(events: list[DriftEvent]) -> DriftEvent:
    assert len(events) == 1, events
    return events[0]


# ---------------------------------------------------------------------------------------------
# Startup and gating


def test_startup_opens_each_real_difference_once_and_says_nothing_about_the_rest() -> None:
    in_sync = {(f"ns{i}", "p"): np("p", f"ns{i}", spec=allow_from("api")) for i in range(20)}
    desired = {n: git(p) for n, p in in_sync.items()}
    live_state = {n: live(p) for n, p in in_sync.items()}
    desired[("shop", "changed")] = git(np("changed", spec=allow_from("api")))
    live_state[("shop", "changed")] = live(np("changed", spec=allow_from("api", 9090)))
    desired[("shop", "gone")] = git(np("gone"))
    live_state[("shop", "rogue")] = live(np("rogue"))
    engine = CountingEngine()
    tracker, events = started(desired, live_state, engine)

    assert {(e.kind, e.key.name, e.drift.status) for e in events} == {
        (EventKind.OPENED, "changed", Status.MODIFIED),
        (EventKind.OPENED, "gone", Status.MISSING),
        (EventKind.OPENED, "rogue", Status.UNMANAGED),
    }
    assert len(events) == 3
    assert engine.calls == 3  # the 20 in-sync keys never reach the rules
    assert {k.name for k in tracker.open} == {"changed", "gone", "rogue"}
    assert tracker.pending == 0
    assert tracker.drain() == []


@pytest.mark.parametrize("live_first", [True, False])
def test_nothing_is_evaluated_until_both_sides_are_set(live_first: bool) -> None:
    tracker = DriftTracker(RuleEngine())
    desired = {WEB: git(base()), ("shop", "gone"): git(np("gone"))}
    changed = live(np(spec=allow_from("api", 9090)))
    if live_first:
        assert tracker.set_live({WEB: changed}) == frozenset()
        assert tracker.put_live(live(np("rogue"))) == frozenset()
        assert tracker.delete_live("shop", "rogue") == frozenset()
    else:
        assert tracker.set_desired(desired) == frozenset()
    assert not tracker.ready
    assert tracker.pending == 0
    assert tracker.drain() == []
    assert tracker.open == {}

    marked = tracker.set_desired(desired) if live_first else tracker.set_live({WEB: changed})
    assert tracker.ready
    assert marked == {KEY, PolicyKey("default", "shop", "gone")}
    assert tracker.pending == 2
    events = tracker.drain()
    assert sorted((e.key.name, e.drift.status) for e in events) == [
        ("gone", Status.MISSING),
        ("web", Status.MODIFIED),
    ]


def test_an_in_sync_key_costs_one_equality_check_and_no_rules() -> None:
    calls = [0]

    class CountingPolicy(NetworkPolicy):
        def __eq__(self, other: object) -> bool:
            calls[0] += 1
            return NetworkPolicy.__eq__(self, other)

        __hash__ = NetworkPolicy.__hash__

    def counting(p: NetworkPolicy) -> NetworkPolicy:
        return CountingPolicy(**{f.name: getattr(p, f.name) for f in fields(p) if f.init})

    ignore_calls = [0]

    class CountingIgnore(IgnoreRules):
        def ignores(self, *args: Any) -> bool:
            ignore_calls[0] += 1
            return IgnoreRules.ignores(self, *args)

    names = [(f"ns{i}", "p") for i in range(50)]
    engine = CountingEngine()
    tracker = DriftTracker(engine, ignore=CountingIgnore())
    tracker.set_desired({n: counting(git(np("p", n[0]))) for n in names})
    tracker.set_live({n: counting(live(np("p", n[0]))) for n in names})
    assert tracker.pending == 50
    calls[0] = 0
    assert tracker.drain() == []
    assert (calls[0], engine.calls, ignore_calls[0]) == (50, 0, 0)

    # A new commit that leaves them alone (new provenance, equal policies): one == each.
    calls[0] = 0
    assert tracker.set_desired({n: counting(git(np("p", n[0]), COMMIT_2)) for n in names}) == set()
    assert (calls[0], tracker.pending) == (50, 0)


# ---------------------------------------------------------------------------------------------
# Opened


@pytest.mark.parametrize(
    ("desired", "live_policy", "status", "reason"),
    [
        (base(), np(spec=allow_from("api", 9090)), Status.MODIFIED, "differs from Git"),
        (base(), None, Status.MISSING, "in Git but not in the cluster"),
        (None, base(), Status.UNMANAGED, "in the cluster but not in Git"),
    ],
)
def test_opened_for_each_status(
    desired: NetworkPolicy | None, live_policy: NetworkPolicy | None, status: Status, reason: str
) -> None:
    # Start in sync, then move one side.
    tracker, events = started({WEB: git(base())}, {WEB: live(base())})
    assert events == []
    if desired is None:
        tracker.set_desired({})
    if live_policy is None:
        assert tracker.delete_live(*WEB) == {KEY}
    else:
        tracker.put_live(live(live_policy))
    event = only(tracker.drain())
    assert event.kind is EventKind.OPENED
    assert event.key == KEY
    assert event.previous is None
    assert reason in event.reason
    expected = compare(KEY, desired, live_policy, RuleEngine())
    assert (event.drift.status, event.drift.findings) == (status, expected.findings)
    assert event.drift.severity == expected.severity
    assert event.drift.diff == expected.diff
    assert tracker.drift_of(KEY) is event.drift
    assert dict(tracker.open) == {KEY: event.drift}


def test_opened_from_absent_on_both_sides_and_from_ignored() -> None:
    tracker, _ = started({}, {})
    tracker.put_live(live(np(spec=WORLD_SPEC)))
    event = only(tracker.drain())
    assert (event.kind, event.drift.status) == (EventKind.OPENED, Status.UNMANAGED)
    assert event.drift.severity is Severity.CRITICAL

    ignored = np(spec=allow_from("api", 9090), annotations={IGNORE_ANNOTATION: "true"})
    tracker, events = started({WEB: git(base())}, {WEB: live(ignored)})
    assert events == []
    tracker.put_live(live(np(spec=allow_from("api", 9090))))  # the annotation is removed
    assert only(tracker.drain()).kind is EventKind.OPENED


# ---------------------------------------------------------------------------------------------
# Updated, and what is not an update


def test_updated_when_severity_rises_and_falls() -> None:
    tracker = drifted(live(np(spec=allow_from("api", 9090))))
    first = tracker.drift_of(KEY)
    assert first is not None
    assert first.severity is Severity.MEDIUM
    tracker.put_live(live(np(spec=WORLD_SPEC)))
    rose = only(tracker.drain())
    assert rose.kind is EventKind.UPDATED
    assert rose.previous is first
    assert rose.drift.severity is Severity.CRITICAL
    assert rose.reason == "severity rose from medium to critical"
    tracker.put_live(live(np(spec=_duplicated_rule("api"))))
    fell = only(tracker.drain())
    assert fell.reason == "severity fell from critical to info"
    assert [f.rule for f in fell.drift.findings] == ["cosmetic"]
    assert fell.sequence == rose.sequence + 1


def test_updated_when_findings_change_at_the_same_severity() -> None:
    tracker = drifted(live(np(spec=allow_from("api", 9090))))
    tracker.put_live(live(np(spec=allow_from("api", 9091))))
    event = only(tracker.drain())
    assert event.kind is EventKind.UPDATED
    assert event.reason == "findings changed"
    assert event.previous is not None
    assert event.drift.severity == event.previous.severity
    assert event.drift.findings != event.previous.findings


def test_updated_when_the_status_changes() -> None:
    tracker = drifted(live(np(spec=allow_from("api", 9090))))
    tracker.delete_live(*WEB)
    event = only(tracker.drain())
    assert event.kind is EventKind.UPDATED
    assert event.reason == "status changed from modified to missing"
    assert event.drift.status is Status.MISSING
    assert event.live is None


def test_a_status_change_is_an_update_even_with_the_same_findings() -> None:
    silent = RuleEngine(catalogue=())  # every rule disabled: drifts without findings
    tracker, events = started({WEB: git(base())}, {WEB: live(np(labels={"a": "b"}))}, silent)
    assert only(events).drift.findings == ()
    tracker.delete_live(*WEB)
    event = only(tracker.drain())
    assert (event.kind, event.drift.status, event.drift.findings) == (
        EventKind.UPDATED,
        Status.MISSING,
        (),
    )
    assert event.reason == "status changed from modified to missing"


def test_a_diff_only_change_emits_nothing_but_refreshes_the_drift() -> None:
    tracker = drifted(live(base(labels={"team": "a"})))
    before = tracker.drift_of(KEY)
    tracker.put_live(live(base(labels={"team": "b"}), SCRIPT))
    assert tracker.pending == 1
    assert tracker.drain() == []
    after = tracker.drift_of(KEY)
    assert before is not None
    assert after is not None
    assert after.findings == before.findings
    assert after.diff != before.diff
    assert after.live is not None
    assert after.live.label_map == {"team": "b"}
    assert after.live.origin == SCRIPT


def test_provenance_and_origin_only_changes_refresh_the_drift_silently() -> None:
    engine = CountingEngine()
    changed = np(spec=allow_from("api", 9090))
    tracker, _ = started({WEB: git(base())}, {WEB: live(changed)}, engine)
    calls = engine.calls

    assert tracker.set_desired({WEB: git(base(), COMMIT_2)}) == set()
    assert tracker.put_live(live(changed, SCRIPT)) == set()
    assert tracker.set_live({WEB: live(changed, APPLY)}) == set()
    assert tracker.pending == 0
    assert tracker.drain() == []
    drift = tracker.drift_of(KEY)
    assert drift is not None
    assert drift.source == COMMIT_2
    assert drift.live is not None
    assert drift.live.origin == APPLY
    assert engine.calls == calls


def test_an_unchanged_pair_is_not_evaluated_again_until_the_engine_changes() -> None:
    engine = CountingEngine()
    changed = np(spec=allow_from("api", 9090))
    tracker, _ = started({WEB: git(base())}, {WEB: live(changed)}, engine)
    calls = engine.calls
    tracker.put_live(live(np(spec=WORLD_SPEC)))
    tracker.put_live(live(changed, SCRIPT))  # back to the evaluated pair before a drain
    assert tracker.drain() == []
    assert engine.calls == calls
    drift = tracker.drift_of(KEY)
    assert drift is not None
    assert drift.live is not None
    assert drift.live.origin == SCRIPT

    # The same engine again: everything is re-examined, nothing changes.
    assert tracker.replace_engine(engine) == {KEY}
    assert tracker.drain() == []
    assert engine.calls > calls

    # A reload that raises spec-modified: an update, with the new engine's findings.
    louder = RuleEngine(RuleOptions(severity={"spec-modified": Severity.CRITICAL}))
    tracker.replace_engine(louder)
    event = only(tracker.drain())
    assert event.kind is EventKind.UPDATED
    assert event.reason == "severity rose from medium to critical"


# ---------------------------------------------------------------------------------------------
# Resolved


def test_resolved_when_live_is_reapplied_to_match_git() -> None:
    tracker = drifted(live(np(spec=allow_from("api", 9090))))
    last = tracker.drift_of(KEY)
    tracker.put_live(live(base(), APPLY))
    event = only(tracker.drain())
    assert event.kind is EventKind.RESOLVED
    assert event.reason == ResolveReason.LIVE_MATCHES_GIT
    assert event.reason == "live matches Git again"
    assert event.drift is last
    assert event.previous is last
    assert event.origin == APPLY  # who fixed it
    assert event.live == base()
    assert tracker.open == {}
    assert tracker.drift_of(KEY) is None


def test_resolved_when_git_changes_to_match_live() -> None:
    changed = np(spec=allow_from("api", 9090))
    tracker = drifted(live(changed))
    tracker.set_desired({WEB: git(changed, COMMIT_2)})
    event = only(tracker.drain())
    assert event.kind is EventKind.RESOLVED
    assert event.reason == ResolveReason.GIT_MATCHES_LIVE
    assert event.reason == "Git changed to match the live policy"
    assert event.drift.live == changed
    assert event.origin == EDIT


def test_missing_and_unmanaged_resolve_by_the_side_that_moved() -> None:
    tracker, _ = started({WEB: git(base())}, {})
    tracker.put_live(live(base(), APPLY))
    assert only(tracker.drain()).reason == ResolveReason.LIVE_MATCHES_GIT
    tracker, _ = started({}, {WEB: live(base())})
    tracker.set_desired({WEB: git(base())})
    assert only(tracker.drain()).reason == ResolveReason.GIT_MATCHES_LIVE


def test_resolved_when_deleted_on_both_sides() -> None:
    tracker = drifted(live(np(spec=allow_from("api", 9090))))
    tracker.delete_live(*WEB)
    tracker.set_desired({})
    event = only(tracker.drain())
    assert event.kind is EventKind.RESOLVED
    assert event.reason == ResolveReason.DELETED
    assert event.reason == "deleted on both sides"
    assert event.drift.status is Status.MODIFIED
    assert event.live is None


def test_resolved_when_the_key_becomes_ignored_by_annotation_or_by_rules() -> None:
    tracker = drifted(live(np(spec=allow_from("api", 9090))))
    annotated = np(spec=allow_from("api", 9090), annotations={IGNORE_ANNOTATION: "true"})
    tracker.put_live(live(annotated, SCRIPT))
    event = only(tracker.drain())
    assert (event.kind, event.reason) == (EventKind.RESOLVED, "now ignored")
    assert event.origin == SCRIPT

    tracker = drifted(live(np(spec=allow_from("api", 9090))))
    marked = tracker.replace_engine(RuleEngine(), IgnoreRules(namespaces=("shop",)))
    assert marked == {KEY}
    event = only(tracker.drain())
    assert (event.kind, event.reason) == (EventKind.RESOLVED, ResolveReason.IGNORED)
    tracker.replace_engine(RuleEngine())  # the rule is dropped again: the drift is back
    assert only(tracker.drain()).kind is EventKind.OPENED


def test_reopening_after_a_resolve_is_a_new_opened_event() -> None:
    tracker = drifted(live(np(spec=allow_from("api", 9090))))
    tracker.put_live(live(base(), APPLY))
    resolved = only(tracker.drain())
    tracker.put_live(live(np(spec=allow_from("api", 9090))))
    reopened = only(tracker.drain())
    assert reopened.kind is EventKind.OPENED
    assert reopened.previous is None
    assert reopened.sequence == resolved.sequence + 1
    assert [e.sequence for e in (resolved, reopened)] == [2, 3]


def test_drain_in_chunks_gives_the_events_of_one_drain() -> None:
    desired = {(f"ns{i}", "p"): git(np("p", f"ns{i}")) for i in range(12)}
    relabelled = {"team": "x"}
    live_state = {
        (f"ns{i}", "p"): live(np("p", f"ns{i}", labels=relabelled if i % 3 else None))
        for i in range(12)
    }
    del live_state[("ns0", "p")]
    _, all_events = started(desired, live_state)
    chunked = DriftTracker(RuleEngine())
    chunked.set_desired(desired)
    chunked.set_live(live_state)
    chunks: list[list[DriftEvent]] = []
    while chunked.pending:
        before = chunked.pending
        chunks.append(chunked.drain(5))
        assert chunked.pending == max(0, before - 5)
    assert len(chunks) == 3
    assert [seen(e) for chunk in chunks for e in chunk] == [seen(e) for e in all_events]
    assert len(all_events) == 9  # 8 labelled differently + 1 missing
    assert chunked.drain(0) == []
    with pytest.raises(ValueError, match="negative"):
        chunked.drain(-1)


def test_the_open_view_is_read_only_and_follows_the_tracker() -> None:
    tracker, _ = started({WEB: git(base())}, {WEB: live(base())})
    view = tracker.open
    assert view == {}
    tracker.delete_live(*WEB)
    tracker.drain()
    assert list(view) == [KEY]
    with pytest.raises(TypeError):
        view[KEY] = view[KEY]  # type: ignore[index]


# ---------------------------------------------------------------------------------------------
# The property: a valid state machine, agreeing with a brute-force recomputation


KEYS: tuple[Name, ...] = (("shop", "web"), ("shop", "db"), ("ops", "web"))


def _variants(namespace: str, name: str) -> tuple[NetworkPolicy, ...]:
    return (
        np(name, namespace, spec=allow_from("api")),
        np(name, namespace, spec=_spelled_out("api")),  # == the first
        np(name, namespace, spec=allow_from("api", 9090)),
        np(name, namespace, spec=allow_from("api", 9091)),
        np(name, namespace, spec=_duplicated_rule("api")),  # same traffic as the first
        np(name, namespace, spec=WORLD_SPEC),
        np(name, namespace, spec=allow_from("api"), annotations={IGNORE_ANNOTATION: "true"}),
        np(name, namespace, spec=allow_from("api"), labels={"owner": "mesh"}),
        np(name, namespace, spec=allow_from("api"), labels={"team": "a"}),
    )


VARIANTS = {key: _variants(*key) for key in KEYS}
ORIGINS = (None, EDIT, APPLY)
SOURCES = (None, COMMIT_1, COMMIT_2)
CONFIGS: tuple[tuple[RuleEngine, IgnoreRules], ...] = (
    (RuleEngine(), IgnoreRules()),
    (
        RuleEngine(
            RuleOptions(
                severity={"spec-modified": Severity.HIGH},
                escalations=(Escalation(("ops",), 1),),
            )
        ),
        IgnoreRules(policies=(PolicyMatcher(selector=parse_selector_string("owner=mesh")),)),
    ),
    (
        # A cosmetic or label-only drift now has no findings at all: still a drift.
        RuleEngine(RuleOptions(disabled=frozenset({"cosmetic", "metadata-modified"}))),
        IgnoreRules(namespaces=("op*",)),
    ),
    (RuleEngine(catalogue=()), IgnoreRules()),  # no findings ever: only statuses move
)

# Variants 0 and 1 are equal: weight them so that keys often come back in sync.
_variant = st.tuples(
    st.sampled_from((0, 1)) | st.integers(0, len(VARIANTS[KEYS[0]]) - 1), st.integers(0, 2)
)
_edits = st.dictionaries(
    st.sampled_from(KEYS), _variant | st.none(), min_size=1, max_size=len(KEYS)
)
_states = st.fixed_dictionaries({key: _variant | st.none() for key in KEYS})
_key = st.sampled_from(KEYS)
_drain = st.tuples(st.just("drain"), st.lists(st.integers(0, 2), max_size=3))
_reapply = st.tuples(st.just("reapply"), _key, st.integers(0, 2))  # live := Git
_adopt = st.tuples(st.just("adopt"), _key, st.integers(0, 2))  # Git := live
_OPS = st.one_of(
    st.tuples(st.just("put"), _key, _variant),
    st.tuples(st.just("delete"), _key),
    st.tuples(st.just("desired"), _edits),
    st.tuples(st.just("live"), _edits),
    st.tuples(st.just("forget"), _key),  # deleted on both sides
    st.tuples(st.just("step"), st.integers(0, 2)),
    # Repeated to draw them more often: fixes, reloads, and drains to see them.
    *(_reapply, _adopt, st.tuples(st.just("reload"), st.integers(0, len(CONFIGS) - 1))) * 2,
    *(_drain,) * 3,
)


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Random operations, with a first ``desired`` and ``live`` early on in either order."""
    ops = draw(st.lists(_OPS, min_size=10, max_size=30))
    first = draw(st.integers(0, 3))
    second = draw(st.integers(first, 6))
    gates = [("desired", draw(_states)), ("live", draw(_states))]
    if draw(st.booleans()):
        gates.reverse()
    ops.insert(second, gates[1])
    ops.insert(first, gates[0])
    return [*ops, ("drain", [])]


@dataclass
class Model:
    """The inputs as the test sees them, and the drifts a brute-force recomputation finds."""

    desired: dict[Name, NetworkPolicy] = field(default_factory=dict)
    live: dict[Name, NetworkPolicy] = field(default_factory=dict)
    sides_set: set[str] = field(default_factory=set)
    config: int = 0

    def apply(self, op: tuple[Any, ...], trackers: tuple[DriftTracker, ...]) -> None:
        """Feed one input to the model and to every tracker."""
        match op:
            case ("put", key, choice):
                self.put(self.policy(key, choice, desired=False), trackers)
            case ("reapply", key, origin) if key in self.desired:
                self.put(replace(self.desired[key], source=None, origin=ORIGINS[origin]), trackers)
            case ("delete", key) | ("reapply", key, _):
                self.live.pop(key, None)
                for t in trackers:
                    t.delete_live(*key)
            case ("desired", edits):
                self.set_desired(self.edited(self.desired, edits, desired=True), trackers)
            case ("adopt", key, source):
                have = self.live.get(key)
                new = {k: v for k, v in self.desired.items() if k != key}
                if have is not None:
                    new[key] = replace(have, origin=None, source=SOURCES[source])
                self.set_desired(new, trackers)
            case ("forget", key):
                self.apply(("delete", key), trackers)
                self.set_desired({k: v for k, v in self.desired.items() if k != key}, trackers)
            case ("live", edits):
                self.live = self.edited(self.live, edits, desired=False)
                self.sides_set.add("live")
                for t in trackers:
                    t.set_live(self.live)
            case ("reload", config):
                self.config = config
                for t in trackers:
                    t.replace_engine(*CONFIGS[config])
            case _:
                raise AssertionError(op)

    def put(self, policy: NetworkPolicy, trackers: tuple[DriftTracker, ...]) -> None:
        self.live[(policy.namespace, policy.name)] = policy
        for t in trackers:
            t.put_live(policy)

    def set_desired(
        self, policies: dict[Name, NetworkPolicy], trackers: tuple[DriftTracker, ...]
    ) -> None:
        self.desired = policies
        self.sides_set.add("desired")
        for t in trackers:
            t.set_desired(policies)

    @staticmethod
    def edited(
        side: dict[Name, NetworkPolicy], edits: dict[Name, Any], *, desired: bool
    ) -> dict[Name, NetworkPolicy]:
        out = dict(side)
        for key, choice in edits.items():
            if choice is None:
                out.pop(key, None)
            else:
                out[key] = Model.policy(key, choice, desired=desired)
        return out

    @staticmethod
    def policy(key: Name, choice: tuple[int, int], *, desired: bool) -> NetworkPolicy:
        variant, extra = choice
        policy = VARIANTS[key][variant]
        return git(policy, SOURCES[extra]) if desired else live(policy, ORIGINS[extra])

    def drifts(self) -> dict[PolicyKey, Drift]:
        if self.sides_set != {"desired", "live"}:
            return {}
        engine, ignore = CONFIGS[self.config]
        report = compare_all(self.desired, self.live, engine, ignore=ignore)
        return {d.key: d for d in report.drifts}

    def resolve_reason(self, key: PolicyKey, last: Drift) -> ResolveReason:
        want = self.desired.get((key.namespace, key.name))
        have = self.live.get((key.namespace, key.name))
        if want is None and have is None:
            return ResolveReason.DELETED
        if want == have:
            same_live = last.live == have
            return ResolveReason.GIT_MATCHES_LIVE if same_live else ResolveReason.LIVE_MATCHES_GIT
        assert CONFIGS[self.config][1].ignores(key, want, have)
        return ResolveReason.IGNORED


def _check_state_machine(events: list[DriftEvent], first_sequence: int) -> None:
    """Per key: opened, updated*, resolved, opened...; sequences consecutive."""
    is_open: dict[PolicyKey, bool] = {}
    for offset, event in enumerate(events):
        assert event.sequence == first_sequence + offset
        was_open = is_open.get(event.key, False)
        assert was_open is (event.kind is not EventKind.OPENED), event
        is_open[event.key] = event.kind is not EventKind.RESOLVED


def _check_drain(
    events: list[DriftEvent],
    before: dict[PolicyKey, Drift],
    now: dict[PolicyKey, Drift],
    model: Model,
    tracker: DriftTracker,
) -> None:
    """A full drain's events are exactly the changes from ``before`` to ``now``."""
    expected: dict[PolicyKey, EventKind] = dict.fromkeys(
        before.keys() - now.keys(), EventKind.RESOLVED
    )
    for key, drift in now.items():
        last = before.get(key)
        if last is None:
            expected[key] = EventKind.OPENED
        elif (last.status, last.findings) != (drift.status, drift.findings):
            expected[key] = EventKind.UPDATED
    assert {e.key: e.kind for e in events} == expected
    assert len(events) == len(expected)  # one event per transition, no more
    for event in events:
        assert event.live is model.live.get((event.key.namespace, event.key.name))
        if event.kind is EventKind.RESOLVED:
            assert shown(event.drift) == shown(before[event.key])
            assert event.reason == model.resolve_reason(event.key, before[event.key])
        else:
            assert shown(event.drift) == shown(now[event.key])
        if event.kind is EventKind.UPDATED:
            assert shown(event.previous) == shown(before[event.key])
        shown_status = event.reason if event.kind is EventKind.RESOLVED else event.drift.status
        tally(f"{event.kind}: {shown_status}")

    # The open drifts are the model's, with the current provenance and origin.
    assert {k: shown(d) for k, d in tracker.open.items()} == {k: shown(d) for k, d in now.items()}
    for key, drift in tracker.open.items():
        want = model.desired.get((key.namespace, key.name))
        have = model.live.get((key.namespace, key.name))
        assert drift.source == (want.source if want is not None else None)
        assert (drift.live.origin if drift.live else None) == (have.origin if have else None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_events_are_exactly_the_transitions_of_a_brute_force_recomputation(
    ops: list[tuple[Any, ...]],
) -> None:
    # ``whole`` drains everything at each "drain" and is checked against the model there;
    # ``chunked`` drains the same keys in chunks at the same points; ``stepped`` also
    # evaluates a few keys at random moments in between ("step").
    whole, chunked, stepped = (DriftTracker(CONFIGS[0][0], ignore=CONFIGS[0][1]) for _ in "abc")
    trackers = (whole, chunked, stepped)
    model = Model()
    reference: dict[PolicyKey, Drift] = {}
    whole_events: list[DriftEvent] = []
    stepped_events: list[DriftEvent] = []
    for op in ops:
        match op:
            case ("step", limit):
                stepped_events += stepped.drain(limit)
            case ("drain", chunks):
                events = whole.drain()
                pieces = [e for limit in chunks for e in chunked.drain(limit)]
                assert [seen(e) for e in (*pieces, *chunked.drain())] == [seen(e) for e in events]
                stepped_events += stepped.drain()
                now = model.drifts()
                _check_drain(events, reference, now, model, whole)
                reference = now
                whole_events += events
            case _:
                model.apply(op, trackers)

    _check_state_machine(whole_events, 1)
    _check_state_machine(stepped_events, 1)
    final = {k: shown(d) for k, d in model.drifts().items()}
    for tracker in trackers:
        assert tracker.pending == 0
        assert {k: shown(d) for k, d in tracker.open.items()} == final
