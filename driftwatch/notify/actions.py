"""Incident actions as the pipeline records them: the ``actions`` entries of an incident
body, the one-line reasons its notifications give, snoozes and approvals.

See :mod:`driftwatch.incidents.actions` for the entry's shape. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from driftwatch.drift import Drift, DriftEvent
from driftwatch.incidents import Action, Incident, iso_time
from driftwatch.incidents.actions import MAX_ACTIONS
from driftwatch.notify.model import Kind
from driftwatch.policy.render import to_yaml

__all__ = [
    "ACTIONS",
    "actions_of",
    "active_approval",
    "active_snooze",
    "approval_holds",
    "carry",
    "describe",
    "ended_snooze",
    "entry",
    "pair_digest",
    "stated",
    "with_action",
]

ACTIONS = "actions"
"""The body key holding the actions, oldest first."""
MAX_ACTOR, MAX_REASON = 200, 500


def _one_line(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    line = " ".join(str(text).split())
    if not line:
        return None
    return line if len(line) <= limit else line[: limit - 1] + "…"


def pair_digest(drift: Drift) -> str:
    """A digest of the drift's (Git, live) versions: equal exactly when both sides are
    ``==`` (their canonical renderings are equal)."""
    h = hashlib.sha256()
    for side in (drift.desired, drift.live):
        h.update(b"-" if side is None else to_yaml(side).encode("utf-8"))
        h.update(b"\x00")
    return "sha256:" + h.hexdigest()


def entry(
    action: Action,
    *,
    actor: str,
    reason: str | None,
    at: float,
    until: float | None = None,
    pair: str | None = None,
) -> dict[str, Any]:
    """One ``actions`` entry; ValueError for an empty actor."""
    who = _one_line(actor, MAX_ACTOR)
    if who is None:
        raise ValueError("an action needs an actor")
    recorded: dict[str, Any] = {
        "action": str(action),
        "actor": who,
        "reason": _one_line(reason, MAX_REASON),
        "at": iso_time(at),
        "until": None if until is None else iso_time(until),
    }
    if pair is not None:
        recorded["pair"] = pair
    return recorded


def actions_of(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The body's actions (a list of dicts; none for an older body)."""
    found = body.get(ACTIONS)
    return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []


def with_action(body: Mapping[str, Any], recorded: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The body's actions with ``recorded`` appended (the latest :data:`MAX_ACTIONS`)."""
    return [*actions_of(body), dict(recorded)][-MAX_ACTIONS:]


def describe(recorded: Mapping[str, Any]) -> str:
    """The reason a notification about the action gives: ``approved by alice: ticket 12``."""
    action, actor = recorded.get("action"), recorded.get("actor")
    if action == Action.SNOOZED:
        text = f"snoozed by {actor} until {recorded.get('until')}"
    elif action == Action.REVERTED:
        text = f"reverted by {actor} at {recorded.get('at')}"
    elif action == Action.REVERT_LOOP:
        text = f"revert loop detected by {actor}: the drift came back after each revert"
    elif action == Action.REOPENED:
        text = "reopened after approval"
    else:
        text = f"{action} by {actor}"
    return f"{text}: {recorded['reason']}" if recorded.get("reason") else text


def _parse(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _last(body: Mapping[str, Any], wanted: Action, *, ends: tuple[Action, ...] = ()) -> Any:
    """The latest ``wanted`` entry, unless one of ``ends`` came after it."""
    for recorded in reversed(actions_of(body)):
        if recorded.get("action") == wanted:
            return recorded
        if recorded.get("action") in ends:
            return None
    return None


def active_snooze(body: Mapping[str, Any], now: float) -> dict[str, Any] | None:
    """The snooze muting the incident at ``now`` (its latest, if not over), else ``None``."""
    snooze = _last(body, Action.SNOOZED)
    until = _parse(snooze.get("until")) if snooze is not None else None
    return snooze if until is not None and now < until else None


def ended_snooze(
    body: Mapping[str, Any], now: float, last_notified_at: str | None
) -> dict[str, Any] | None:
    """The latest snooze if it is over and nothing was announced since it ended (so its
    end is to be announced), else ``None``."""
    snooze = _last(body, Action.SNOOZED)
    until = _parse(snooze.get("until")) if snooze is not None else None
    if until is None or now < until:
        return None
    last = _parse(last_notified_at)
    return snooze if last is None or last < until else None


def active_approval(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The approval in force: the latest ``approved`` entry with no ``reopened`` after it."""
    approval = _last(body, Action.APPROVED, ends=(Action.REOPENED,))
    return approval if isinstance(approval, dict) else None


def stated(incident: Incident, kind: Kind | None) -> Incident:
    """``incident`` with its body's ``type`` (``drift.<kind>``, unless ``None``), ``state``
    and ``actions`` (``[]`` when none) set."""
    body = incident.body
    state = incident.state.value
    kind_ok = kind is None or body.get("type") == f"drift.{kind}"
    if kind_ok and body.get("state") == state and ACTIONS in body:
        return incident
    body = dict(body, state=state)
    body.setdefault(ACTIONS, [])
    if kind is not None:
        body["type"] = f"drift.{kind}"
    return replace(incident, body=body)


def carry(old: Mapping[str, Any], new: dict[str, Any]) -> None:
    """Keep the actions recorded on an incident in its next body."""
    if actions := actions_of(old):
        new[ACTIONS] = actions


def approval_holds(
    approval: Mapping[str, Any] | None, event: DriftEvent, fp: str, current: Incident
) -> bool:
    """Whether the approval still covers the drift: the approved (Git, live) pair, or
    (an approval without a pair) what the last message said."""
    if approval is not None and approval.get("pair"):
        return bool(approval["pair"] == pair_digest(event.drift))
    return current.fingerprint == fp
