"""Compare desired and live, one key at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from driftwatch.drift.diff import unified_diff
from driftwatch.drift.ignore import IgnoreRules
from driftwatch.drift.model import Drift, Report
from driftwatch.policy import NetworkPolicy, PolicyKey
from driftwatch.rules import RuleContext, RuleEngine, Status, max_severity

__all__ = ["all_keys", "compare", "compare_all", "compare_keys", "status_of", "unified_diff"]

Index = Mapping[tuple[str, str], NetworkPolicy]


def status_of(desired: NetworkPolicy | None, live: NetworkPolicy | None) -> Status:
    if desired is None and live is None:
        raise ValueError("nothing to compare: both sides are absent")
    if live is None:
        return Status.MISSING
    if desired is None:
        return Status.UNMANAGED
    return Status.IN_SYNC if desired == live else Status.MODIFIED


def compare(
    key: PolicyKey,
    desired: NetworkPolicy | None,
    live: NetworkPolicy | None,
    engine: RuleEngine,
) -> Drift:
    """The drift of one key (status ``in_sync`` included, with no findings)."""
    status = status_of(desired, live)
    if status is Status.IN_SYNC:
        return Drift(key, status, desired, live, "", (), None)
    findings = engine.evaluate(RuleContext(key, status, desired, live))
    return Drift(key, status, desired, live, None, findings, max_severity(findings))


def compare_all(
    desired: Index,
    live: Index,
    engine: RuleEngine,
    *,
    cluster: str = "default",
    ignore: IgnoreRules | None = None,
) -> Report:
    """Compare every key on either side; drifts sorted most severe first."""
    return compare_keys(
        desired.keys() | live.keys(), desired, live, engine, cluster=cluster, ignore=ignore
    )


def all_keys(desired: Index, live: Index) -> list[tuple[str, str]]:
    """Every key on either side, in a stable order (to split the work among processes)."""
    return sorted(desired.keys() | live.keys())


def compare_keys(
    keys: Iterable[tuple[str, str]],
    desired: Index,
    live: Index,
    engine: RuleEngine,
    *,
    cluster: str = "default",
    ignore: IgnoreRules | None = None,
) -> Report:
    """:func:`compare_all` over some of the keys (a share of the work)."""
    ignore = ignore or IgnoreRules()
    counts: Counter[Status] = Counter(dict.fromkeys(Status, 0))
    drifts: list[Drift] = []
    ignored = 0
    for ns, name in keys:
        want, have = desired.get((ns, name)), live.get((ns, name))
        key = PolicyKey(cluster, ns, name)
        if ignore.ignores(key, want, have):
            ignored += 1
            continue
        drift = compare(key, want, have, engine)
        counts[drift.status] += 1
        if drift.status is not Status.IN_SYNC:
            drifts.append(drift)
    drifts.sort(key=Drift.sort_key)
    return Report(drifts, counts, ignored)
