"""Structured logging for the daemon (structlog), with secrets redacted from every line.

:func:`configure_logging` sets up one pipeline for structlog loggers and standard-library
loggers alike (aiohttp, kubernetes_asyncio, asyncio log through ``logging``): both end in
the same ``logging.StreamHandler`` on the root logger, whose formatter runs

    logger name, level, ISO-8601 UTC timestamp, stack info  (``timestamp``, ``level``,
    ``logger``), exceptions formatted as text (``exception``), redaction, renderer

so a record is rendered once, as one JSON object per line or as a console line, after
redaction. Exceptions are formatted before redaction (never by the console renderer,
whose pretty tracebacks may print local variables), so a token in an exception message
is redacted too.

Lines about one incident carry ``incident`` (its id, ``<cluster>/<namespace>/<name>#<n>``);
:func:`incident_fields` adds ``cluster``, ``namespace`` and ``policy`` from it where the
line does not say them, so every such line can be filtered on any of the four.

Redaction replaces every occurrence of a registered secret in any string value of the
event dict, nested dicts and lists included, and the whole value of any key whose name
looks secret (``token``, ``password``, ``secret``, ``authorization``, ``api_key``, in any
case, with ``-`` or ``_``, as part of a longer name too), with ``***``. Values of other
types are turned into their ``repr`` first, so no object's ``repr`` can leak a secret.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["LogFormat", "LogLevel", "Redactor", "configure_logging", "incident_fields"]

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["auto", "json", "console"]

REDACTED = "***"
_SECRET_KEY = re.compile(r"token|passw(or)?d|secret|authori[sz]ation|api_?key", re.IGNORECASE)
_PLAIN = (int, float, bool, type(None))
_LEVELS = ("debug", "info", "warning", "error")
_INCIDENT_ID = re.compile(r"(?P<cluster>[^/]*)/(?P<namespace>[^/]+)/(?P<policy>[^/#]+)#\d+")


def incident_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A processor: ``cluster``, ``namespace`` and ``policy`` from an ``incident`` id, for
    the lines that name only the incident (what is given is kept)."""
    incident = event_dict.get("incident")
    if isinstance(incident, str) and (found := _INCIDENT_ID.fullmatch(incident)):
        for name, value in found.groupdict().items():
            event_dict.setdefault(name, value)
    return event_dict


class Redactor:
    """A processor replacing secret values (and values of secret-named keys) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in self._secrets)) if self._secrets else None
        )

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        return {key: self._value(key, value) for key, value in event_dict.items()}

    def _value(self, key: object, value: object) -> Any:
        if isinstance(key, str) and _SECRET_KEY.search(key.replace("-", "_")) and value:
            return REDACTED
        return self._scrub(value)

    def _scrub(self, value: object) -> Any:
        if isinstance(value, str):
            return self._pattern.sub(REDACTED, value) if self._pattern else value
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, Mapping):
            return {self._scrub(k): self._value(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._scrub(item) for item in value]
        return self._scrub(repr(value))


def _is_tty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed or detached stream
        return False


def _renderer(fmt: LogFormat, stream: IO[str]) -> Processor:
    tty = _is_tty(stream)
    if fmt == "json" or (fmt == "auto" and not tty):
        return structlog.processors.JSONRenderer(sort_keys=False, default=repr)
    return structlog.dev.ConsoleRenderer(
        colors=tty and "NO_COLOR" not in os.environ,
        exception_formatter=structlog.dev.plain_traceback,
    )


def configure_logging(
    level: str,
    fmt: LogFormat = "auto",
    *,
    stream: IO[str] | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Send structlog and standard-library logging to ``stream`` (default: ``sys.stderr``).

    ``level`` is debug, info, warning or error (any case); ``fmt`` ``json`` writes one JSON
    object per line, ``console`` human-readable lines (coloured on a terminal), ``auto``
    console when ``stream.isatty()``, else JSON (colours only on a terminal without
    ``NO_COLOR``). ``secrets`` (e.g.
    ``Settings.secret_values()``) never appear in a line.

    Replaces the root logger's handlers (like ``logging.basicConfig(force=True)``) and
    structlog's global configuration; safe to call again (e.g. once the settings are
    loaded): loggers are not cached, so existing ones pick up the new configuration.
    """
    if level.lower() not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}: debug, info, warning or error")
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}: auto, json or console")
    out = sys.stderr if stream is None else stream
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        incident_fields,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            Redactor(secrets),
            _renderer(fmt, out),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.getLevelNamesMapping()[level.upper()])
    # At debug, slack_sdk logs every request body (whole diffs) and response: not useful at
    # driftwatch's debug level, and a body is the remote side's business.
    logging.getLogger("slack_sdk").setLevel(max(root.level, logging.INFO))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
