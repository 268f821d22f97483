"""A kubeconfig for the sandbox that both kubectl and kubernetes_asyncio accept:
plain ``http://127.0.0.1:PORT``, a bearer-token user, one context made current.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["kubeconfig", "write_kubeconfig"]


def kubeconfig(
    server: str,
    token: str | None,
    *,
    name: str = "driftwatch-sandbox",
    namespace: str | None = None,
) -> dict[str, Any]:
    """The kubeconfig document. ``insecure-skip-tls-verify`` is set (the server is plain
    HTTP on loopback, so there is no certificate to check)."""
    user: dict[str, Any] = {"token": token} if token is not None else {}
    context: dict[str, Any] = {"cluster": name, "user": name}
    if namespace is not None:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {"name": name, "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": context}],
        "current-context": name,
    }


def write_kubeconfig(path: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` to ``path``, readable by its owner only (it holds a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        yaml.safe_dump(document, handle, sort_keys=False)
    return path
