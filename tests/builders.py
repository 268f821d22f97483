"""Small builders for NetworkPolicy objects in tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from driftwatch.policy import NetworkPolicy, Provenance, parse_policy


def np_obj(
    name: str = "web",
    namespace: str | None = "shop",
    spec: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": spec if spec is not None else {"podSelector": {}},
    }


def np(name: str = "web", namespace: str = "shop", **kw: Any) -> NetworkPolicy:
    source = kw.pop("source", None)
    policy = parse_policy(np_obj(name, namespace, **kw))
    if source is not None:
        policy = replace(policy, source=source if isinstance(source, Provenance) else None)
    return policy


def allow_from(app: str, port: int = 8080) -> dict[str, Any]:
    return {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": app}}}], "ports": [{"port": port}]}
        ],
    }
