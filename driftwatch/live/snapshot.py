"""Live state from a file: what ``kubectl get networkpolicies -A -o yaml`` (or ``-o json``) wrote.

For offline checks and tests; the daemon itself watches the API server.
"""

from __future__ import annotations

from pathlib import Path

from driftwatch.manifests import (
    ManifestError,
    is_resource,
    iter_manifest_files,
    paused_gc,
    read_file,
)
from driftwatch.policy import NetworkPolicy, PolicyError, parse_policy

__all__ = ["LiveSnapshotError", "load_snapshot"]


class LiveSnapshotError(Exception):
    """A snapshot that cannot be loaded. ``str()`` is one line naming file:line when known."""

    def __init__(self, message: str) -> None:
        self.message = " ".join(message.split())
        super().__init__(self.message)


def load_snapshot(
    path: Path, *, default_namespace: str = "default"
) -> dict[tuple[str, str], NetworkPolicy]:
    """The NetworkPolicies in a snapshot file, or in every manifest file under a directory.

    Accepts ``List``/``NetworkPolicyList`` dumps and plain NetworkPolicy documents,
    in YAML or JSON; other kinds are skipped. Each policy keeps the ``origin``
    (last writer, from ``managedFields``) that :func:`parse_policy` reads.
    Files are named as found from ``path`` (``snap/a.yaml``) in errors.

    Raises :class:`LiveSnapshotError` for an unreadable or malformed file, an
    invalid policy, or the same ``(namespace, name)`` twice.
    """
    policies: dict[tuple[str, str], NetworkPolicy] = {}
    seen_at: dict[tuple[str, str], str] = {}
    with paused_gc():
        try:
            files = iter_manifest_files(path)
        except ManifestError as error:
            raise LiveSnapshotError(str(error)) from None
        for file in files:
            try:
                documents = read_file(file, str(file))
            except ManifestError as error:
                raise LiveSnapshotError(str(error)) from None
            for document in documents:
                if not is_resource(document.data, "NetworkPolicy", "networking.k8s.io"):
                    continue
                where = f"{document.path}:{document.line}"
                try:
                    policy = parse_policy(document.data, default_namespace=default_namespace)
                except PolicyError as error:
                    raise LiveSnapshotError(f"{where}: {error}") from None
                key = (policy.namespace, policy.name)
                if key in policies:
                    raise LiveSnapshotError(
                        f"duplicate NetworkPolicy {key[0]}/{key[1]}: {seen_at[key]} and {where}"
                    )
                policies[key] = policy
                seen_at[key] = where
    return policies
