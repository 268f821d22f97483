"""The daemon child: ``python -m driftwatch.bench.daemon_proc SETTINGS.json``.

Builds the daemon as ``driftwatch run`` does with receivers configured (the SQLite store,
the pipeline, the durable outbox, JSON logs, here to ``/dev/null``), and notes
``time.perf_counter()`` each time the pipeline has recorded an event (incident saved and
notification enqueued). Prints ``{"pid"}``, then ``{"run_start", "ready_at"}`` once in sync;
answers ``stats`` (``{"handled", "last_handled", "rss_mb"}``), ``profile-start`` and
``profile-stop PATH`` (cProfile of this thread, written as pstats to PATH), one line each;
stops when stdin closes.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import sys
import time
from pathlib import Path

import structlog

from driftwatch.bench.procs import read_commands, say, vm_hwm_mb
from driftwatch.daemon.logs import configure_logging
from driftwatch.daemon.notifications import IncidentNotifier, Notifications
from driftwatch.daemon.run import Daemon
from driftwatch.drift import DriftEvent
from driftwatch.settings import Settings

__all__ = ["CountingNotifier", "main"]


class CountingNotifier(IncidentNotifier):
    """The daemon's incident notifier, noting when each event was fully recorded."""

    def __init__(self, inner: IncidentNotifier) -> None:
        super().__init__(inner.pipeline)
        self.handled: list[float] = []

    async def send(self, event: DriftEvent) -> None:
        await super().send(event)
        self.handled.append(time.perf_counter())


async def _run(settings: Settings) -> None:
    configure_logging("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115 - for the run
    log = structlog.get_logger("driftwatch")
    notifications = await Notifications.open(settings, log=log)
    counting = CountingNotifier(notifications.notifier)
    notifications.notifier = counting
    daemon = Daemon(settings, notifiers=[], notifications=notifications, log=log)
    say({"pid": os.getpid()})
    run_start = time.perf_counter()
    task = asyncio.create_task(daemon.run())
    ready = asyncio.create_task(daemon.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises what the run raised
        return
    say({"run_start": run_start, "ready_at": time.perf_counter()})
    profiler = cProfile.Profile()

    async def command(line: str) -> None:
        if line == "stats":
            last = counting.handled[-1] if counting.handled else 0.0
            say({"handled": len(counting.handled), "last_handled": last, "rss_mb": vm_hwm_mb()})
        elif line == "profile-start":
            profiler.enable()
            say({"profiling": True})
        elif line.startswith("profile-stop "):
            profiler.disable()
            profiler.dump_stats(line.split(" ", 1)[1])
            say({"profiling": False})

    try:
        await read_commands(command)
    finally:
        daemon.stop()
        await asyncio.wait_for(task, timeout=10)
        await notifications.close()


def main() -> None:
    settings = Settings.model_validate(json.loads(Path(sys.argv[1]).read_text()))
    asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
