"""The desired state: every NetworkPolicy found in the files or the Git commit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from driftwatch.policy import NetworkPolicy

__all__ = ["DesiredState", "DesiredStateError"]


@dataclass(frozen=True, slots=True)
class DesiredState:
    """Policies keyed by ``(namespace, name)``, each with its ``source`` provenance.

    ``commit`` is the commit the state was read from (HEAD for a Git work tree),
    or ``None`` outside Git. ``source`` describes where it came from: the path
    as given, or ``URL@ref`` (``URL@ref:subpath``) with any credentials removed.
    """

    policies: Mapping[tuple[str, str], NetworkPolicy]
    commit: str | None
    source: str


class DesiredStateError(Exception):
    """The desired state cannot be loaded. ``str()`` is one line, naming file:line when known."""

    def __init__(self, message: str) -> None:
        self.message = " ".join(message.split())
        super().__init__(self.message)
