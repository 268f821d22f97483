"""A whole cluster state from a directory of manifests: its NetworkPolicies and its
topology (namespaces and workloads), for ``driftwatch connectivity`` and ``check``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from driftwatch.desired.model import DesiredStateError
from driftwatch.manifests.reader import ManifestError, is_resource, iter_manifest_files, read_file
from driftwatch.policy import NetworkPolicy, PolicyError, parse_policy
from driftwatch.topology import Topology, TopologyError, Workload, namespace_of, workload_of

__all__ = ["ClusterState", "load_cluster_dir"]


@dataclass(frozen=True, slots=True)
class ClusterState:
    """The policies and the topology one directory describes."""

    policies: tuple[NetworkPolicy, ...]
    topology: Topology


def load_cluster_dir(
    path: Path, *, default_namespace: str = "default", top_level: bool = False
) -> ClusterState:
    """Every NetworkPolicy, Namespace and workload in the manifests under ``path``
    (``.yaml``, ``.yml``, ``.json``; Lists included, such as ``kubectl get pods,namespaces
    -A -o yaml``; other kinds ignored). A Pod is its controller's workload, as given
    (``top_level``: a ReplicaSet of a Deployment is that Deployment, as the daemon groups
    live pods). Raises :class:`DesiredStateError` naming the file and line of the first
    object that cannot be read."""
    policies: list[NetworkPolicy] = []
    workloads: list[Workload] = []
    namespaces: dict[str, dict[str, str]] = {}
    try:
        files = iter_manifest_files(path)
    except ManifestError as error:
        raise DesiredStateError(str(error)) from error
    for file in files:
        shown = str(file.relative_to(path)) if file != path else file.name
        try:
            documents = read_file(file, shown)
        except ManifestError as error:
            raise DesiredStateError(str(error)) from error
        for doc in documents:
            where = f"{doc.path}:{doc.line}"
            try:
                if is_resource(doc.data, "NetworkPolicy", "networking.k8s.io"):
                    policies.append(parse_policy(doc.data, default_namespace=default_namespace))
                elif (ns := namespace_of(doc.data)) is not None:
                    namespaces[ns[0]] = dict(ns[1])
                elif (
                    w := workload_of(
                        doc.data, default_namespace=default_namespace, top_level=top_level
                    )
                ) is not None:
                    workloads.append(w)
            except (PolicyError, TopologyError) as error:
                raise DesiredStateError(f"{where}: {error}") from error
    return ClusterState(tuple(policies), Topology.build(workloads, namespaces))
