"""The ``console`` receiver: one readable block (or one JSON line) per notification on
stdout, for the demo, for trying a configuration, and for piping into other tools.

A batch (``group_wait``: several incidents opened together) is written at once: in the
``text`` format a line ``== N incidents opened ==`` and each incident's block; in the
``json`` format one incident body per line, as if they had come one by one."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict

from driftwatch.notify.model import Batch, Notification, Outcome, ReceiverContext, ReceiverType

__all__ = ["RECEIVER", "ConsoleConfig", "ConsoleReceiver", "render", "render_batch"]


class ConsoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["text", "json"] = "text"
    """``text``: a few lines per notification; ``json``: the incident body, one per line."""


def render(body: dict[str, Any]) -> str:
    """``[HIGH] drift.opened shop/web (prod/shop/web#1): <reason>`` and the findings."""
    severity = (body.get("severity") or "none").upper()
    lines = [
        f"[{severity}] {body['type']} {body['namespace']}/{body['name']} "
        f"({body['incident_id']}): {body.get('reason') or ''}".rstrip(": ")
    ]
    lines += [f"  - [{f['severity']}] {f['rule']}: {f['message']}" for f in body["findings"]]
    if body.get("link"):
        lines.append(f"  git: {body['link']}")
    return "\n".join(lines)


def render_batch(bodies: list[dict[str, Any]]) -> str:
    """``== 3 incidents opened ==`` and each incident's :func:`render`."""
    count = len(bodies)
    head = f"== {count} incident{'' if count == 1 else 's'} opened =="
    return "\n".join([head, *(render(body) for body in bodies)])


class ConsoleReceiver:
    def __init__(self, name: str, config: ConsoleConfig, stream: IO[str] | None = None) -> None:
        self.name = name
        self.config = config
        self._stream = stream

    async def deliver(self, notification: Notification) -> Outcome:
        body = dict(notification.body)
        return self._write(json.dumps(body) if self.config.format == "json" else render(body))

    async def deliver_batch(self, batch: Batch) -> Outcome:
        """Every incident of ``batch`` in one write (see the module's docstring)."""
        bodies = [dict(n.body) for n in batch.notifications]
        if self.config.format == "json":
            return self._write("\n".join(json.dumps(body) for body in bodies))
        return self._write(render_batch(bodies))

    def _write(self, text: str) -> Outcome:
        stream = self._stream or sys.stdout
        try:
            stream.write(text + "\n")
            stream.flush()
        except OSError as e:  # a closed pipe: nobody will read it later either
            return Outcome.fail(f"cannot write to the console: {e.strerror}")
        return Outcome.ok()

    async def close(self) -> None:
        return None

    def secrets(self) -> Iterable[str]:
        return ()


def _build(name: str, config: Any, context: ReceiverContext) -> ConsoleReceiver:
    return ConsoleReceiver(name, config)


RECEIVER = ReceiverType("console", ConsoleConfig, _build, batches=True)
