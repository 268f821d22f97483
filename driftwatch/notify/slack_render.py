"""Slack messages for incidents: Block Kit within Slack's limits (50 blocks, header 150 and
section 3,000 characters), with a one-line ``text`` fallback and ``metadata``.

The parent shows severity and ``namespace/name``, reason and state, findings, the diff in a
code block (cut, with a note), the Git source, who changed the live policy and when, and the
incident id; thread replies are shorter. A batch (``group_wait``: several incidents opened
together, :func:`render_batch`) is one compact message: a header with the count and the
highest severity, then per incident, most severe first, its severity, ``namespace/name``,
leading finding, Git source and id, without diffs (several incidents share a section when
there are more than fit one each; past 50 blocks the rest is "and N more"); its
``metadata`` (``driftwatch_incident_batch``) names the batch and every incident. Pure: no
I/O (see :mod:`driftwatch.notify.slack`).

The parent also shows the incident's state when it is approved or snoozed, and its latest
actions (who approved, snoozed, reverted, and when). With ``buttons`` an open incident's
parent ends with an ``actions`` block: *Revert to Git* (with a confirmation), *Approve
live* (not once approved) and *Snooze 4h*, each with the incident id as ``value``
(action ids :data:`BUTTON_REVERT`, :data:`BUTTON_APPROVE`, :data:`BUTTON_SNOOZE_4H`;
``POST /hooks/slack`` handles them).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from driftwatch.notify.actions import actions_of, active_snooze, describe
from driftwatch.notify.model import Batch, Kind, Notification

__all__ = [
    "BATCH_EVENT_TYPE",
    "BUTTON_APPROVE",
    "BUTTON_REVERT",
    "BUTTON_SNOOZE_4H",
    "EVENT_TYPE",
    "MAX_BLOCKS",
    "MAX_FALLBACK",
    "MAX_FINDINGS",
    "MAX_HEADER",
    "MAX_SECTION",
    "SlackMessage",
    "cut",
    "one_line",
    "render",
    "render_batch",
]

MAX_BLOCKS, MAX_HEADER, MAX_SECTION = 50, 150, 3000
"""Slack's limits: blocks in a message, characters in a header and in a section's text."""
MAX_FINDINGS = 10
MAX_FALLBACK = 300
"""The ``text`` fallback (notifications, screen readers) is one line of at most this."""
EVENT_TYPE = "driftwatch_incident"
BATCH_EVENT_TYPE = "driftwatch_incident_batch"
MAX_BATCH_ENTRY = 700
"""One incident's summary in a batch message is cut to this many characters."""
_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
BUTTON_REVERT, BUTTON_APPROVE = "driftwatch_revert", "driftwatch_approve"
BUTTON_SNOOZE_4H = "driftwatch_snooze_4h"
ACTIONS_BLOCK = "driftwatch_incident_actions"
MAX_ACTIONS_SHOWN = 5


@dataclasses.dataclass(frozen=True, slots=True)
class SlackMessage:
    """One message: its one-line fallback, its blocks and its metadata."""

    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any]

    def args(self) -> dict[str, Any]:
        """As arguments of ``chat.postMessage`` and ``chat.update``."""
        return {"text": self.text, "blocks": self.blocks, "metadata": self.metadata}


def _esc(value: object) -> str:
    """``value`` as mrkdwn text: Slack's three control characters escaped."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    # No half entity (``&am``) at the cut.
    return re.sub(r"&[a-z]{0,4}$", "", text[: limit - 1]) + "…"


def one_line(value: object) -> str:
    return " ".join(str(value or "").split())


def _when(value: object) -> str:
    """An RFC 3339 time as Slack's date token (shown in the reader's time zone)."""
    text = str(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return _esc(text)
    if moment.tzinfo is None:
        return _esc(text)
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{_esc(text)}>"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, MAX_SECTION)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, MAX_SECTION)}]}


def _icon(severity: str) -> str:
    return ":rotating_light:" if severity in ("critical", "high") else ":warning:"


def _rank(severity: object) -> int:
    """``critical`` 4 down to ``info`` 0; -1 for none or an unknown one."""
    return _SEVERITY_RANK.get(str(severity or "").lower(), -1)


def _policy(body: Mapping[str, Any]) -> str:
    return f"{body.get('namespace') or '?'}/{body.get('name') or '?'}"


def _title(body: Mapping[str, Any], kind: Kind, *, reply: bool) -> tuple[str, str]:
    """The header's emoji and its text (the text also starts the fallback)."""
    policy = _policy(body)
    severity = str(body.get("severity") or "")
    label = f"{severity.upper()} drift" if severity else "Drift"
    icon = _icon(severity)
    if kind is Kind.TEST:
        return ":test_tube:", f"TEST: {label}: {policy}"
    if kind is Kind.RESOLVED:
        was = f" (was {severity.upper()})" if severity else ""
        return ":white_check_mark:", f"RESOLVED: {policy}{was}"
    if reply and kind is Kind.UPDATED:
        return icon, f"Updated: {label}: {policy}"
    if reply and kind is Kind.REMINDER:
        return icon, f"Still open: {label}: {policy}"
    return icon, f"{label}: {policy}"


