"""The live state read once from the API server, for ``driftwatch check``.

:func:`read_cluster` lists (page by page, as the watcher does) and returns the policies;
:func:`load_cluster` connects with a kubeconfig first and runs it to completion. There are
no retries: every failure is one :class:`~driftwatch.live.errors.LiveError` line (an
unreachable server names its URL; 401/403 say which RBAC is needed).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from kubernetes_asyncio.client import ApiClient

from driftwatch.live.connect import connect
from driftwatch.live.errors import LiveInvalidError
from driftwatch.live.listing import Key
from driftwatch.live.options import WatchOptions
from driftwatch.live.transport import Transport
from driftwatch.policy import NetworkPolicy

__all__ = ["load_cluster", "read_cluster"]


async def read_cluster(
    api: ApiClient,
    *,
    namespaces: Sequence[str] = (),
    options: WatchOptions | None = None,
    default_namespace: str = "default",
) -> dict[Key, NetworkPolicy]:
    """The NetworkPolicies of the cluster (or of ``namespaces``), keyed by
    ``(namespace, name)``, each with its ``origin`` (last writer, from ``managedFields``).

    Raises a :class:`~driftwatch.live.errors.LiveError`; an object that
    :func:`~driftwatch.policy.parse_policy` rejects is a :class:`LiveInvalidError`, as an
    invalid policy in a snapshot file is. ``default_namespace`` is what ``parse_policy``
    uses for an object without a namespace (a server never sends one).
    """
    if isinstance(namespaces, str):
        raise TypeError("namespaces must be a sequence of names, not a string")
    names = tuple(dict.fromkeys(namespaces))
    transport = Transport(
        api,
        options if options is not None else WatchOptions(),
        names,
        default_namespace=default_namespace,
    )
    policies: dict[Key, NetworkPolicy] = {}
    for namespace in names or (None,):
        listing = await transport.list_all(namespace)
        if listing.invalid:
            _, message = min(listing.invalid.items())
            raise LiveInvalidError(f"{transport.server}: {message}")
        policies.update(listing.policies)
    return policies


def load_cluster(
    kubeconfig: str | os.PathLike[str] | None,
    context: str | None,
    *,
    namespaces: Sequence[str] = (),
    default_namespace: str = "default",
    options: WatchOptions | None = None,
) -> dict[Key, NetworkPolicy]:
    """:func:`read_cluster` through the kubeconfig ``kubeconfig`` (None: ``$KUBECONFIG``,
    the in-cluster configuration, ``~/.kube/config``) and ``context`` (None: current)."""

    async def read() -> dict[Key, NetworkPolicy]:
        api = await connect(kubeconfig, context=context)
        async with api:
            return await read_cluster(
                api, namespaces=namespaces, options=options, default_namespace=default_namespace
            )

    return asyncio.run(read())
