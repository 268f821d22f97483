"""Root tasks of the daemon: start together, stop together, never hang (in the style of kopf).

A :class:`Supervisor` runs named root tasks (the watcher, the Git poller, the notifier,
...). Stop conditions:

- a task **raises**: the others are cancelled and ``run()`` raises
  :class:`TaskFailed` naming it (``raise ... from`` the task's exception). A root task
  cancelled by someone other than the supervisor counts as failed too;
- a task added with ``daemon=True`` (the default) **returns**: the others are cancelled
  and ``run()`` returns normally. A task added with ``daemon=False`` is one-shot: its
  return stops nothing (it may still fail);
- :meth:`Supervisor.stop` is called (e.g. by the signal handlers of
  :func:`install_signal_handlers`): everything is cancelled and ``run()`` returns.
  Calling it again while stopping stops waiting for the tasks at once;
- every task has ended.

Stopping cancels every remaining task and waits at most ``grace`` seconds for them. A
task still running then (it swallowed the cancellation) is cancelled once more, logged
as an error and abandoned: ``run()`` returns or raises anyway, and the task's name is in
:attr:`Supervisor.abandoned`. (``asyncio.run`` cancels leftover tasks again when the loop
closes and waits for them; an entry point that must exit even then can check
``abandoned`` and leave with ``os._exit``.) Exceptions raised while stopping are logged,
never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

__all__ = [
    "Logger",
    "Supervisor",
    "TaskFailed",
    "install_signal_handlers",
    "stop_on_signals",
]

TaskFactory = Callable[[], Awaitable[object]]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Logger(Protocol):
    """What the supervisor logs with (a structlog logger)."""

    def debug(self, event: str, **kw: Any) -> Any: ...
    def info(self, event: str, **kw: Any) -> Any: ...
    def warning(self, event: str, **kw: Any) -> Any: ...
    def error(self, event: str, **kw: Any) -> Any: ...


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TaskFailed(Exception):
    """A root task raised: ``str()`` names the task and the reason; ``__cause__`` is ``exc``."""

    def __init__(self, name: str, exc: BaseException) -> None:
        super().__init__(f"task {name!r} failed: {_reason(exc)}")
        self.name = name
        self.exc = exc


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    factory: TaskFactory
    daemon: bool


def _outcome(task: asyncio.Task[object]) -> BaseException | None:
    """The exception that ended a done task (CancelledError when cancelled), or None."""
    return asyncio.CancelledError() if task.cancelled() else task.exception()


async def _call(factory: TaskFactory) -> object:
    return await factory()  # a factory that raises fails its task, not run()


class Supervisor:
    """Named root tasks that start together and stop together; see the module docstring."""

    def __init__(self, grace: float = 5.0, log: Logger | None = None) -> None:
        if grace < 0:
            raise ValueError("grace must be 0 or more seconds")
        self.grace = grace
        """Seconds to wait for cancelled tasks before abandoning them."""
        self._log: Logger = log if log is not None else structlog.get_logger(__name__)
        self._entries: list[_Entry] = []
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._started = False
        self._abandoned: tuple[str, ...] = ()

    @property
    def abandoned(self) -> tuple[str, ...]:
        """Names of the tasks that ignored cancellation for longer than ``grace``."""
        return self._abandoned

    def add(self, name: str, factory: TaskFactory, *, daemon: bool = True) -> None:
        """Run ``factory()`` as root task ``name`` (``daemon=False``: may return early)."""
        if self._started:
            raise RuntimeError("add tasks before run()")
        if any(e.name == name for e in self._entries):
            raise ValueError(f"a task named {name!r} is already added")
        self._entries.append(_Entry(name, factory, daemon))

    def stop(self, reason: str = "stop requested") -> None:
        """Cancel every task; ``run()`` then returns. Again while stopping: stop waiting.

        Call from the event loop's thread (signal handlers installed with
        :func:`install_signal_handlers` are). Before ``run()``, ``run()`` starts nothing.
        """
        if not self._stop.is_set():
            self._log.info("stopping", reason=reason)
            self._stop.set()
        elif self._started and not self._force.is_set():
            self._log.warning("stopping now, not waiting for tasks", reason=reason)
            self._force.set()

    async def run(self) -> None:
        """Run every task until a stop condition; raise TaskFailed if one failed."""
        if self._started:
            raise RuntimeError("a Supervisor runs once")
        self._started = True
        if self._stop.is_set():
            return
        order = {e.name: i for i, e in enumerate(self._entries)}
        tasks = {asyncio.create_task(_call(e.factory), name=e.name): e for e in self._entries}
        pending = set(tasks)
        stopper = asyncio.create_task(self._stop.wait(), name="supervisor-stop")
        failure: tuple[str, BaseException] | None = None
        try:
            while pending and failure is None and not self._stop.is_set():
                done, _ = await asyncio.wait(
                    {*pending, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in sorted(done - {stopper}, key=lambda t: order[t.get_name()]):
                    pending.discard(task)
                    name, exc = task.get_name(), _outcome(task)
                    if exc is not None:
                        self._log.error("task failed", task=name, exc_info=exc)
                        failure = failure or (name, exc)
                    elif tasks[task].daemon:
                        self.stop(f"task {name!r} finished")
                    else:
                        self._log.debug("one-shot task finished", task=name)
        finally:
            stopper.cancel()
            await self._shutdown(pending)
        if failure is not None:
            raise TaskFailed(*failure) from failure[1]

    async def _shutdown(self, pending: set[asyncio.Task[object]]) -> None:
        for task in pending:
            task.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        forcer = asyncio.create_task(self._force.wait(), name="supervisor-force")
        try:
            while pending and not self._force.is_set():
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                done, _ = await asyncio.wait(
                    {*pending, forcer}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done - {forcer}:
                    pending.discard(task)
                    exc = _outcome(task)
                    if exc is not None and not isinstance(exc, asyncio.CancelledError):
                        self._log.error(
                            "task failed while stopping", task=task.get_name(), exc_info=exc
                        )
        finally:
            forcer.cancel()
        for task in pending:
            task.cancel()
            task.add_done_callback(self._late)
            self._log.error(
                "task did not stop in time; abandoned", task=task.get_name(), grace=self.grace
            )
        self._abandoned = tuple(sorted(t.get_name() for t in pending))

    def _late(self, task: asyncio.Task[object]) -> None:
        exc = _outcome(task)
        reason = "returned" if exc is None else _reason(exc)
        self._log.warning("abandoned task ended", task=task.get_name(), reason=reason)


def install_signal_handlers(
    supervisor: Supervisor, signals: Iterable[signal.Signals] = STOP_SIGNALS
) -> Callable[[], None]:
    """Make ``signals`` (SIGINT, SIGTERM) call ``supervisor.stop()`` on the running loop.

    Unix only (``loop.add_signal_handler``). Returns a function removing the handlers.
    """
    loop = asyncio.get_running_loop()
    chosen = tuple(signals)
    for sig in chosen:
        loop.add_signal_handler(sig, supervisor.stop, f"received {sig.name}")

    def remove() -> None:
        for sig in chosen:
            loop.remove_signal_handler(sig)

    return remove


@contextlib.contextmanager
def stop_on_signals(
    supervisor: Supervisor, signals: Iterable[signal.Signals] = STOP_SIGNALS
) -> Iterator[None]:
    """``with stop_on_signals(sup): await sup.run()``: the handlers, removed on exit."""
    remove = install_signal_handlers(supervisor, signals)
    try:
        yield
    finally:
        remove()