def _state(body: Mapping[str, Any], kind: Kind) -> str:
    lines = [f"*Reason:* {_esc(one_line(body['reason']))}"] if body.get("reason") else []
    facts = [f"*Drift:* `{_esc(body.get('status') or '?')}`"]
    if body.get("cluster"):
        facts.append(f"*Cluster:* `{_esc(body['cluster'])}`")
    lines.append(" · ".join(facts))
    if kind is Kind.RESOLVED:
        when = _when(body["resolved_at"]) if body.get("resolved_at") else "now"
        opened = f" (opened {_when(body['opened_at'])})" if body.get("opened_at") else ""
        lines.append(f"*Resolved:* {when}{opened}")
    elif body.get("opened_at") and kind is not Kind.TEST:
        lines.append(f"*Open since:* {_when(body['opened_at'])}")
    if kind is not Kind.RESOLVED and kind is not Kind.TEST:
        if body.get("state") == "approved":
            lines.append("*Approved:* no alerts until Git or the live policy changes again")
        occurred = _timestamp(body.get("occurred_at"))
        snooze = active_snooze(body, occurred) if occurred is not None else None
        if snooze is not None:
            lines.append(f"*Snoozed until:* {_when(snooze.get('until'))}")
    return "\n".join(lines)


def _timestamp(value: object) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _actions(body: Mapping[str, Any]) -> str | None:
    """The latest actions, a line each (when, who did what)."""
    recorded = actions_of(body)[-MAX_ACTIONS_SHOWN:]
    if not recorded:
        return None
    lines = [f"• {_when(a.get('at'))}: {_esc(one_line(describe(a)))}" for a in recorded]
    return cut("\n".join(["*Actions:*", *lines]), MAX_SECTION)


