"""Where the pods are: namespaces with their labels, and workloads (the pods one owner
makes) with their pod labels and container ports.

Pure code: built from manifest objects (:func:`topology_of`) or from the live cluster's
pods and namespaces (``driftwatch.live``); no I/O, no event loop.
"""

from driftwatch.topology.model import (
    METADATA_NAME,
    WORKLOAD_KINDS,
    ContainerPort,
    Topology,
    Workload,
)
from driftwatch.topology.objects import (
    TopologyError,
    namespace_of,
    pod_owner,
    topology_of,
    workload_of,
)

__all__ = [
    "METADATA_NAME",
    "WORKLOAD_KINDS",
    "ContainerPort",
    "Topology",
    "TopologyError",
    "Workload",
    "namespace_of",
    "pod_owner",
    "topology_of",
    "workload_of",
]
