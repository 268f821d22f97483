"""The live state of the cluster's NetworkPolicies."""

from driftwatch.live.snapshot import LiveSnapshotError, load_snapshot

__all__ = ["LiveSnapshotError", "load_snapshot"]
