"""Running async tests without pytest-asyncio (not a dependency): ``@async_test``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, overload

__all__ = ["async_test"]

P = ParamSpec("P")
Test = Callable[P, Awaitable[None]]


@overload
def async_test(fn: Callable[P, Awaitable[None]]) -> Callable[P, None]: ...
@overload
def async_test(
    *, timeout: float
) -> Callable[[Callable[P, Awaitable[None]]], Callable[P, None]]: ...


def async_test(fn=None, *, timeout=20.0):  # type: ignore[no-untyped-def]
    """Run the coroutine test under ``asyncio.run``, failing it after ``timeout`` seconds."""

    def wrap(test):  # type: ignore[no-untyped-def]
        @functools.wraps(test)
        def run(*args, **kwargs):  # type: ignore[no-untyped-def]
            async def bounded() -> None:
                await asyncio.wait_for(test(*args, **kwargs), timeout=timeout)

            asyncio.run(bounded())

        return run

    return wrap if fn is None else wrap(fn)
