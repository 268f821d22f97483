"""Reading Kubernetes manifest files (YAML or JSON) into documents with file and line.

Knows YAML, JSON and Kubernetes ``List`` objects; nothing about drift or policies.
"""

from driftwatch.manifests.collector import paused_gc
from driftwatch.manifests.reader import (
    MANIFEST_SUFFIXES,
    Document,
    ManifestError,
    is_resource,
    iter_manifest_files,
    read_documents,
    read_file,
)

__all__ = [
    "MANIFEST_SUFFIXES",
    "Document",
    "ManifestError",
    "is_resource",
    "iter_manifest_files",
    "paused_gc",
    "read_documents",
    "read_file",
]
