"""The console notifier: every drift event on the terminal (or as JSON lines).

What ``driftwatch run`` prints with no other receiver configured, and what the demo shows.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Literal

from driftwatch.drift import DriftEvent, EventKind, event_json
from driftwatch.policy import Provenance
from driftwatch.rules import Severity

__all__ = ["ConsoleNotifier", "render_event"]

_SEVERITY_COLOURS = {
    Severity.CRITICAL: "\033[1;97;41m",
    Severity.HIGH: "\033[1;31m",
    Severity.MEDIUM: "\033[33m",
    Severity.LOW: "\033[36m",
    Severity.INFO: "\033[2m",
}
_KIND_COLOURS = {
    EventKind.OPENED: "\033[1;31m",
    EventKind.UPDATED: "\033[1;33m",
    EventKind.RESOLVED: "\033[1;32m",
}
_RESET = "\033[0m"
_DIFF_LINES = 40


def _source_text(source: Provenance | None, link: str | None) -> str | None:
    if source is None:
        return None
    text = f"{source.path}:{source.line}"
    if source.commit:
        text += f" @ {source.commit[:12]}"
    return f"{text}  {link}" if link else text


def render_event(
    event: DriftEvent,
    *,
    colour: bool = False,
    link: Callable[[Provenance | None], str | None] = lambda _: None,
    now: datetime | None = None,
) -> str:
    """The event as a few lines of text: headline, who changed the live policy, findings,
    where the policy is in Git, and (for ``opened``/``updated``) the diff."""

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if colour else text

    drift = event.drift
    key = drift.key
    when = (now or datetime.now(UTC)).strftime("%H:%M:%S")
    kind = paint(_KIND_COLOURS[event.kind], f"{event.kind.upper():<8}")
    where = f"{key.cluster}/{key.namespace}/{key.name}"
    if event.kind is EventKind.RESOLVED:
        lines = [f"{when}  {kind} {where}: {event.reason}"]
    else:
        severity = "-" if drift.severity is None else str(drift.severity)
        code = "" if drift.severity is None else _SEVERITY_COLOURS[drift.severity]
        sev = paint(code, f"{severity:<8}")
        lines = [f"{when}  {kind} {sev} {where}: {event.reason}"]
    pad = " " * 10
    if event.origin is not None and event.origin.manager:
        lines.append(f"{pad}{event.origin.describe()}")
    if event.kind is not EventKind.RESOLVED:
        for finding in drift.findings:
            label = paint(_SEVERITY_COLOURS[finding.severity], str(finding.severity))
            lines.append(f"{pad}{label} {finding.rule}: {finding.message}")
    source = _source_text(drift.source, link(drift.source))
    if source:
        lines.append(f"{pad}Git: {source}")
    if event.kind is not EventKind.RESOLVED and drift.diff:
        diff = drift.diff.splitlines()
        shown = diff[:_DIFF_LINES]
        for text in shown:
            if colour and text.startswith(("+", "-")) and not text.startswith(("+++", "---")):
                text = paint("\033[32m" if text.startswith("+") else "\033[31m", text)  # noqa: PLW2901 - painted in place
            lines.append(f"{pad}{text}")
        if len(diff) > len(shown):
            lines.append(f"{pad}... {len(diff) - len(shown)} more diff lines")
    return "\n".join(lines)


class ConsoleNotifier:
    """Writes each event to ``stream``: ``text`` (coloured on a terminal unless
    ``NO_COLOR``), or ``json``, one object per line (see ``driftwatch.drift.event_json``)."""

    name = "console"

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        fmt: Literal["text", "json"] = "text",
        colour: bool | None = None,
        link: Callable[[Provenance | None], str | None] = lambda _: None,
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._fmt = fmt
        if colour is None:
            isatty = getattr(self._stream, "isatty", None)
            colour = bool(isatty and isatty()) and "NO_COLOR" not in os.environ
        self._colour = colour
        self._link = link

    async def send(self, event: DriftEvent) -> None:
        if self._fmt == "json":
            body = event_json(event)
            body["drift"]["source_link"] = self._link(event.drift.source)
            text = json.dumps(body, separators=(",", ":"))
        else:
            text = render_event(event, colour=self._colour, link=self._link) + "\n"
        self._stream.write(text + "\n")
        self._stream.flush()
