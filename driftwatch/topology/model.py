"""The topology's values: namespaces, workloads and their container ports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["METADATA_NAME", "WORKLOAD_KINDS", "ContainerPort", "Topology", "Workload"]

METADATA_NAME = "kubernetes.io/metadata.name"
"""The label every namespace carries with its own name (set by the API server)."""

WORKLOAD_KINDS = frozenset(
    {
        "Pod",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "ReplicationController",
    }
)
"""Kinds whose objects make pods (a Pod makes itself)."""


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """One ``containerPort`` of a pod's containers (``name`` for named ports)."""

    port: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Workload:
    """The pods one owner makes: a Deployment, a DaemonSet, ... or a lone Pod."""

    namespace: str
    name: str
    kind: str
    labels: tuple[tuple[str, str], ...] = ()
    """The pod template's labels (a Pod's own), sorted."""
    ports: tuple[ContainerPort, ...] = ()
    """Every container's ports, in order (a named port resolves to the first match)."""
    _labels: dict[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        self._labels.update(self.labels)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}[{self.kind}]"

    @property
    def label_map(self) -> Mapping[str, str]:
        return self._labels

    def named_port(self, name: str) -> ContainerPort | None:
        """The first container port called ``name``, if any."""
        for port in self.ports:
            if port.name == name:
                return port
        return None


@dataclass(frozen=True, slots=True)
class Topology:
    """Namespaces (name -> labels) and workloads, in a stable order."""

    namespaces: Mapping[str, Mapping[str, str]]
    workloads: tuple[Workload, ...]

    @staticmethod
    def build(
        workloads: Iterable[Workload], namespaces: Mapping[str, Mapping[str, str]] | None = None
    ) -> Topology:
        """Workloads sorted by their name string, one per ``ns/name[Kind]`` (the last
        wins); every namespace with its implicit ``kubernetes.io/metadata.name`` label,
        those of the workloads included even when not declared."""
        unique = {str(w): w for w in workloads}
        labels: dict[str, dict[str, str]] = {
            ns: {**dict(lbls), METADATA_NAME: ns} for ns, lbls in (namespaces or {}).items()
        }
        for w in unique.values():
            labels.setdefault(w.namespace, {METADATA_NAME: w.namespace})
        ordered = tuple(unique[k] for k in sorted(unique))
        return Topology(dict(sorted(labels.items())), ordered)

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        """A namespace's labels (only the implicit one for a namespace not declared)."""
        return self.namespaces.get(namespace) or {METADATA_NAME: namespace}

    def names(self) -> frozenset[str]:
        return frozenset(str(w) for w in self.workloads)
