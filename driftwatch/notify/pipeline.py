"""From drift events to incidents and queued notifications.

Each drift event moves one key's incident (open, updated, resolved); the routes pick the
receivers; the incident and its notifications are saved in one commit, and the outbox is
woken to deliver them (with a receiver's ``group_wait``, its ``opened`` notifications are
stored grouped and delayed, for the outbox to batch). A key's open incident is looked up in
the store, not in memory: so after a restart, the tracker's ``opened`` for a drift that was
already open (and already announced) changes nothing, and :meth:`Pipeline.reconcile`
resolves what got fixed while driftwatch was down.

Not every incident is a NetworkPolicy drift: :meth:`Pipeline.open_problem` and
:meth:`Pipeline.resolve_problem` give the same lifecycle, body shape, routing and
restart-proof deduplication to a problem of driftwatch's own inputs (the desired state
that cannot be fetched or read), under a reserved key whose namespace is empty.

People act on incidents through :meth:`Pipeline.act` (approve, snooze; remediation's
revert): the action is appended to the body's ``actions`` and announced as ``updated``.
An approved incident sends nothing while its (Git, live) pair is the approved one; the
first event with another pair reopens it (``updated``, the reason says so). A snoozed
incident's notifications (its resolve and the actions aside) are recorded, not sent,
until the snooze ends; reminders then announce that it is still open. Every body carries
the incident's ``state`` and its ``actions`` (additive keys of ``schema_version`` 1).

The pipeline's methods run one at a time (a lock): an action read-modify-writes an
incident the engine may be moving.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog

from driftwatch.drift import Drift, DriftEvent, EventKind
from driftwatch.incidents import (
    Action,
    Incident,
    IncidentResolved,
    IncidentState,
    IncidentStore,
    Outgoing,
    UnknownIncident,
    incident_id,
    iso_time,
)
from driftwatch.notify.actions import (
    ACTIONS,
    active_approval,
    active_snooze,
    approval_holds,
    carry,
    describe,
    ended_snooze,
    entry,
    pair_digest,
    stated,
    with_action,
)
from driftwatch.notify.body import incident_body, problem_body
from driftwatch.notify.model import Kind
from driftwatch.notify.routing import Facts, Router
from driftwatch.policy import PolicyKey
from driftwatch.rules import Finding

__all__ = ["Pipeline", "fingerprint", "problem_fingerprint"]

Log = Any  # a structlog BoundLogger (or anything with .info/.warning)


def fingerprint(drift: Drift) -> str:
    """What a notification says about a drift: two equal fingerprints read the same."""
    findings = sorted(f"{f.rule}|{f.severity}|{f.message}" for f in drift.findings)
    return "\n".join([str(drift.status), str(drift.severity), *findings])


def problem_fingerprint(status: str, findings: Iterable[Finding]) -> str:
    """:func:`fingerprint` for a problem that is not a drift: its status and findings (the
    severity is the findings' highest)."""
    found = list(findings)
    severity = max((f.severity for f in found), default=None)
    lines = sorted(f"{f.rule}|{f.severity}|{f.message}" for f in found)
    return "\n".join([status, str(severity), *lines])


def _facts(key: PolicyKey, drift: Drift) -> Facts:
    policy = drift.live if drift.live is not None else drift.desired
    return Facts(
        cluster=key.cluster,
        namespace=key.namespace,
        name=key.name,
        severity=None if drift.severity is None else str(drift.severity),
        rules=frozenset(f.rule for f in drift.findings),
        labels=dict(policy.labels) if policy is not None else {},
    )


def _body_facts(body: dict[str, Any], labels: dict[str, str]) -> Facts:
    return Facts(
        cluster=body["cluster"],
        namespace=body["namespace"],
        name=body["name"],
        severity=body["severity"],
        rules=frozenset(f["rule"] for f in body["findings"]),
        labels=labels,
    )


class Pipeline:
    """Turns drift events into incidents and outbox entries."""

    def __init__(
        self,
        store: IncidentStore,
        router: Router,
        *,
        link: Callable[[Drift], str | None] = lambda _: None,
        repeat_interval: float = 4 * 3600.0,
        group_wait: Mapping[str, float] | None = None,
        wake: Callable[[], None] = lambda: None,
        log: Log = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.router = router
        self._link = link
        self.repeat_interval = repeat_interval
        self.group_wait = dict(group_wait or {})
        """Receiver -> seconds an ``opened`` notification waits for others to batch with."""
        self._wake = wake
        self._log = log if log is not None else structlog.get_logger("driftwatch.notify")
        self._clock = clock
        self._problems: set[PolicyKey] = set()
        """Problem keys opened or confirmed by :meth:`open_problem` since this pipeline
        was built: :meth:`reconcile` leaves their incidents open."""
        self._lock = asyncio.Lock()

    async def handle(self, event: DriftEvent) -> Incident | None:
        """Record one drift event; returns the incident it concerns (``None`` for a resolve
        of nothing open)."""
        async with self._lock:
            return await self._handle(event)

    async def _handle(self, event: DriftEvent) -> Incident | None:
        now = self._clock()
        current = await self.store.open_incident(event.key)
        if event.kind is EventKind.RESOLVED:
            if current is None:
                return None
            return await self._resolve(current, event, now, None)
        fp = fingerprint(event.drift)
        if current is None:
            number = await self.store.next_number(event.key)
            iid = incident_id(event.key, number)
            body = self._body(
                event, Kind.OPENED, iid=iid, now=now, opened_at=iso_time(now), resolved_at=None
            )
            facts = _facts(event.key, event.drift)
            incident = Incident(
                iid, event.key, number, IncidentState.OPEN, body["severity"], body["status"],
                fp, iso_time(now), iso_time(now), None, iso_time(now), body, dict(facts.labels),
            )  # fmt: skip
            return await self._save(incident, Kind.OPENED, facts, now)
        body = self._body(
            event,
            Kind.UPDATED,
            iid=current.id,
            now=now,
            opened_at=current.opened_at,
            resolved_at=None,
        )
        carry(current.body, body)
        facts = _facts(event.key, event.drift)
        approval = active_approval(current.body)
        if current.state is IncidentState.APPROVED and not approval_holds(
            approval, event, fp, current
        ):
            # Git or the live policy changed since the approval: the drift is back.
            recorded = entry(Action.REOPENED, actor="driftwatch", reason=event.reason, at=now)
            approved = f" (approved by {approval['actor']} at {approval['at']})" if approval else ""
            body["reason"] = f"reopened: {event.reason}{approved}"
            body[ACTIONS] = with_action(body, recorded)
        elif current.fingerprint == fp or current.state is IncidentState.APPROVED:
            # Already announced as it is (a restart's first look, or a change that alters
            # nothing a message says), or approved as it is: keep the latest body, send
            # nothing.
            labels = dict(facts.labels)
            incident = replace(current, body=body, updated_at=iso_time(now), labels=labels)
            incident = stated(incident, None)
            await self.store.save(incident, (), now)
            return incident
        incident = replace(
            current,
            labels=dict(facts.labels),
            state=IncidentState.UPDATED,
            severity=body["severity"],
            status=body["status"],
            fingerprint=fp,
            updated_at=iso_time(now),
            last_notified_at=iso_time(now),
            body=body,
        )
        return await self._save(incident, Kind.UPDATED, facts, now)

    async def act(
        self,
        incident_id: str,
        action: str,
        *,
        actor: str,
        reason: str | None = None,
        until: float | None = None,
        now: float | None = None,
        drift: Drift | None = None,
    ) -> Incident:
        """Record ``action`` (an :class:`~driftwatch.incidents.Action` value) by ``actor``
        on an incident and announce it (``updated``, reason ``approved by alice: ...``);
        returns the incident as saved.

        ``approved``: the state becomes ``approved``; ``drift`` (the incident's drift now)
        pins the approved (Git, live) pair (the daemon also tells its tracker, see
        ``DriftTracker.approve``). ``snoozed``: nothing but its resolve and actions is sent
        until ``until`` (Unix time, in the future). ``reverted``, ``revert-loop``: recorded
        and announced; on an incident already resolved (the revert's own watch event may
        come first) they are recorded without a notification.

        Raises :class:`~driftwatch.incidents.UnknownIncident`,
        :class:`~driftwatch.incidents.IncidentResolved` (approve or snooze of a resolved
        incident), ValueError (an unknown action, an empty actor, a snooze without a
        future ``until``)."""
        kind = Action(action)
        if kind is Action.REOPENED:
            raise ValueError("reopened is recorded by driftwatch, not an action to take")
        async with self._lock:
            at = self._clock() if now is None else now
            current = await self.store.get(incident_id)
            if current is None:
                raise UnknownIncident(incident_id)
            if kind is Action.SNOOZED and (until is None or until <= at):
                raise ValueError("a snooze needs an end in the future")
            pair = pair_digest(drift) if kind is Action.APPROVED and drift is not None else None
            recorded = entry(
                kind,
                actor=actor,
                reason=reason,
                at=at,
                until=until if kind is Action.SNOOZED else None,
                pair=pair,
            )
            actions = with_action(current.body, recorded)
            if not current.is_open:
                if kind not in (Action.REVERTED, Action.REVERT_LOOP):
                    raise IncidentResolved(incident_id)
                kept = stated(replace(current, body={**current.body, ACTIONS: actions}), None)
                await self.store.save(kept, (), at)
                return kept
            body = {
                **current.body,
                ACTIONS: actions,
                "occurred_at": iso_time(at),
                "reason": describe(recorded),
            }
            severity = current.severity
            if kind is Action.REVERT_LOOP:  # a fight with another writer: someone must look
                severity = body["severity"] = "critical"
                body["findings"] = [*(current.body.get("findings") or ()), _loop_finding(reason)]
            incident = replace(
                current,
                severity=severity,
                state=IncidentState.APPROVED if kind is Action.APPROVED else current.state,
                updated_at=iso_time(at),
                last_notified_at=iso_time(at),
                body=body,
            )
            facts = _body_facts(current.body, current.labels)
            return await self._save(incident, Kind.UPDATED, facts, at, announce=True)

    async def _resolve(
        self, current: Incident, event: DriftEvent | None, now: float, reason: str | None
    ) -> Incident:
        if event is not None:
            body = self._body(
                event,
                Kind.RESOLVED,
                iid=current.id,
                now=now,
                opened_at=current.opened_at,
                resolved_at=now,
            )
            carry(current.body, body)
        else:
            body = {
                **current.body,
                "type": f"drift.{Kind.RESOLVED}",
                "occurred_at": iso_time(now),
                "resolved_at": iso_time(now),
                "reason": reason,
            }
        incident = replace(
            current,
            state=IncidentState.RESOLVED,
            updated_at=iso_time(now),
            resolved_at=iso_time(now),
            body=body,
        )
        # Resolves go where the incident was last routed (its last body's facts).
        facts = _body_facts(current.body, current.labels)
        return await self._save(incident, Kind.RESOLVED, facts, now)

    async def reconcile(self, open_keys: Iterable[PolicyKey]) -> list[Incident]:
        """After the first full evaluation: resolve the open incidents whose keys are no
        longer drifted (fixed while driftwatch was not watching).

        A problem incident (:meth:`open_problem`) carried over from before a restart is
        resolved too, since the daemon only gets here once its desired state was fetched
        and read; one opened or confirmed by this process is left to
        :meth:`resolve_problem`."""
        still = set(open_keys) | self._problems
        resolved = []
        async with self._lock:
            for incident in await self.store.open_incidents():
                if incident.key not in still:
                    reason = "resolved while driftwatch was not running"
                    resolved.append(await self._resolve(incident, None, self._clock(), reason))
        return resolved

    async def open_problem(
        self,
        key: PolicyKey,
        *,
        status: str,
        findings: Iterable[Finding],
        reason: str,
    ) -> Incident:
        """Open (or update) the incident of ``key`` about a problem that is not a
        NetworkPolicy drift, e.g. the desired state that cannot be read.

        What a user relies on: calling it again with the same ``status`` and findings (every
        poll, or after a restart) sends nothing; a changed status or finding message sends
        ``updated``; the incident has the usual body (``schema_version`` 1, ``status`` as
        given, the findings, ``diff`` ``""``, ``desired_source`` and ``live_change``
        ``null``, ``reason``), is routed like a drift of ``key`` (namespace, name, severity,
        rule ids; no labels), reminded, and resolved with :meth:`resolve_problem`."""
        async with self._lock:
            return await self._open_problem(key, status, tuple(findings), reason)

    async def _open_problem(
        self, key: PolicyKey, status: str, found: tuple[Finding, ...], reason: str
    ) -> Incident:
        now = self._clock()
        self._problems.add(key)
        current = await self.store.open_incident(key)
        fp = problem_fingerprint(status, found)
        severity = max((f.severity for f in found), default=None)
        facts = Facts(
            cluster=key.cluster,
            namespace=key.namespace,
            name=key.name,
            severity=None if severity is None else str(severity),
            rules=frozenset(f.rule for f in found),
            labels={},
        )

        def body(kind: Kind, iid: str, opened_at: str) -> dict[str, Any]:
            made = problem_body(
                key,
                kind,
                iid,
                status=status,
                findings=found,
                reason=reason,
                now=now,
                opened_at=opened_at,
                resolved_at=None,
            )
            if current is not None:
                carry(current.body, made)
            return made

        if current is None:
            number = await self.store.next_number(key)
            iid = incident_id(key, number)
            text = body(Kind.OPENED, iid, iso_time(now))
            incident = Incident(
                iid, key, number, IncidentState.OPEN, text["severity"], status, fp,
                iso_time(now), iso_time(now), None, iso_time(now), text, {},
            )  # fmt: skip
            return await self._save(incident, Kind.OPENED, facts, now)
        if current.fingerprint == fp:
            # Already announced as it is: keep the latest body (its reason), send nothing.
            text = body(Kind.UPDATED, current.id, current.opened_at)
            incident = stated(replace(current, body=text, updated_at=iso_time(now)), None)
            await self.store.save(incident, (), now)
            return incident
        text = body(Kind.UPDATED, current.id, current.opened_at)
        incident = replace(
            current,
            labels={},
            state=IncidentState.UPDATED,
            severity=text["severity"],
            status=status,
            fingerprint=fp,
            updated_at=iso_time(now),
            last_notified_at=iso_time(now),
            body=text,
        )
        return await self._save(incident, Kind.UPDATED, facts, now)

    async def resolve_problem(self, key: PolicyKey, *, reason: str) -> Incident | None:
        """Resolve ``key``'s open problem incident, saying ``reason``; ``None`` (and nothing
        sent) when none is open, so it can be called after every success."""
        async with self._lock:
            self._problems.discard(key)
            current = await self.store.open_incident(key)
            if current is None:
                return None
            return await self._resolve(current, None, self._clock(), reason)

    async def remind(self) -> list[Incident]:
        """Re-announce incidents still open ``repeat_interval`` after their last
        announcement (0 disables these), and those whose snooze ended with nothing said
        since. Approved and snoozed incidents are not reminded."""
        async with self._lock:
            now = self._clock()
            due = []
            for incident in await self.store.open_incidents():
                if incident.state is IncidentState.APPROVED:
                    continue
                if active_snooze(incident.body, now) is not None:
                    continue
                last = incident.last_notified_at or incident.opened_at
                ended = ended_snooze(incident.body, now, incident.last_notified_at)
                if ended is not None:
                    reason = f"still open: the snooze ended ({describe(ended)})"
                elif self.repeat_interval > 0 and _parse(last) + self.repeat_interval <= now:
                    reason = "still open"
                else:
                    continue
                body = {
                    **incident.body,
                    "type": f"drift.{Kind.REMINDER}",
                    "occurred_at": iso_time(now),
                    "reason": reason,
                }
                reminded = replace(incident, last_notified_at=iso_time(now), body=body)
                facts = _body_facts(body, incident.labels)
                due.append(await self._save(reminded, Kind.REMINDER, facts, now))
            return due

    async def _save(
        self, incident: Incident, kind: Kind, facts: Facts, now: float, *, announce: bool = False
    ) -> Incident:
        """Save ``incident`` with a ``kind`` notification for its receivers (none while
        silenced, or while snoozed unless it is a resolve or ``announce``: an action's)."""
        incident = stated(incident, kind)
        body = incident.body
        silence = self.router.silenced(facts, now)
        snooze = None if announce or kind is Kind.RESOLVED else active_snooze(body, now)
        muted = silence is not None or snooze is not None
        receivers = [] if muted else self.router.receivers_for(facts)
        disabled = await self.store.disabled_receivers()
        outgoing = []
        for receiver in receivers:
            if receiver not in disabled:
                wait = self.group_wait.get(receiver, 0.0) if kind is Kind.OPENED else 0.0
                outgoing.append(
                    Outgoing(str(uuid.uuid4()), receiver, str(kind), body, wait, wait > 0)
                )
        await self.store.save(incident, outgoing, now)
        self._log.info(
            f"incident {kind}",
            incident=incident.id,
            cluster=incident.key.cluster,
            namespace=incident.key.namespace,
            policy=incident.key.name,
            receivers=[o.receiver for o in outgoing],
            silenced=silence.comment if silence is not None else None,
            snoozed=snooze.get("until") if snooze is not None else None,
        )
        if outgoing:
            self._wake()
        return incident

    def _body(
        self,
        event: DriftEvent,
        kind: Kind,
        *,
        iid: str,
        now: float,
        opened_at: str,
        resolved_at: float | None,
    ) -> dict[str, Any]:
        return incident_body(
            event,
            kind=str(kind),
            incident_id=iid,
            occurred_at=iso_time(now),
            opened_at=opened_at,
            resolved_at=None if resolved_at is None else iso_time(resolved_at),
            link=self._link(event.drift),
        )


def _loop_finding(reason: str | None) -> dict[str, Any]:
    """The ``revert-loop`` finding (critical) a revert loop adds to its incident."""
    return {
        "rule": "revert-loop",
        "severity": "critical",
        "direction": "hygiene",
        "message": reason or "driftwatch stopped reverting: another writer keeps changing it",
        "evidence": {},
    }


def _parse(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
