"""Shared helpers of the fault-injection suite (``pytest -m faults``): a time bound for async
tests, polling with a deadline (never a sleep as an assertion), the figures each scenario
prints (and RELIABILITY.md records), and the delivery checks: per incident, what a receiver
got against what it should have got, as *lost* and *duplicate* counts.

Other fault suites import from here: keep these names and signatures stable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

__all__ = [
    "Deliveries",
    "Figures",
    "bounded",
    "compare_deliveries",
    "poll_until",
    "quiet_log",
]


def bounded(seconds: float) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., None]]:
    """Run an async test under ``asyncio.run``, failing (``TimeoutError``) after
    ``seconds``: a fault test never hangs the suite."""

    def wrap(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout=seconds))

        return run

    return wrap


def quiet_log() -> Any:
    """A structlog logger that prints errors only: a fault test logs thousands of retries
    and reconnections, which would drown the figures it prints."""
    return structlog.wrap_logger(
        structlog.PrintLogger(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        processors=[structlog.dev.ConsoleRenderer(colors=False)],
    )


async def poll_until(
    check: Callable[[], bool | Awaitable[bool]],
    what: str | Callable[[], str],
    timeout: float,
    *,
    interval: float = 0.02,
) -> float:
    """Wait until ``check()`` is true (it may be a coroutine function); return the seconds
    it took. Fail naming ``what`` (a text, or a function giving one, for the state at the
    time) once ``timeout`` seconds passed."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {detail}")
        await asyncio.sleep(interval)


@dataclass
class Figures:
    """What a scenario measured; :meth:`show` prints one line ``FAULTS <name>: k=v ...``
    (run with ``-s`` to see it). ``lost`` and ``duplicates`` are asserted zero by the test
    before it prints."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)

    def add(self, **values: Any) -> Figures:
        self.values.update(values)
        return self

    def show(self) -> str:
        def text(v: Any) -> str:
            return f"{v:.2f}" if isinstance(v, float) else str(v)

        line = f"FAULTS {self.name}: " + " ".join(f"{k}={text(v)}" for k, v in self.values.items())
        print(line)
        return line


@dataclass(frozen=True)
class Deliveries:
    """How one receiver's deliveries compare with what it should have got.

    ``lost``: notifications expected and never delivered; ``duplicates``: deliveries beyond
    the expected number (the same notification twice); ``out_of_order``: incidents whose
    delivered kinds are not the expected sequence although none is missing or repeated."""

    expected: int
    delivered: int
    lost: int
    duplicates: int
    out_of_order: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def exact(self) -> bool:
        return not (self.lost or self.duplicates or self.out_of_order)


def _by_incident(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for incident, kind in items:
        out[incident].append(kind)
    return dict(out)


def compare_deliveries(
    got: Iterable[tuple[str, str]], want: Mapping[str, list[str]] | Iterable[tuple[str, str]]
) -> Deliveries:
    """Compare ``got`` ((incident id, kind) pairs in arrival order) with ``want`` (per
    incident, the kinds in the order they must arrive; or pairs like ``got``)."""
    wanted = dict(want) if isinstance(want, Mapping) else _by_incident(want)
    have = _by_incident(got)
    lost = duplicates = 0
    disorder: list[str] = []
    problems: list[str] = []
    for incident in sorted(wanted.keys() | have.keys()):
        mine, model = have.get(incident, []), wanted.get(incident, [])
        missing = Counter(model) - Counter(mine)
        extra = Counter(mine) - Counter(model)
        lost += sum(missing.values())
        duplicates += sum(extra.values())
        if missing or extra:
            problems.append(f"{incident}: got {mine}, want {model}")
        elif mine != model:
            disorder.append(incident)
            problems.append(f"{incident}: out of order: got {mine}, want {model}")
    return Deliveries(
        expected=sum(len(v) for v in wanted.values()),
        delivered=sum(len(v) for v in have.values()),
        lost=lost,
        duplicates=duplicates,
        out_of_order=tuple(disorder),
        problems=tuple(problems),
    )
