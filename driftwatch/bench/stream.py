"""The limit: a minimal watch client, ``python -m driftwatch.bench.stream URL TOKEN RV N``.

Watches NetworkPolicies in all namespaces from resourceVersion ``RV`` (as the daemon's
watcher does), reads the stream line by line and ``json.loads`` each line, nothing more,
until ``N`` events other than BOOKMARKs have been read; prints ``{"events", "start",
"end"}`` (``time.perf_counter()`` as the request was sent and as the last event was parsed).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

from driftwatch.bench.procs import say

__all__ = ["consume", "main"]

WATCH = "/apis/networking.k8s.io/v1/networkpolicies"


async def consume(url: str, token: str, rv: str, count: int) -> dict[str, float]:
    """Read ``count`` events after ``rv``; their timing."""
    params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true"}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    events = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        start = time.perf_counter()
        async with session.get(url + WATCH, params=params, headers=headers) as response:
            response.raise_for_status()
            while events < count:
                line = await response.content.readline()
                if not line:
                    break
                event = json.loads(line)
                if event["type"] != "BOOKMARK":
                    events += 1
        end = time.perf_counter()
    return {"events": events, "start": start, "end": end}


def main() -> None:
    url, token, rv, count = sys.argv[1:5]
    say(asyncio.run(consume(url, token, rv, int(count))))


if __name__ == "__main__":
    main()
