"""The live state of the cluster's NetworkPolicies: a snapshot file, a one-shot read of the
API server (``check``), or a watch that follows every change (the daemon).

The parts that talk to the API server (:func:`connect`, :func:`read_cluster`,
:func:`load_cluster`, :class:`PolicyWatcher`) are imported on first use, so that reading a
snapshot file does not pay for loading kubernetes_asyncio (about a second).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from driftwatch.live.errors import (
    LiveAccessError,
    LiveApiError,
    LiveConfigError,
    LiveError,
    LiveExpiredError,
    LiveInvalidError,
    LiveNotFoundError,
    LiveUnavailableError,
)
from driftwatch.live.events import (
    LiveDeleted,
    LiveEvent,
    LiveInvalid,
    LivePut,
    LiveResynced,
    LiveSynced,
)
from driftwatch.live.options import Backoff, WatchOptions
from driftwatch.live.snapshot import LiveSnapshotError, load_snapshot

if TYPE_CHECKING:
    from driftwatch.live.cluster import load_cluster, read_cluster
    from driftwatch.live.connect import connect
    from driftwatch.live.watcher import PolicyWatcher, WatchStats

__all__ = [
    "Backoff",
    "LiveAccessError",
    "LiveApiError",
    "LiveConfigError",
    "LiveDeleted",
    "LiveError",
    "LiveEvent",
    "LiveExpiredError",
    "LiveInvalid",
    "LiveInvalidError",
    "LiveNotFoundError",
    "LivePut",
    "LiveResynced",
    "LiveSnapshotError",
    "LiveSynced",
    "LiveUnavailableError",
    "PolicyWatcher",
    "WatchOptions",
    "WatchStats",
    "connect",
    "load_cluster",
    "load_snapshot",
    "read_cluster",
]

_LAZY = {
    "connect": "driftwatch.live.connect",
    "load_cluster": "driftwatch.live.cluster",
    "read_cluster": "driftwatch.live.cluster",
    "PolicyWatcher": "driftwatch.live.watcher",
    "WatchStats": "driftwatch.live.watcher",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
