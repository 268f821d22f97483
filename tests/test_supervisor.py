"""The daemon's task supervisor: fail together, stop together, within the grace period."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from driftwatch.daemon import Supervisor, TaskFailed, install_signal_handlers, stop_on_signals

EPSILON = 0.25  # scheduling slack on a loaded CI machine


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(main())  # type: ignore[arg-type]


class Probe:
    """A task that runs until cancelled and records what happened to it."""

    def __init__(self) -> None:
        self.started = False
        self.cancelled = False

    async def __call__(self) -> None:
        self.started = True
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def fail_after(delay: float, exc: BaseException) -> None:
    await asyncio.sleep(delay)
    raise exc


def events(logs: Sequence[Mapping[str, Any]], level: str | None = None) -> list[str]:
    return [e["event"] for e in logs if level is None or e["log_level"] == level]


# --- failure ----------------------------------------------------------------------------


def test_first_failure_cancels_the_others_and_names_the_task() -> None:
    watcher, notifier = Probe(), Probe()
    boom = RuntimeError("watch stream broke")

    async def main() -> None:
        sup = Supervisor(grace=1.0)
        sup.add("watcher", watcher)
        sup.add("git-poller", lambda: fail_after(0.02, boom))
        sup.add("notifier", notifier)
        await sup.run()

    with capture_logs() as logs, pytest.raises(TaskFailed) as info:
        run(main)
    assert str(info.value) == "task 'git-poller' failed: RuntimeError: watch stream broke"
    assert info.value.name == "git-poller"
    assert info.value.exc is boom
    assert info.value.__cause__ is boom
    assert watcher.cancelled
    assert notifier.cancelled
    failed = [e for e in logs if e["event"] == "task failed"]
    assert [(e["task"], e["exc_info"]) for e in failed] == [("git-poller", boom)]


def test_failure_without_a_message_is_named_by_its_type() -> None:
    async def main() -> None:
        sup = Supervisor()
        sup.add("x", lambda: fail_after(0, KeyError()))
        await sup.run()

    with pytest.raises(TaskFailed, match=r"^task 'x' failed: KeyError$"):
        run(main)


def test_a_factory_that_raises_fails_its_task() -> None:
    other = Probe()

    def broken() -> Awaitable[None]:
        raise ValueError("bad settings")

    async def main() -> None:
        sup = Supervisor()
        sup.add("other", other)
        sup.add("broken", broken)
        await sup.run()

    with pytest.raises(TaskFailed, match=r"^task 'broken' failed: ValueError: bad settings$"):
        run(main)
    assert other.cancelled


def test_a_root_task_cancelled_by_someone_else_is_a_failure() -> None:
    async def main() -> None:
        sup = Supervisor()
        sup.add("victim", Probe())

        async def cancel_victim() -> None:
            await asyncio.sleep(0.01)
            next(t for t in asyncio.all_tasks() if t.get_name() == "victim").cancel()

        sup.add("killer", cancel_victim, daemon=False)
        await sup.run()

    with pytest.raises(TaskFailed, match=r"^task 'victim' failed: CancelledError$"):
        run(main)


# --- normal ends ------------------------------------------------------------------------


def test_a_daemon_task_returning_stops_everything_cleanly() -> None:
    other = Probe()

    async def main() -> None:
        sup = Supervisor()
        sup.add("other", other)
        sup.add("finite", lambda: asyncio.sleep(0.01))
        await sup.run()

    with capture_logs() as logs:
        assert run(main) is None
    assert other.cancelled
    assert {"event": "stopping", "reason": "task 'finite' finished", "log_level": "info"} in logs


def test_a_one_shot_task_returning_stops_nothing() -> None:
    order: list[str] = []

    async def one_shot() -> None:
        order.append("one-shot done")

    async def daemon() -> None:
        await asyncio.sleep(0.05)
        order.append("daemon done")

    async def main() -> None:
        sup = Supervisor()
        sup.add("warm-up", one_shot, daemon=False)
        sup.add("main", daemon)
        await sup.run()

    run(main)
    assert order == ["one-shot done", "daemon done"]


def test_run_returns_when_every_one_shot_task_is_done() -> None:
    async def main() -> None:
        sup = Supervisor()
        sup.add("a", lambda: asyncio.sleep(0.01), daemon=False)
        sup.add("b", lambda: asyncio.sleep(0.02), daemon=False)
        await sup.run()
        sup_empty = Supervisor()
        await sup_empty.run()

    run(main)


def test_a_one_shot_task_may_still_fail() -> None:
    async def main() -> None:
        sup = Supervisor()
        sup.add("main", Probe())
        sup.add("warm-up", lambda: fail_after(0.01, OSError("no route")), daemon=False)
        await sup.run()

    with pytest.raises(TaskFailed, match=r"task 'warm-up' failed: OSError: no route"):
        run(main)


# --- stop() -----------------------------------------------------------------------------


def test_stop_cancels_everything_and_run_returns() -> None:
    probes = [Probe(), Probe()]

    async def main() -> float:
        sup = Supervisor(grace=5.0)
        for i, probe in enumerate(probes):
            sup.add(f"p{i}", probe)
        asyncio.get_running_loop().call_later(0.02, sup.stop)
        started = time.monotonic()
        await sup.run()
        return time.monotonic() - started

    elapsed = run(main)
    assert all(p.started and p.cancelled for p in probes)
    assert elapsed < 0.02 + EPSILON


def test_stop_before_run_starts_nothing() -> None:
    probe = Probe()

    async def main() -> None:
        sup = Supervisor()
        sup.add("p", probe)
        sup.stop()
        await sup.run()

    run(main)
    assert not probe.started


def test_errors_while_stopping_are_logged_not_raised() -> None:
    async def messy() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ValueError("cleanup failed") from None

    async def main() -> None:
        sup = Supervisor()
        sup.add("messy", messy)
        asyncio.get_running_loop().call_later(0.01, sup.stop)
        await sup.run()

    with capture_logs() as logs:
        run(main)
    [entry] = [e for e in logs if e["event"] == "task failed while stopping"]
    assert entry["task"] == "messy"
    assert str(entry["exc_info"]) == "cleanup failed"


def test_cancelling_run_cancels_the_tasks() -> None:
    probe = Probe()

    async def main() -> None:
        sup = Supervisor()
        sup.add("p", probe)
        task = asyncio.create_task(sup.run())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    assert probe.cancelled


# --- grace ------------------------------------------------------------------------------


class Stubborn:
    """Swallows every cancellation until released: the worst a task can do."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.swallowed = 0

    async def __call__(self) -> None:
        while not self.release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.swallowed += 1


