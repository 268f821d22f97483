"""Seeding the sandbox from manifest files and directories, as if ``kubectl apply -f`` had
been run on each: objects get the ``kubectl.kubernetes.io/last-applied-configuration``
annotation and ``kubectl-client-side-apply`` as their field manager, and the namespace of
every namespaced object is created first when it does not exist.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from driftwatch.manifests import ManifestError, iter_manifest_files, read_file
from driftwatch.policy import LAST_APPLIED
from driftwatch.sandbox.errors import ApiError
from driftwatch.sandbox.operations import Operations, WriteOptions
from driftwatch.sandbox.resources import NAMESPACES

__all__ = ["SEED_MANAGER", "SeedError", "last_applied", "seed_paths"]

Obj = dict[str, Any]

SEED_MANAGER = "kubectl-client-side-apply"


class SeedError(Exception):
    """A seed file that cannot be loaded; ``str()`` is ``path:line: message``."""


def last_applied(obj: Obj) -> str:
    """The annotation value ``kubectl apply`` writes: compact JSON, keys sorted, newline."""
    meta = dict(obj.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":")) + "\n"


def _annotated(obj: Obj, namespace: str | None) -> Obj:
    meta = dict(obj.get("metadata") or {})
    if namespace is not None:
        meta["namespace"] = namespace
    obj = {**obj, "metadata": meta}
    applied = last_applied(obj)
    meta["annotations"] = {**(meta.get("annotations") or {}), LAST_APPLIED: applied}
    return obj


def seed_paths(
    ops: Operations, paths: Iterable[str | os.PathLike[str]], *, manager: str = SEED_MANAGER
) -> list[Obj]:
    """Create every object in the manifests under ``paths``; returns the stored objects."""
    registry = ops.store.registry
    options = WriteOptions(manager=manager, field_validation="Strict")
    stored: list[Obj] = []
    for root in paths:
        try:
            files = iter_manifest_files(Path(root))
            documents = [doc for path in files for doc in read_file(path, str(path))]
        except ManifestError as error:
            raise SeedError(str(error)) from None
        for doc in documents:
            where = f"{doc.path}:{doc.line}"
            data = doc.data
            api_version, kind = data.get("apiVersion"), data.get("kind")
            rtype = (
                registry.by_kind(api_version, kind)
                if isinstance(api_version, str) and isinstance(kind, str)
                else None
            )
            if rtype is None:
                raise SeedError(f"{where}: {kind} ({api_version}) is not served by the sandbox")
            meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
            namespace = str(meta.get("namespace") or "default") if rtype.namespaced else None
            try:
                if namespace is not None and ops.store.get(NAMESPACES, None, namespace) is None:
                    namespace_obj = _annotated(
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                        None,
                    )
                    ops.create(NAMESPACES, None, namespace_obj, options)
                body = _annotated(data, namespace)
                name = body["metadata"].get("name")
                if isinstance(name, str) and ops.store.get(rtype, namespace, name) is not None:
                    result = ops.replace(rtype, namespace, name, body, options, unconditional=True)
                else:
                    result = ops.create(rtype, namespace, body, options)
            except ApiError as error:
                raise SeedError(f"{where}: {error.message}") from None
            stored.append(result.obj)
    return stored
