"""Topology from Kubernetes objects (manifests, or the live cluster's pods).

A workload object (Deployment, DaemonSet, StatefulSet, ReplicaSet, Job,
ReplicationController: ``spec.template``; CronJob: ``spec.jobTemplate.spec.template``)
is one workload of its own kind and name; its own ownerReferences are not followed. A
Pod is the workload of its controller (the ownerReference with ``controller: true``,
kind and name as given; ``top_level`` maps a ReplicaSet made by a Deployment, known by
the pod's ``pod-template-hash`` label, to that Deployment), else a workload of its own.
Labels are the pod template's; ports every container's ``ports`` (init containers
make no ports). A missing namespace is ``default_namespace``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from driftwatch.topology.model import WORKLOAD_KINDS, ContainerPort, Topology, Workload

__all__ = ["TopologyError", "pod_owner", "topology_of", "workload_of"]

_PROTOCOLS = ("TCP", "UDP", "SCTP")


class TopologyError(ValueError):
    """An object that names a workload or namespace but cannot be read as one."""


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TopologyError(f"{what} is not a mapping")
    return value


def _labels(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    labels = _mapping(value, what)
    for k, v in labels.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TopologyError(f"{what}: label {k!r} is not a string pair")
    return tuple(sorted(labels.items()))


def _ports(pod_spec: Mapping[str, Any], what: str) -> tuple[ContainerPort, ...]:
    containers = pod_spec.get("containers") or []
    if not isinstance(containers, list):
        raise TopologyError(f"{what}.containers is not a list")
    ports: list[ContainerPort] = []
    for i, container in enumerate(containers):
        c = _mapping(container, f"{what}.containers[{i}]")
        for j, entry in enumerate(c.get("ports") or []):
            where = f"{what}.containers[{i}].ports[{j}]"
            p = _mapping(entry, where)
            number = p.get("containerPort")
            if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 65536:
                raise TopologyError(f"{where}.containerPort must be a port number")
            protocol = p.get("protocol") or "TCP"
            if protocol not in _PROTOCOLS:
                raise TopologyError(f"{where}.protocol must be TCP, UDP or SCTP")
            name = p.get("name")
            ports.append(ContainerPort(number, protocol, name if isinstance(name, str) else None))
    return tuple(ports)


def pod_owner(pod: Mapping[str, Any], *, top_level: bool = False) -> tuple[str, str] | None:
    """The pod's controller as ``(kind, name)``, or ``None`` for a pod of its own."""
    meta = _mapping(pod.get("metadata"), "metadata")
    refs = meta.get("ownerReferences") or []
    if not isinstance(refs, list):
        raise TopologyError("metadata.ownerReferences is not a list")
    for ref in refs:
        r = _mapping(ref, "metadata.ownerReferences[]")
        kind, name = r.get("kind"), r.get("name")
        if r.get("controller") is True and isinstance(kind, str) and isinstance(name, str):
            if kind == "Node":
                return None  # a static (mirror) pod: its own workload
            if top_level and kind == "ReplicaSet":
                labels = _mapping(meta.get("labels"), "metadata.labels")
                suffix = labels.get("pod-template-hash")
                if isinstance(suffix, str) and suffix and name.endswith("-" + suffix):
                    return "Deployment", name[: -len(suffix) - 1]
            return kind, name
    return None


def workload_of(
    obj: Mapping[str, Any], *, default_namespace: str = "default", top_level: bool = False
) -> Workload | None:
    """The workload an object makes (``None`` for other kinds); raises
    :class:`TopologyError` naming the field that cannot be read."""
    kind = obj.get("kind")
    if kind not in WORKLOAD_KINDS:
        return None
    meta = _mapping(obj.get("metadata"), "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise TopologyError("metadata.name is missing")
    namespace = meta.get("namespace") or default_namespace
    if not isinstance(namespace, str):
        raise TopologyError("metadata.namespace is not a string")
    spec = _mapping(obj.get("spec"), "spec")
    if kind == "Pod":
        owner = pod_owner(obj, top_level=top_level)
        own_kind, own_name = owner if owner is not None else ("Pod", name)
        return Workload(
            namespace,
            own_name,
            own_kind,
            _labels(meta.get("labels"), "metadata.labels"),
            _ports(spec, "spec"),
        )
    where = "spec.template"
    if kind == "CronJob":
        job = _mapping(_mapping(spec.get("jobTemplate"), "spec.jobTemplate").get("spec"), "spec")
        template = _mapping(job.get("template"), "spec.jobTemplate.spec.template")
        where = "spec.jobTemplate.spec.template"
    else:
        template = _mapping(spec.get("template"), where)
    tmeta = _mapping(template.get("metadata"), f"{where}.metadata")
    return Workload(
        namespace,
        name,
        str(kind),
        _labels(tmeta.get("labels"), f"{where}.metadata.labels"),
        _ports(_mapping(template.get("spec"), f"{where}.spec"), f"{where}.spec"),
    )


def namespace_of(obj: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """``(name, labels)`` of a Namespace object (``None`` for other kinds)."""
    if obj.get("kind") != "Namespace":
        return None
    meta = _mapping(obj.get("metadata"), "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise TopologyError("metadata.name is missing")
    return name, _labels(meta.get("labels"), "metadata.labels")


def topology_of(
    objects: Iterable[Mapping[str, Any]], *, default_namespace: str = "default"
) -> Topology:
    """The topology of a set of objects (other kinds are ignored)."""
    workloads: list[Workload] = []
    namespaces: dict[str, dict[str, str]] = {}
    for obj in objects:
        ns = namespace_of(obj)
        if ns is not None:
            namespaces[ns[0]] = dict(ns[1])
            continue
        workload = workload_of(obj, default_namespace=default_namespace)
        if workload is not None:
            workloads.append(workload)
    return Topology.build(workloads, namespaces)
