"""The connectivity model: what traffic a policy allows, and what a change gains or loses.

Pure code: no I/O, no event loop.
"""

from driftwatch.semantic.changes import ChangeSet, Flow, changes
from driftwatch.semantic.ipspace import METADATA_API, PUBLIC, PUBLIC_V4, PUBLIC_V6, IPMap
from driftwatch.semantic.model import EGRESS, INGRESS, DirectionView, PodPeer, PolicyView, view_of
from driftwatch.semantic.ports import ALL_PORTS, PortSet

__all__ = [
    "ALL_PORTS",
    "EGRESS",
    "INGRESS",
    "METADATA_API",
    "PUBLIC",
    "PUBLIC_V4",
    "PUBLIC_V6",
    "ChangeSet",
    "DirectionView",
    "Flow",
    "IPMap",
    "PodPeer",
    "PolicyView",
    "PortSet",
    "changes",
    "view_of",
]
