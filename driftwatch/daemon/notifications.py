"""The daemon's notification side: the incident store, the receivers, the routes, the
pipeline that turns drift events into incidents, and the outbox that delivers them.

Built from the settings once, at start; its two tasks (``outbox``, ``reminders``) run under
the daemon's supervisor like the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp

from driftwatch.drift import Drift, DriftEvent
from driftwatch.incidents import IncidentStore, SqliteStore, default_state_path
from driftwatch.notify.model import Receiver, ReceiverContext
from driftwatch.notify.outbox import Outbox, OutcomeHook
from driftwatch.notify.pipeline import Pipeline
from driftwatch.notify.registry import receiver_types
from driftwatch.notify.routing import Router
from driftwatch.policy import PolicyKey
from driftwatch.settings import Settings, render_link

__all__ = ["IncidentNotifier", "Notifications", "build_receivers"]


def build_receivers(
    settings: Settings, session: aiohttp.ClientSession, *, timeout: float = 10.0
) -> dict[str, Receiver]:
    """One receiver per ``notifiers:`` entry, in configuration order."""
    types = receiver_types()
    context = ReceiverContext(session=session, timeout=timeout)
    return {n.name: types[n.type].build(n.name, n.config, context) for n in settings.notifiers}


class IncidentNotifier:
    """The daemon's notifier: each drift event moves its key's incident.

    With high availability it is a gate: only while :attr:`active` (set by the leader's
    catch-up) and ``gate()`` (still leading) are events recorded; a follower drops them,
    since the leader records them in the shared store."""

    name = "incidents"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.active = True
        self.gate: Callable[[], bool] | None = None

    @property
    def recording(self) -> bool:
        return self.active and (self.gate is None or self.gate())

    async def send(self, event: DriftEvent) -> None:
        if self.recording:
            await self.pipeline.handle(event)


class Notifications:
    """Store, receivers, pipeline and outbox of one daemon. Use :meth:`open`."""

    def __init__(
        self,
        store: IncidentStore,
        receivers: Mapping[str, Receiver],
        pipeline: Pipeline,
        outbox: Outbox,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self.store = store
        self.receivers = dict(receivers)
        self.pipeline = pipeline
        self.outbox = outbox
        self.notifier = IncidentNotifier(pipeline)
        self._session = session
        self._open = True

    @property
    def is_open(self) -> bool:
        """Whether the store is open (until :meth:`close`): part of readiness."""
        return self._open

    def observe(self, on_outcome: OutcomeHook) -> None:
        """Also tell ``on_outcome`` every delivery attempt's outcome (metrics)."""
        earlier = self.outbox.on_outcome
        if earlier is None:
            self.outbox.on_outcome = on_outcome
            return

        def both(receiver: str, outcome: str) -> None:
            earlier(receiver, outcome)
            on_outcome(receiver, outcome)

        self.outbox.on_outcome = both

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        log: Any,
        receivers: Mapping[str, Receiver] | None = None,
        store: IncidentStore | None = None,
        on_outcome: OutcomeHook | None = None,
    ) -> Notifications:
        """Open the store and build the receivers (``receivers``/``store``: instead of the
        configured ones, for tests and embedders); ``on_outcome``: see :meth:`observe`."""
        session = None
        if receivers is None:
            session = aiohttp.ClientSession()
            receivers = build_receivers(settings, session)
        if store is None:
            path = settings.state.path or default_state_path()
            store = await SqliteStore(path).open()
        router = Router(
            tuple(r.to_route() for r in settings.routes),
            tuple(receivers),
            tuple(s.to_silence() for s in settings.silences),
        )
        limits = {n.name: n.limits() for n in settings.notifiers}
        group_wait = settings.group_waits()
        outbox = Outbox(
            store,
            receivers,
            log=log,
            limits=limits,
            group_wait=group_wait,
            on_outcome=on_outcome,
        )
        template = settings.link_template

        def link(drift: Drift) -> str | None:
            return render_link(template, drift.source) if template else None

        pipeline = Pipeline(
            store,
            router,
            link=link,
            repeat_interval=settings.repeat_interval,
            group_wait=group_wait,
            wake=outbox.wake,
            log=log,
        )
        return cls(store, receivers, pipeline, outbox, session)

    def secrets(self) -> frozenset[str]:
        """Every secret the receivers hold (for the log redactor)."""
        return frozenset(s for r in self.receivers.values() for s in r.secrets() if s)

    async def outbox_task(self) -> None:
        await self.outbox.run()

    async def reminder_task(self, every: float = 60.0) -> None:
        """Look for incidents due a reminder every ``every`` seconds (at most a tenth of
        ``repeat_interval``); with reminders disabled, only for snoozes that ended."""
        repeat = self.pipeline.repeat_interval
        step = min(every, max(0.05, repeat / 10)) if repeat > 0 else every
        while True:
            await asyncio.sleep(step)
            await self.pipeline.remind()

    async def reconcile(self, open_keys: Iterable[PolicyKey]) -> None:
        await self.pipeline.reconcile(open_keys)

    async def close(self) -> None:
        self._open = False
        for receiver in self.receivers.values():
            with contextlib.suppress(Exception):
                await receiver.close()
        if self._session is not None:
            await self._session.close()
        await self.store.close()
