"""What a list is made of, and the cooperative parsing that builds it, without any HTTP:
light enough for the CLI to import without loading kubernetes_asyncio.

* :class:`Listing`: one complete list (valid policies, rejected objects, resourceVersion);
* :func:`parse_items`: list items into a listing, handing the event loop back every
  :data:`SLICE_SECONDS` (:class:`Slicer`);
(the cyclic collector is paused while a big list is built: ``manifests.paused_gc``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftwatch.policy import NetworkPolicy, PolicyError, parse_policy

__all__ = [
    "SLICE_SECONDS",
    "Key",
    "Listing",
    "Slicer",
    "object_key",
    "parse_items",
    "resource_version",
]

Key = tuple[str, str]
"""``(namespace, name)``."""

SLICE_SECONDS = 0.005  # longest stretch of parsing between two returns to the event loop


@dataclass(frozen=True, slots=True)
class Listing:
    """One complete list: the valid policies, the rejected objects (key -> message), and
    the resourceVersion to watch from."""

    policies: dict[Key, NetworkPolicy]
    resource_version: str
    invalid: dict[Key, str] = field(default_factory=dict)


def object_key(obj: Mapping[str, Any]) -> Key:
    """``(namespace, name)`` of a raw object, as far as it has them."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return ("", "")
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def resource_version(obj: Mapping[str, Any]) -> str:
    """``metadata.resourceVersion`` of a raw object, or ``""``."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return ""
    return str(meta.get("resourceVersion") or "")


class Slicer:
    """Cooperative multitasking for CPU-bound loops: ``await slicer.tick()`` after each unit
    of work yields to the event loop once ``budget`` seconds have passed since the last time."""

    __slots__ = ("budget", "started")

    def __init__(self, budget: float = SLICE_SECONDS) -> None:
        self.budget = budget
        self.started = time.perf_counter()

    async def tick(self) -> None:
        if time.perf_counter() - self.started >= self.budget:
            await self.pause()

    async def pause(self) -> None:
        await asyncio.sleep(0)
        self.started = time.perf_counter()


async def parse_items(
    items: list[Any],
    policies: dict[Key, NetworkPolicy],
    invalid: dict[Key, str],
    slicer: Slicer,
    default_namespace: str = "default",
) -> None:
    """Parse list items into ``policies`` (by key) or ``invalid`` (key -> message)."""
    for obj in items:
        try:
            policy = parse_policy(obj, default_namespace=default_namespace)
        except PolicyError as error:
            invalid[object_key(obj) if isinstance(obj, Mapping) else ("", "")] = str(error)
        else:
            policies[(policy.namespace, policy.name)] = policy
        await slicer.tick()
