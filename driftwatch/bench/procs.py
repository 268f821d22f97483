"""Child processes: start one (``python -m driftwatch.bench.<module>``), pinned to some
CPUs, talk to it in JSON lines over stdin/stdout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

__all__ = ["Child", "affinity", "cpu_seconds", "pin", "read_commands", "say", "vm_hwm_mb"]


def pin(pid: int, cpus: set[int] | None) -> None:
    """Run ``pid`` (0: this process) on ``cpus`` only, where the OS allows it."""
    if cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, cpus)


def affinity(pid: int) -> set[int]:
    """The CPUs ``pid`` (0: this thread) may run on (empty where unknown)."""
    if not hasattr(os, "sched_getaffinity"):
        return set()
    try:
        return set(os.sched_getaffinity(pid))
    except OSError:
        return set()


def vm_hwm_mb(pid: int | str = "self") -> float:
    """The peak resident set (``VmHWM``) of ``pid``, in MB (0 where unknown)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used, all its threads (0 where unknown)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Child:
    """One child process speaking JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, module: str, *args: str, cpus: set[int] | None = None) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"driftwatch.bench.{module}",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,
        )
        pin(proc.pid, cpus)
        return cls(proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def read(self, timeout: float = 600.0) -> dict[str, Any]:
        """The next line the child prints, as JSON."""
        assert self.proc.stdout is not None  # noqa: S101 - a pipe, see start
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=timeout)
        if not line:
            code = await self.proc.wait()
            raise RuntimeError(f"a benchmark child ended (exit status {code})")
        data: dict[str, Any] = json.loads(line)
        return data

    async def ask(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        """Send one command line, return the child's answer."""
        self.send(command)
        return await self.read(timeout)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None  # noqa: S101 - a pipe, see start
        self.proc.stdin.write(command.encode() + b"\n")

    async def close(self, timeout: float = 20.0) -> None:
        """Close its stdin (the children stop then); kill it if it lingers."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def read_commands(handler: Any) -> None:
    """In a child: call ``await handler(line)`` for each stdin line until it closes."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        await handler(line.strip())


def say(data: dict[str, Any]) -> None:
    """In a child: print one JSON line."""
    print(json.dumps(data), flush=True)
