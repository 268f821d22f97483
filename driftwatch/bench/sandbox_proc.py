"""The sandbox child: ``python -m driftwatch.bench.sandbox_proc LIVE.json DIR``.

Seeds the sandbox API server with the objects in ``LIVE.json`` (as ``kubectl apply`` would
have written them), writes a kubeconfig to ``DIR``, prints ``{url, token, kubeconfig,
seeded_s}`` and serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from driftwatch.bench.procs import read_commands, say
from driftwatch.sandbox import Sandbox

__all__ = ["main"]


async def _serve(live: Path, directory: Path) -> None:
    objects = json.loads(live.read_text())
    async with Sandbox(bookmark_interval=1.0, auto_create_namespaces=True) as sandbox:
        start = time.perf_counter()
        for obj in objects:
            sandbox.put_object(obj, manager="kubectl-client-side-apply")
        seeded = time.perf_counter() - start
        kubeconfig = sandbox.kubeconfig_path(directory)
        say(
            {
                "url": sandbox.url,
                "token": sandbox.token or "",
                "kubeconfig": str(kubeconfig),
                "seeded_s": round(seeded, 2),
            }
        )

        async def nothing(line: str) -> None:
            return None

        await read_commands(nothing)


def main() -> None:
    asyncio.run(_serve(Path(sys.argv[1]), Path(sys.argv[2])))


if __name__ == "__main__":
    main()
