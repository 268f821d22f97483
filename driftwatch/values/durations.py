"""Durations in the configuration file: ``60s``, ``5m``, ``1h30m``, ``250ms``, ``1d`` or seconds.

A :data:`Duration` field holds a ``float`` number of seconds once validated, so callers
pass it straight to ``asyncio.sleep`` or compare it with ``time.monotonic()`` deltas.
It accepts:

- a number (``90``, ``0.5``): seconds;
- a string of one or more ``<number><unit>`` parts, largest unit first, each unit at
  most once, no spaces: ``250ms``, ``30s``, ``5m``, ``1h30m``, ``1.5h``, ``1d``
  (units: ``ms``, ``s``, ``m``, ``h``, ``d``);
- a string holding a plain number (``"90"``), so that ``${ENV}`` substitution works.

Negative durations, booleans and anything else are errors such as
``'5x' is not a duration: write 30s, 5m or 4h``. Use :func:`at_least` for a lower bound:
``poll_interval: Annotated[Duration, at_least(1)] = 60.0``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

__all__ = ["Duration", "at_least", "at_most", "format_duration", "parse_duration"]

_UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_ORDER = list(_UNITS)  # largest first
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|d|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")


def _invalid(value: object) -> ValueError:
    return ValueError(f"{value!r} is not a duration: write 30s, 5m or 4h")


def parse_duration(value: object) -> float:
    """Seconds in ``value`` (a number, ``"90"``, ``"1h30m"``, ...); ValueError otherwise."""
    if isinstance(value, bool):
        raise _invalid(value)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip(), value)
    else:
        raise _invalid(value)
    if not math.isfinite(seconds):
        raise _invalid(value)
    if seconds < 0:
        raise ValueError(f"{value!r} is negative: a duration is 0 or more")
    return seconds


def _parse_text(text: str, original: str) -> float:
    if _NUMBER.fullmatch(text):
        return float(text)
    seconds, position, last_unit = 0.0, 0, -1
    for match in _PART.finditer(text):
        unit = _ORDER.index(match[2])
        if match.start() != position or unit <= last_unit:
            raise _invalid(original)
        seconds += float(match[1]) * _UNITS[match[2]]
        position, last_unit = match.end(), unit
    if position == 0 or position != len(text):
        raise _invalid(original)
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest text :func:`parse_duration` reads back: ``5400`` -> ``1h30m``."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"{seconds!r} is not a duration")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit in _ORDER:
        size = round(_UNITS[unit] * 1000)
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def at_least(minimum: float) -> AfterValidator:
    """A validator for ``Annotated[Duration, at_least(1)]``: ``must be at least 1s``."""

    def check(seconds: float) -> float:
        if seconds < minimum:
            raise ValueError(f"must be at least {format_duration(minimum)}")
        return seconds

    return AfterValidator(check)


def at_most(maximum: float) -> AfterValidator:
    """A validator for ``Annotated[Duration, at_most(3600)]``: ``must be at most 1h``."""

    def check(seconds: float) -> float:
        if seconds > maximum:
            raise ValueError(f"must be at most {format_duration(maximum)}")
        return seconds

    return AfterValidator(check)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written as ``60s``, ``5m``, ``1h30m``, ``250ms``, ``1d`` or a number."""
