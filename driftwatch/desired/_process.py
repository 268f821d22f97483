"""Running git and kubectl: argument lists, timeouts, no prompts, no leaked secrets."""

from __future__ import annotations

import os
import re
import subprocess
from urllib.parse import urlsplit, urlunsplit

__all__ = ["GIT_NETWORK_TIMEOUT", "GIT_TIMEOUT", "first_error_line", "redact", "redact_url", "run"]

GIT_TIMEOUT = 60.0
"""Seconds for a local git command."""
GIT_NETWORK_TIMEOUT = 300.0
"""Seconds for ``git fetch``."""

_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+")
# klog's header, as some kubectl builds print errors: E1127 05:13:07.591473 6715 run.go:72]
_KLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]]+\] ")
_KLOG_FAILED = re.compile(r'^"command failed" err="(.*)"$')


def redact_url(url: str) -> str:
    """``url`` without user information, query or fragment (where tokens hide)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a broken IPv6 host: keep only the scheme
        return url.split("://", 1)[0] + "://<invalid URL>"
    if not parts.scheme or "://" not in url:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact(text: str, *secrets: str) -> str:
    """``text`` with every URL in it redacted by :func:`redact_url`.

    Each of ``secrets`` (e.g. the URL as the user gave it) is replaced by its
    redacted form first, in case it is not recognisable as a URL in the text.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, redact_url(secret))
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


def first_error_line(stderr: str) -> str:
    """The first ``fatal:``/``error:`` line of a tool's stderr, else its first line."""
    lines = [_KLOG.sub("", line.strip()) for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.lower().startswith(("fatal:", "error:")):
            return line
    if not lines:
        return "no error message"
    failed = _KLOG_FAILED.match(lines[0])
    return failed.group(1).replace('\\"', '"') if failed else lines[0]


def run(
    args: list[str], *, timeout: float, cwd: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a command without a shell, a terminal or standard input.

    ``GIT_TERMINAL_PROMPT=0`` and a new session (no controlling terminal) make
    git and ssh fail instead of asking for a password. Raises ``OSError`` when
    the program cannot be started and ``subprocess.TimeoutExpired``.
    """
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    return subprocess.run(
        args,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
        start_new_session=True,
    )
