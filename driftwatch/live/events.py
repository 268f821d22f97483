"""What :class:`~driftwatch.live.watcher.PolicyWatcher` yields: the live state once, then
every change of it. Keys are ``(namespace, name)``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from driftwatch.policy import NetworkPolicy

__all__ = [
    "LiveDeleted",
    "LiveEvent",
    "LiveInvalid",
    "LivePut",
    "LiveResynced",
    "LiveSynced",
]


@dataclass(frozen=True, slots=True)
class LiveSynced:
    """The full live state after the initial list; always the first event, and only once.

    ``resource_version`` is that of the list (of the last one, with several namespaces).
    """

    policies: Mapping[tuple[str, str], NetworkPolicy]
    resource_version: str


@dataclass(frozen=True, slots=True)
class LivePut:
    """A policy was added (``created``: the key was absent, or invalid, until now) or its
    content changed. ``policy.origin`` names the last writer; ``resource_version`` is the
    object's."""

    policy: NetworkPolicy
    resource_version: str
    created: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.policy.namespace, self.policy.name)


@dataclass(frozen=True, slots=True)
class LiveDeleted:
    """A policy is gone. ``last`` is its last known content (None when the key was invalid).
    ``resource_version`` is the deletion's, or that of the relist that noticed it."""

    namespace: str
    name: str
    last: NetworkPolicy | None
    resource_version: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class LiveResynced:
    """A relist (after 410 Gone) has been reconciled: ``changed`` events were yielded for what
    was missed after ``since`` (the resourceVersion the watch could not resume from) up to
    ``resource_version``. Informational."""

    resource_version: str
    changed: int
    since: str = ""


@dataclass(frozen=True, slots=True)
class LiveInvalid:
    """The server holds an object that :func:`~driftwatch.policy.parse_policy` rejects.

    From now on the key counts as absent (drop it as on :class:`LiveDeleted`), until a valid
    version arrives as a :class:`LivePut` with ``created=True``. Reported once per distinct
    message; deleting the object yields :class:`LiveDeleted` with ``last=None``.
    """

    namespace: str
    name: str
    message: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


LiveEvent = LiveSynced | LivePut | LiveDeleted | LiveResynced | LiveInvalid
"""Any of the values the watcher yields."""
