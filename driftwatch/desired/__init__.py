"""The desired state: NetworkPolicies from manifest files, kustomizations and Git commits."""

from driftwatch.desired.files import load_path
from driftwatch.desired.git import default_cache_dir, fetch_commit, load_git, mirror_dir
from driftwatch.desired.model import DesiredState, DesiredStateError

__all__ = [
    "DesiredState",
    "DesiredStateError",
    "default_cache_dir",
    "fetch_commit",
    "load_git",
    "load_path",
    "mirror_dir",
]
