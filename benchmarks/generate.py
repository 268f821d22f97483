"""Generate a large desired state (YAML files) and a drifted live snapshot (kubectl output).

Used by the benchmarks; deterministic for a given seed.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import yaml

from driftwatch.bench.world import generate_policy

__all__ = ["generate", "write_desired_by_namespace", "write_state"]


def _policy(rng: random.Random, ns: str, i: int, rules: int = 2, peers: int = 2) -> dict[str, Any]:
    # One generator for the benchmarks and `driftwatch bench` (the same policies, seed for seed).
    return generate_policy(rng, ns, i, rules, peers)


def _as_served(obj: dict[str, Any], rv: int) -> dict[str, Any]:
    """The object as the API server returns it: defaults and server metadata added."""
    out = copy.deepcopy(obj)
    spec = out["spec"]
    spec.setdefault("policyTypes", ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
    for direction in ("ingress", "egress"):
        for rule in spec.get(direction, []):
            for port in rule.get("ports", []):
                port.setdefault("protocol", "TCP")
    meta = out["metadata"]
    meta.update(
        {
            "uid": f"00000000-0000-0000-0000-{rv:012d}",
            "resourceVersion": str(rv),
            "generation": 1,
            "creationTimestamp": "2026-11-01T00:00:00Z",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(obj) + "\n"
            },
            "managedFields": [
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {}},
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "time": "2026-11-01T00:00:00Z",
                }
            ],
        }
    )
    return out


def generate(
    root: Path,
    *,
    policies: int = 10_000,
    drifts: int = 300,
    namespaces: int = 100,
    seed: int = 1,
    live_format: str = "json",
) -> tuple[Path, Path]:
    """Write ``root/desired/<ns>.yaml`` and ``root/live.<fmt>``; returns both paths."""
    rng = random.Random(seed)
    desired_dir = root / "desired"
    desired_dir.mkdir(parents=True, exist_ok=True)
    by_ns: dict[str, list[dict[str, Any]]] = {}
    for i in range(policies):
        ns = f"ns-{i % namespaces}"
        by_ns.setdefault(ns, []).append(_policy(rng, ns, i))
    live: list[dict[str, Any]] = []
    all_desired = [p for items in by_ns.values() for p in items]
    drifted = set(rng.sample(range(len(all_desired)), drifts))
    for idx, obj in enumerate(all_desired):
        served = _as_served(obj, 1000 + idx)
        if idx in drifted:
            kind = idx % 3
            if kind == 0:  # modified: a port changed by kubectl edit
                served["spec"]["ingress"][0]["ports"][0]["port"] = 9999
                served["metadata"]["managedFields"].append(
                    {
                        "manager": "kubectl-edit",
                        "operation": "Update",
                        "time": "2026-11-27T03:00:00Z",
                    }
                )
            elif kind == 1:  # missing
                continue
            else:  # modified labels only
                served["metadata"]["labels"]["owner"] = "someone"
        live.append(served)
    for j in range(drifts // 3):  # unmanaged
        live.append(_as_served(_policy(rng, "rogue", 100_000 + j), 900_000 + j))
    return desired_dir, write_state(root, by_ns, live, live_format)


def write_state(
    root: Path,
    by_ns: dict[str, list[dict[str, Any]]],
    live: list[dict[str, Any]],
    live_format: str,
) -> Path:
    """Write ``root/desired/<ns>.yaml`` and the live ``List`` (as kubectl prints it); the
    live file's path."""
    desired_dir = root / "desired"
    desired_dir.mkdir(parents=True, exist_ok=True)
    for ns, items in by_ns.items():
        with (desired_dir / f"{ns}.yaml").open("w") as fh:
            yaml.safe_dump_all(items, fh, sort_keys=False)
    doc = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": live}
    live_path = root / f"live.{live_format}"
    with live_path.open("w") as fh:
        if live_format == "json":
            json.dump(doc, fh, indent=4)
        else:
            yaml.safe_dump(doc, fh, sort_keys=True)
    return live_path


def write_desired_by_namespace(
    directory: Path, policies: int, namespaces: int, rng: random.Random
) -> dict[str, list[dict[str, Any]]]:
    """``policies`` policies spread over ``ns-0`` .. ``ns-{namespaces-1}``, written to
    ``directory`` as one file per namespace (JSON documents: valid YAML, quick to write,
    read by the YAML reader); returns them by namespace."""
    by_ns: dict[str, list[dict[str, Any]]] = {}
    for i in range(policies):
        ns = f"ns-{i % namespaces}"
        by_ns.setdefault(ns, []).append(_policy(rng, ns, i))
    directory.mkdir(parents=True, exist_ok=True)
    for ns, items in by_ns.items():
        (directory / f"{ns}.yaml").write_text("".join(f"---\n{json.dumps(p)}\n" for p in items))
    return by_ns
