"""A Kubernetes-API-compatible in-memory API server for the demo, integration tests and
benchmarks, checked against the real ``kubectl`` and ``kubernetes_asyncio``.

``async with Sandbox(seed=["config/examples/policies"]) as sb:`` serves NetworkPolicies,
Namespaces, Pods, Leases, ConfigMaps, CustomResourceDefinitions and the kinds they define on
``sb.url`` (127.0.0.1 only); ``sb.kubeconfig_path()`` writes
a kubeconfig for it; ``sb.faults`` injects failures; ``sb.changes`` is the change log.
:class:`SandboxThread` runs one in a background thread for synchronous code.
"""

from driftwatch.sandbox.errors import ApiError
from driftwatch.sandbox.faults import FaultRule, Faults
from driftwatch.sandbox.operations import Operations, WriteOptions, WriteResult
from driftwatch.sandbox.resources import (
    CONFIG_MAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    LEASES,
    NAMESPACES,
    NETWORK_POLICIES,
    PODS,
    PrinterColumn,
    Registry,
    ResourceType,
    default_registry,
)
from driftwatch.sandbox.seed import SeedError
from driftwatch.sandbox.server import (
    DEFAULT_NAMESPACES,
    DEFAULT_TOKEN,
    HOST,
    Sandbox,
    SandboxThread,
)
from driftwatch.sandbox.store import Change, Store

__all__ = [
    "CONFIG_MAPS",
    "CUSTOM_RESOURCE_DEFINITIONS",
    "DEFAULT_NAMESPACES",
    "DEFAULT_TOKEN",
    "HOST",
    "LEASES",
    "NAMESPACES",
    "NETWORK_POLICIES",
    "PODS",
    "ApiError",
    "Change",
    "FaultRule",
    "Faults",
    "Operations",
    "PrinterColumn",
    "Registry",
    "ResourceType",
    "Sandbox",
    "SandboxThread",
    "SeedError",
    "Store",
    "WriteOptions",
    "WriteResult",
    "default_registry",
]
