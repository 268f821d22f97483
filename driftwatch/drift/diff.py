"""The text diff of two policies: what a reviewer reads next to the findings."""

from __future__ import annotations

import difflib

from driftwatch.policy import NetworkPolicy, to_yaml

__all__ = ["unified_diff"]


def unified_diff(desired: NetworkPolicy | None, live: NetworkPolicy | None) -> str:
    """Unified diff of the canonical YAML, desired first; an absent side is empty."""
    a = to_yaml(desired).splitlines(keepends=True) if desired is not None else []
    b = to_yaml(live).splitlines(keepends=True) if live is not None else []
    return "".join(difflib.unified_diff(a, b, "desired", "live", n=3))
