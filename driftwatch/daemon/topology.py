"""The daemon's ``topology`` task: a :class:`~driftwatch.live.TopologyWatcher` whose every
new topology is handed to the engine (the daemon queues it; the engine gives it to the
tracker, so drifts carry their blast radius).

The topology is an extra: readiness does not wait for it, and a cluster whose pods may not
be watched (403, or an error the watch cannot recover from) is watched without it — one
warning, the task ends, and the engine is told the topology is no longer known.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from kubernetes_asyncio.client import ApiClient

from driftwatch.live import (
    Backoff,
    LiveAccessError,
    LiveError,
    TopologyWatcher,
    WatchOptions,
    connect,
)
from driftwatch.settings import ClusterSettings
from driftwatch.topology import Topology

__all__ = ["TopologyFeed"]


class TopologyFeed:
    """Watches ``cluster``'s pods and namespaces and calls ``put(topology)`` for each new
    topology, and ``put(None)`` if the watch ends after having given one."""

    def __init__(
        self,
        cluster: ClusterSettings,
        put: Callable[[Topology | None], None],
        *,
        options: WatchOptions,
        backoff: Backoff,
        coalesce: float,
        log: Any,
    ) -> None:
        self.cluster = cluster
        self.watcher: TopologyWatcher | None = None
        self._put = put
        self._options = options
        self._backoff = backoff
        self._coalesce = coalesce
        self._log = log

    async def run(self, api: ApiClient | None = None) -> None:
        """Until cancelled, or until the watch cannot go on (then it returns). ``api``: a
        client to watch with (not closed here); ``None``: one of its own, from
        ``cluster`` (its own connection pool, beside the policy watch's)."""
        try:
            if api is not None:
                await self._watch(api)
                return
            cluster = self.cluster
            token = cluster.token.get_secret_value() if cluster.token is not None else None
            async with await connect(
                cluster.kubeconfig, context=cluster.context, token=token
            ) as own:
                await self._watch(own)
        except LiveAccessError as error:
            self._log.warning(
                "cannot watch pods: drifts carry no blast radius; grant list and watch on pods"
                " and namespaces to driftwatch (see config/kubernetes/clusterrole.yaml)",
                error=str(error),
            )
        except LiveError as error:
            self._log.error(
                "the topology watch failed: drifts carry no blast radius", error=str(error)
            )
        if self.watcher is not None and self.watcher.topology is not None:  # the engine had one
            self._put(None)

    async def _watch(self, api: ApiClient) -> None:
        try:
            watcher = TopologyWatcher(
                api,
                namespaces=self.cluster.namespaces,
                options=self._options,
                backoff=self._backoff,
                log=self._log,
                coalesce=self._coalesce,
            )
        except ValueError as error:  # more namespaces than the client has connections
            self._log.warning("cannot watch pods: drifts carry no blast radius", error=str(error))
            return
        self.watcher = watcher
        topologies = watcher.events()
        async with aclosing(topologies):
            async for topology in topologies:
                self._put(topology)
