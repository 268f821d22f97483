"""Slack messages for incidents: Block Kit within Slack's limits (50 blocks, header 150 and
section 3,000 characters), with a one-line ``text`` fallback and ``metadata``.

The parent shows severity and ``namespace/name``, reason and state, findings, the diff in a
code block (cut, with a note), the Git source, who changed the live policy and when, and the
incident id; thread replies are shorter. Pure: no I/O (see :mod:`driftwatch.notify.slack`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from driftwatch.notify.model import Kind, Notification

__all__ = [
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
]

MAX_BLOCKS, MAX_HEADER, MAX_SECTION = 50, 150, 3000
"""Slack's limits: blocks in a message, characters in a header and in a section's text."""
MAX_FINDINGS = 10
MAX_FALLBACK = 300
"""The ``text`` fallback (notifications, screen readers) is one line of at most this."""
EVENT_TYPE = "driftwatch_incident"


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


def _title(body: Mapping[str, Any], kind: Kind, *, reply: bool) -> tuple[str, str]:
    """The header's emoji and its text (the text also starts the fallback)."""
    policy = f"{body.get('namespace') or '?'}/{body.get('name') or '?'}"
    severity = str(body.get("severity") or "")
    label = f"{severity.upper()} drift" if severity else "Drift"
    icon = ":rotating_light:" if severity in ("critical", "high") else ":warning:"
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
    return "\n".join(lines)


def _findings(findings: Sequence[Any]) -> str:
    head = f"*Findings ({len(findings)}):*"
    lines: list[str] = []
    size = len(head)
    for finding in findings[:MAX_FINDINGS]:
        if isinstance(finding, Mapping):
            text = (
                f"• *{_esc(finding.get('severity') or '?')}* `{_esc(finding.get('rule') or '?')}`"
                f": {_esc(one_line(finding.get('message')))}"
            )
        else:
            text = f"• {_esc(one_line(finding))}"
        text = cut(text, 500)
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


def render(notification: Notification, *, reply: bool = False) -> SlackMessage:
    """The message for ``notification``: the top-level one (also what a parent is edited
    to), or with ``reply`` the reply in the incident's thread (shorter: an update's new
    findings and diff; a reminder's or resolve's reason and state)."""
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
        if str(body.get("diff") or "").strip():
            blocks += _diff(str(body["diff"]))
    details = [t for t in (_source(body), _change(body, kind)) if t]
    if details:
        blocks.append(_section("\n".join(details)))
    cluster = f" · cluster `{_esc(body['cluster'])}`" if body.get("cluster") else ""
    blocks.append(
        _context(f"driftwatch {kind} · incident `{_esc(notification.incident_id)}`{cluster}")
    )
    reason = one_line(body.get("reason"))
    text = cut(_esc(f"{title}: {reason}" if reason else title), MAX_FALLBACK)
    metadata = {
        "event_type": EVENT_TYPE,
        "event_payload": {"incident_id": notification.incident_id, "kind": str(kind)},
    }
    return SlackMessage(text, blocks[:MAX_BLOCKS], metadata)
