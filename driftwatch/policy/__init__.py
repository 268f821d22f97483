"""The canonical NetworkPolicy model: parsing, normalisation, validation, rendering.

Pure code: no I/O, no event loop.
"""

from driftwatch.policy.model import (
    DEFAULT_CLUSTER,
    EGRESS,
    INGRESS,
    IPBlock,
    LabelSelector,
    LiveOrigin,
    NetworkPolicy,
    Peer,
    PolicyKey,
    PolicyPort,
    PolicyRule,
    PolicySpec,
    PolicyType,
    Provenance,
    Requirement,
)
from driftwatch.policy.parse import (
    API_VERSION,
    KIND,
    LAST_APPLIED,
    PolicyError,
    live_origin,
    parse_policy,
)
from driftwatch.policy.render import to_manifest, to_yaml
from driftwatch.policy.selector import parse_selector_string

__all__ = [
    "API_VERSION",
    "DEFAULT_CLUSTER",
    "EGRESS",
    "INGRESS",
    "KIND",
    "LAST_APPLIED",
    "IPBlock",
    "LabelSelector",
    "LiveOrigin",
    "NetworkPolicy",
    "Peer",
    "PolicyError",
    "PolicyKey",
    "PolicyPort",
    "PolicyRule",
    "PolicySpec",
    "PolicyType",
    "Provenance",
    "Requirement",
    "live_origin",
    "parse_policy",
    "parse_selector_string",
    "to_manifest",
    "to_yaml",
]
