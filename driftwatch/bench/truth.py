"""Deliveries against the ground truth: missed, duplicates, resends, latencies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from driftwatch.bench.hook import Arrival
from driftwatch.bench.world import Expected

__all__ = ["Tally", "first_arrivals", "tally"]


@dataclass(frozen=True, slots=True)
class Tally:
    """``missed``: expected events never delivered; ``duplicates``: an incident event
    delivered again under another ``webhook-id``; ``resends``: the same ``webhook-id``
    delivered again (the outbox may legitimately retry; a consumer drops them by id);
    ``unexpected``: events nobody expected (e.g. from a metadata-only edit)."""

    expected: int
    delivered: int
    missed: int
    duplicates: int
    resends: int
    unexpected: int


def tally(expected: Sequence[Expected], arrivals: Sequence[Arrival]) -> Tally:
    want = {(e.incident, e.kind) for e in expected}
    seen_ids: set[str] = set()
    ids_by_event: dict[tuple[str, str], set[str]] = {}
    resends = unexpected = 0
    for a in arrivals:
        if a.webhook_id in seen_ids:
            resends += 1
            continue
        seen_ids.add(a.webhook_id)
        event = (a.incident, a.kind)
        if event not in want:
            unexpected += 1
        ids_by_event.setdefault(event, set()).add(a.webhook_id)
    duplicates = sum(len(ids) - 1 for ids in ids_by_event.values())
    missed = sum(1 for e in want if e not in ids_by_event)
    return Tally(len(want), len(seen_ids), missed, duplicates, resends, unexpected)


def first_arrivals(arrivals: Sequence[Arrival]) -> dict[tuple[str, str], float]:
    """When each incident event first arrived."""
    first: dict[tuple[str, str], float] = {}
    for a in arrivals:
        first.setdefault((a.incident, a.kind), a.at)
    return first