def _buttons(notification: Notification) -> dict[str, Any]:
    """The incident's buttons (an ``actions`` block), each with the incident id."""
    iid = notification.incident_id

    def button(action_id: str, text: str, **more: Any) -> dict[str, Any]:
        label = {"type": "plain_text", "text": text}
        return {"type": "button", "action_id": action_id, "text": label, "value": iid, **more}

    confirm = {
        "title": {"type": "plain_text", "text": "Revert to Git?"},
        "text": {
            "type": "plain_text",
            "text": cut(f"Put {_policy(notification.body)} back to its version in Git.", 300),
        },
        "confirm": {"type": "plain_text", "text": "Revert"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    elements = [button(BUTTON_REVERT, "Revert to Git", style="danger", confirm=confirm)]
    if notification.body.get("state") != "approved":
        elements.append(button(BUTTON_APPROVE, "Approve live", style="primary"))
    elements.append(button(BUTTON_SNOOZE_4H, "Snooze 4h"))
    return {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": elements}


def _finding(finding: object) -> str:
    """One finding as a bullet line (not cut)."""
    if isinstance(finding, Mapping):
        return (
            f"• *{_esc(finding.get('severity') or '?')}* `{_esc(finding.get('rule') or '?')}`"
            f": {_esc(one_line(finding.get('message')))}"
        )
    return f"• {_esc(one_line(finding))}"


def _findings(findings: Sequence[Any]) -> str:
    head = f"*Findings ({len(findings)}):*"
    lines: list[str] = []
    size = len(head)
    for finding in findings[:MAX_FINDINGS]:
        text = cut(_finding(finding), 500)
        if size + len(text) + 1 > MAX_SECTION - 40:  # room for "... and N more"
            break
        lines.append(text)
        size += len(text) + 1
    more = len(findings) - len(lines)
    if more:
        lines.append(f"… and {more} more")
    return "\n".join([head, *lines])


def _diff(diff: str) -> list[dict[str, Any]]:
    """The diff as a code block within one section; a context note when it was cut."""
    lines = diff.rstrip("\n").split("\n")
    budget = MAX_SECTION - len("```\n\n```")
    kept: list[str] = []
    size = 0
    partial = False
    for line in lines:
        text = _esc(line.replace("```", "`\u200b``"))  # no early end of the code block
        if size + len(text) + 1 > budget:
            if budget - size > 80:  # part of a long line rather than much empty space
                kept.append(cut(text, budget - size - 1))
                partial = True
            break
        kept.append(text)
        size += len(text) + 1
    blocks = [_section("```\n" + "\n".join(kept) + "\n```")]
    shown = len(kept) - partial
    if shown < len(lines):
        blocks.append(
            _context(
                f":scissors: The diff was cut to fit Slack's limits: {shown} of {len(lines)} "
                "lines shown in full. The whole diff: `driftwatch check` or the Git source."
            )
        )
    return blocks


MAX_PAIRS = 8


def _blast(body: Mapping[str, Any]) -> str | None:
    """The blast radius: what workload pairs gain or lose, a line each (the first few)."""
    radius = body.get("blast_radius")
    if not isinstance(radius, Mapping):
        return None
    pairs = [p for p in radius.get("pairs") or () if isinstance(p, Mapping)]
    if not pairs:
        if radius.get("selects_no_workload"):
            return "*Blast radius:* the policy selects no workload: no traffic moves now."
        return None
    total = sum(int(radius.get(k) or 0) for k in ("added", "removed", "changed"))
    lines = [f"*Blast radius ({total} pair{'s' if total != 1 else ''}):*"]
    for p in pairs[:MAX_PAIRS]:
        lines.append(
            f"• `{_esc(p.get('source'))}` → `{_esc(p.get('destination'))}`: "
            f"{_esc(p.get('ref1'))} ⇒ *{_esc(p.get('ref2'))}*"
        )
    if total > MAX_PAIRS:
        lines.append(f"_and {total - MAX_PAIRS} more_")
    return cut("\n".join(lines), MAX_SECTION)


def _source(body: Mapping[str, Any]) -> str | None:
    source = body.get("desired_source")
    where = None
    if isinstance(source, Mapping) and source.get("path"):
        where = str(source["path"])
        if source.get("line"):
            where += f":{source['line']}"
        if source.get("commit"):
            where += f"@{str(source['commit'])[:12]}"
    link = body.get("link")
    if link:
        return f"*Git:* <{_esc(str(link).replace('|', '%7C'))}|{_esc(where or 'source')}>"
    return f"*Git:* `{_esc(where)}`" if where else None


def _change(body: Mapping[str, Any], kind: Kind) -> str | None:
    change = body.get("live_change")
    if not isinstance(change, Mapping) or not change.get("manager"):
        return None
    label = "Fixed by" if kind is Kind.RESOLVED else "Changed by"
    text = f"*{label}:* `{_esc(change['manager'])}`"
    if change.get("operation"):
        text += f" ({_esc(change['operation'])})"
    if change.get("time"):
        text += f" at {_when(change['time'])}"
    return text


def render(
    notification: Notification, *, reply: bool = False, buttons: bool = False
) -> SlackMessage:
    """The message for ``notification``: the top-level one (also what a parent is edited
    to), or with ``reply`` the reply in the incident's thread (shorter: an update's new
    findings and diff; a reminder's or resolve's reason and state). ``buttons``: an open
    incident's top-level message ends with its buttons."""
    body, kind = notification.body, notification.kind
    icon, title = _title(body, kind, reply=reply)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": cut(f"{icon} {title}", MAX_HEADER)},
        }
    ]
    if kind is Kind.TEST:
        blocks.append(
            _section(
                "*This is a test message* from `driftwatch notify test` "
                f"(receiver `{_esc(notification.receiver)}`): it is about no real incident."
            )
        )
    blocks.append(_section(_state(body, kind)))
    if not reply or kind is Kind.UPDATED:
        if body.get("findings"):
            blocks.append(_section(_findings(list(body["findings"]))))
        if (radius := _blast(body)) is not None:
            blocks.append(_section(radius))
        if str(body.get("diff") or "").strip():
            blocks += _diff(str(body["diff"]))
    details = [t for t in (_source(body), _change(body, kind)) if t]
    if details:
        blocks.append(_section("\n".join(details)))
    if not reply and (done := _actions(body)) is not None:
        blocks.append(_section(done))
    cluster = f" · cluster `{_esc(body['cluster'])}`" if body.get("cluster") else ""
    context = _context(f"driftwatch {kind} · incident `{_esc(notification.incident_id)}`{cluster}")
    open_incident = kind not in (Kind.RESOLVED, Kind.TEST) and body.get("state") != "resolved"
    if buttons and not reply and open_incident:
        blocks = [*blocks[: MAX_BLOCKS - 2], _buttons(notification)]
    blocks.append(context)
    reason = one_line(body.get("reason"))
    text = cut(_esc(f"{title}: {reason}" if reason else title), MAX_FALLBACK)
    metadata = {
        "event_type": EVENT_TYPE,
        "event_payload": {"incident_id": notification.incident_id, "kind": str(kind)},
    }
    return SlackMessage(text, blocks[:MAX_BLOCKS], metadata)


# -- batches --------------------------------------------------------------------------------


def _leading(body: Mapping[str, Any]) -> str:
    """The most severe finding (the first of equals) as one line, with how many more; the
    reason when there are none."""
    findings = body.get("findings")
    if not isinstance(findings, Sequence) or isinstance(findings, str) or not findings:
        reason = one_line(body.get("reason"))
        return f"*Reason:* {_esc(reason)}" if reason else ""
    lead = max(findings, key=lambda f: _rank(f.get("severity")) if isinstance(f, Mapping) else -1)
    more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
    return cut(_finding(lead), 250 - len(more)) + more


def _entry(notification: Notification) -> str:
    """One incident of a batch, at most :data:`MAX_BATCH_ENTRY` characters: severity,
    ``namespace/name`` and state, its leading finding, the Git source (left out rather
    than cut), its id (never left out)."""
    body = notification.body
    severity = str(body.get("severity") or "")
    head = f"{_icon(severity)} *{_esc(severity.upper() or 'NO SEVERITY')}* `{_esc(_policy(body))}`"
    if body.get("status"):
        head += f" · {_esc(body['status'])}"
    head = cut(head, 200)
    incident = f"incident `{cut(_esc(notification.incident_id), 150)}`"
    room = MAX_BATCH_ENTRY - len(head) - len(incident) - 3  # the line breaks
    lead = cut(_leading(body), min(room, 250))
    source = _source(body) or ""
    if len(source) > room - len(lead) - 1:
        source = ""
    return "\n".join(line for line in (head, lead, source, incident) if line)


def _pack(entries: Sequence[str], room: int) -> tuple[list[str], int]:
    """``entries`` as at most ``room`` section texts, one each when they fit, else several
    to a section; and how many entries were left out."""
    if len(entries) <= room:
        return list(entries), 0
    sections: list[str] = []
    shown = 0
    for entry in entries:
        if sections and len(sections[-1]) + 2 + len(entry) <= MAX_SECTION:
            sections[-1] += "\n\n" + entry
        elif len(sections) < room:
            sections.append(entry)
        else:
            break
        shown += 1
    return sections, len(entries) - shown


def render_batch(batch: Batch, *, threaded: bool = True) -> SlackMessage:
    """One message announcing every incident of ``batch`` (all ``opened``), most severe
    first. ``threaded``: the incidents' later notifications reply in this message's thread
    (the Web API), else they come as messages of their own (an incoming webhook)."""
    notes = sorted(batch.notifications, key=lambda n: -_rank(n.body.get("severity")))
    top = str(notes[0].body.get("severity") or "") if notes else ""
    count = len(notes)
    title = f"{count} NetworkPolicy drift{'' if count == 1 else 's'} opened"
    if top:
        title += f" · highest {top.upper()}"
    later = (
        "Each incident's later changes are replies in this message's thread."
        if threaded
        else "Each incident's later changes follow as messages of their own."
    )
    clusters = sorted({str(n.body["cluster"]) for n in notes if n.body.get("cluster")})
    where = f"Cluster {', '.join(f'`{_esc(c)}`' for c in clusters)} · " if clusters else ""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": cut(f"{_icon(top)} {title}", MAX_HEADER)},
        },
        _context(f"{where}{later} The diffs: `driftwatch check` or the Git source."),
    ]
    sections, left_out = _pack([_entry(n) for n in notes], MAX_BLOCKS - 4)
    blocks += [_section(text) for text in sections]
    if left_out:
        blocks.append(
            _context(f":scissors: … and {left_out} more, not shown to fit Slack's limits.")
        )
    blocks.append(_context(f"driftwatch opened · batch `{_esc(batch.id)}` · {count} incidents"))
    policies = ", ".join(_policy(n.body) for n in notes)
    text = cut(_esc(one_line(f"{title}: {policies}")), MAX_FALLBACK)
    metadata = {
        "event_type": BATCH_EVENT_TYPE,
        "event_payload": {
            "batch_id": batch.id,
            "kind": str(Kind.OPENED),
            "incidents": [{"incident_id": n.incident_id} for n in batch.notifications],
        },
    }
    return SlackMessage(text, blocks, metadata)
