"""Structured logging for the daemon (structlog), with secrets redacted from every line.

:func:`configure_logging` sets up one pipeline for structlog loggers and standard-library
loggers alike (aiohttp, kubernetes_asyncio, asyncio log through ``logging``): both end in
the same ``logging.StreamHandler`` on the root logger, whose formatter runs

    logger name, level, ISO-8601 UTC timestamp, stack info  (``timestamp``, ``level``,
    ``logger``), exceptions formatted as text (``exception``), redaction, renderer

so a record is rendered once, as one JSON object per line or as a console line, after
redaction. structlog's own lines take a shorter road to the same handler: the same
processors run, then the line is written under the handler's lock, without a stdlib
``LogRecord`` (building one cost more than the rest of a line; ``driftwatch bench`` logs
a few lines per watch event). Exceptions are formatted before redaction (never by the
console renderer, whose pretty tracebacks may print local variables), so a token in an
exception message is redacted too.

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

import orjson
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
        self._secret_named: dict[str, bool] = {}
        """Whether a key's name looks secret, by name (a line has few keys, seen again)."""

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        return {key: self._value(key, value) for key, value in event_dict.items()}

    def _value(self, key: object, value: object) -> Any:
        if isinstance(key, str) and value and self._named_secret(key):
            return REDACTED
        return self._scrub(value)

    def _named_secret(self, key: str) -> bool:
        named = self._secret_named.get(key)
        if named is None:
            named = bool(_SECRET_KEY.search(key.replace("-", "_")))
            if len(self._secret_named) < 4096:  # keys are names in the code, but bounded
                self._secret_named[key] = named
        return named

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


def _json(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()


class _LineWriter:
    """structlog's wrapped logger: writes each rendered line to the root handler's stream,
    under that handler's lock (so stdlib lines and these never interleave)."""

    __slots__ = ("_handler", "name")

    def __init__(self, name: str, handler: logging.StreamHandler[IO[str]]) -> None:
        self.name = name
        self._handler = handler

    def msg(self, line: str) -> None:
        handler = self._handler
        handler.acquire()
        try:
            handler.stream.write(line + "\n")
            handler.flush()
        finally:
            handler.release()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _renderer(fmt: LogFormat, stream: IO[str]) -> Processor:
    tty = _is_tty(stream)
    if fmt == "json" or (fmt == "auto" and not tty):
        return structlog.processors.JSONRenderer(serializer=_json)
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
    final: list[Processor] = [
        structlog.processors.format_exc_info,
        Redactor(secrets),
        _renderer(fmt, out),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
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

    def factory(*args: Any) -> _LineWriter:
        return _LineWriter(str(args[0]) if args else "driftwatch", handler)

    structlog.configure(
        processors=[*shared, *final],
        logger_factory=factory,
        wrapper_class=structlog.make_filtering_bound_logger(root.level),
        cache_logger_on_first_use=False,
    )
