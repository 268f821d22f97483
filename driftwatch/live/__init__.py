"""The live state of the cluster's NetworkPolicies: a snapshot file, a one-shot read of the
API server (``check``), or a watch that follows every change (the daemon); and the daemon's
watch of its pods and namespaces (the topology).

The parts that talk to the API server (:func:`connect`, :func:`read_cluster`,
:func:`load_cluster`, :class:`PolicyWatcher`, :class:`TopologyWatcher`, and the replicas'
leader election :class:`LeaderElector` with :class:`LeaseTiming`) are imported on first use,
so that reading a snapshot file does not pay for loading kubernetes_asyncio (about a second).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from driftwatch.values.lazy import lazy_exports

if TYPE_CHECKING:
    from driftwatch.live.cluster import load_cluster, read_cluster
    from driftwatch.live.connect import connect
    from driftwatch.live.leader import LeaderElector, LeaseTiming, default_identity
    from driftwatch.live.topology import TopologyWatcher
    from driftwatch.live.watcher import PolicyWatcher, WatchStats

__all__ = [
    "Backoff",
    "LeaderElector",
    "LeaseTiming",
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
    "TopologyWatcher",
    "WatchOptions",
    "WatchStats",
    "connect",
    "default_identity",
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
    "TopologyWatcher": "driftwatch.live.topology",
    "LeaderElector": "driftwatch.live.leader",
    "LeaseTiming": "driftwatch.live.leader",
    "default_identity": "driftwatch.live.leader",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
