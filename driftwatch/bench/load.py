"""The load generator: API writes from a thread with its own HTTP connection (so the
harness's event loop, busy receiving webhooks, does not delay them)."""

from __future__ import annotations

import http.client
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from driftwatch.bench.world import Change

__all__ = ["write_changes"]

MANAGER = {"PUT": "kubectl-edit", "POST": "kubectl-create", "DELETE": "kubectl"}


def write_changes(
    url: str, token: str, changes: Sequence[Change], rate: float | None
) -> list[tuple[float, float]]:
    """Make ``changes`` one at a time, ``rate`` per second (``None``: as fast as the server
    answers); returns ``time.perf_counter()`` as each was sent and as its answer arrived."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    times: list[tuple[float, float]] = []
    start = time.perf_counter()
    try:
        for i, change in enumerate(changes):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            path = f"{change.path}?fieldManager={MANAGER[change.method]}"
            sent = time.perf_counter()
            conn.request(change.method, path, change.body, headers)
            response = conn.getresponse()
            body = response.read()
            times.append((sent, time.perf_counter()))
            if response.status not in (200, 201):
                raise RuntimeError(
                    f"{change.method} {change.path}: {response.status} {body[:300]!r}"
                )
    finally:
        conn.close()
    return times