GRACE = 0.3


@pytest.mark.parametrize("how", ["stop", "failure"])
def test_a_task_ignoring_cancellation_is_abandoned_after_grace(how: str) -> None:
    stubborn = Stubborn()

    async def main() -> tuple[float, Supervisor, int]:
        sup = Supervisor(grace=GRACE)
        sup.add("stubborn", stubborn)
        if how == "failure":
            sup.add("failing", lambda: fail_after(0.01, RuntimeError("x")))
        else:
            asyncio.get_running_loop().call_later(0.01, sup.stop)
        started = time.monotonic()
        try:
            # wait_for: a supervisor that hangs fails the test instead of hanging it.
            await asyncio.wait_for(sup.run(), GRACE + 5)
        except TaskFailed:
            assert how == "failure"
        finally:
            elapsed = time.monotonic() - started
            await asyncio.sleep(0.01)
            swallowed = stubborn.swallowed
            stubborn.release.set()  # let asyncio.run end: the test must not hang either
        return elapsed, sup, swallowed

    with capture_logs() as logs:
        elapsed, sup, swallowed = run(main)
    assert 0.01 + GRACE - 0.05 <= elapsed < 0.01 + GRACE + EPSILON
    assert sup.abandoned == ("stubborn",)
    # Cancelled at stop, and once more when abandoned (to interrupt a stuck cleanup).
    assert swallowed == 2
    [entry] = [e for e in logs if e["event"] == "task did not stop in time; abandoned"]
    assert (entry["task"], entry["grace"], entry["log_level"]) == ("stubborn", GRACE, "error")


def test_stop_again_while_stopping_stops_waiting() -> None:
    stubborn = Stubborn()

    async def main() -> float:
        sup = Supervisor(grace=30.0)
        sup.add("stubborn", stubborn)
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, sup.stop)
        loop.call_later(0.05, sup.stop, "second signal")
        started = time.monotonic()
        try:
            await asyncio.wait_for(sup.run(), 5)
        finally:
            stubborn.release.set()
        assert sup.abandoned == ("stubborn",)
        return time.monotonic() - started

    with capture_logs() as logs:
        elapsed = run(main)
    assert elapsed < 0.05 + EPSILON
    assert "stopping now, not waiting for tasks" in events(logs, "warning")


def test_a_task_finishing_within_grace_is_not_abandoned() -> None:
    async def slow_cleanup() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # cleanup, then end normally
            raise

    async def main() -> Supervisor:
        sup = Supervisor(grace=2.0)
        sup.add("slow", slow_cleanup)
        asyncio.get_running_loop().call_later(0.01, sup.stop)
        await sup.run()
        return sup

    with capture_logs() as logs:
        assert run(main).abandoned == ()
    assert events(logs, "error") == []


# --- signals ----------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_handlers_stop_the_supervisor(sig: signal.Signals) -> None:
    probe = Probe()

    async def send() -> None:
        await asyncio.sleep(0.02)
        os.kill(os.getpid(), sig)
        await asyncio.sleep(3600)

    async def main() -> None:
        sup = Supervisor()
        sup.add("probe", probe)
        sup.add("sender", send)
        with stop_on_signals(sup):
            await sup.run()

    before = signal.getsignal(sig)
    with capture_logs() as logs:
        run(main)
    assert probe.cancelled
    assert {"event": "stopping", "reason": f"received {sig.name}", "log_level": "info"} in logs
    assert signal.getsignal(sig) == before  # removed again


def test_install_signal_handlers_returns_a_remover() -> None:
    async def main() -> None:
        sup = Supervisor()
        sup.add("p", Probe())
        remove = install_signal_handlers(sup, [signal.SIGUSR1])
        asyncio.get_running_loop().call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
        await sup.run()
        remove()

    run(main)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


# --- misuse -----------------------------------------------------------------------------


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="grace"):
        Supervisor(grace=-1)
    sup = Supervisor()
    sup.add("a", Probe())
    with pytest.raises(ValueError, match="'a' is already added"):
        sup.add("a", Probe())

    async def main() -> None:
        sup.stop()
        await sup.run()
        with pytest.raises(RuntimeError, match="runs once"):
            await sup.run()
        with pytest.raises(RuntimeError, match="before run"):
            sup.add("b", Probe())

    run(main)
