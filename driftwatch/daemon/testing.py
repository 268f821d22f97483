"""Public fakes for testing code that drives the daemon (as ``structlog.testing`` does).

``RecordingNotifier`` keeps every event it is sent and lets a test wait for the ones it
expects, without sleeping for a fixed time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from driftwatch.daemon.run import Daemon
from driftwatch.drift import DriftEvent, EventKind

__all__ = ["RecordingNotifier", "start_until_ready"]


class RecordingNotifier:
    """A notifier that records events; ``await rec.wait_for(...)`` until they arrived."""

    def __init__(self, name: str = "recording") -> None:
        self.name = name
        self.events: list[DriftEvent] = []
        self._changed = asyncio.Condition()

    async def send(self, event: DriftEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def of(self, kind: EventKind | None = None, name: str | None = None) -> list[DriftEvent]:
        """The events of one kind and/or one policy name, in order."""
        return [
            e
            for e in self.events
            if (kind is None or e.kind is kind) and (name is None or e.key.name == name)
        ]

    async def wait_until(
        self, predicate: Callable[[list[DriftEvent]], bool], timeout: float = 10.0
    ) -> None:
        """Wait until ``predicate(events)`` holds; ``TimeoutError`` after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.events))

    async def wait_for(
        self, kind: EventKind, name: str, count: int = 1, timeout: float = 10.0
    ) -> DriftEvent:
        """The ``count``-th event of ``kind`` for policy ``name``, once it has arrived."""
        await self.wait_until(lambda _: len(self.of(kind, name)) >= count, timeout)
        return self.of(kind, name)[count - 1]


async def start_until_ready(daemon: Daemon, timeout: float = 30.0) -> asyncio.Task[None]:
    """Start ``daemon.run()`` and return its task once the daemon is ready; raise what the
    run raised if it ended first, ``TimeoutError`` if it is not ready in ``timeout`` s."""
    task = asyncio.create_task(daemon.run(), name="daemon")
    ready = asyncio.create_task(daemon.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=timeout, return_when="FIRST_COMPLETED")
    if task in done:
        ready.cancel()
        task.result()
        raise RuntimeError("the daemon stopped before it was ready")
    if ready not in done:
        ready.cancel()
        daemon.stop("not ready in time")
        await asyncio.wait({task}, timeout=10)
        raise TimeoutError(f"the daemon was not ready within {timeout:g} s")
    return task
