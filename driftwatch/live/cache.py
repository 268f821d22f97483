"""The watcher's view of the cluster and the events that changes to it make.

Every change goes through here, so an event is yielded exactly when what a consumer sees
changes: a MODIFIED that leaves the parsed policy equal (a new resourceVersion, other
``managedFields``, another last-applied annotation) yields nothing, and so does an object
that a relist finds as it was. Pure bookkeeping: no I/O, nothing awaits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from driftwatch.live.events import LiveDeleted, LiveEvent, LiveInvalid, LivePut
from driftwatch.live.listing import Key, Listing, object_key, resource_version
from driftwatch.policy import NetworkPolicy, PolicyError, parse_policy

__all__ = ["CHECKPOINT", "PolicyCache"]

CHECKPOINT = 256


def _version(policy: NetworkPolicy) -> str:
    return (policy.origin.resource_version if policy.origin else None) or ""


class PolicyCache:
    """The valid policies by key, and the keys whose stored object is invalid (key ->
    message; those count as absent)."""

    __slots__ = ("invalid", "policies")

    def __init__(self) -> None:
        self.policies: dict[Key, NetworkPolicy] = {}
        self.invalid: dict[Key, str] = {}

    def load(self, listing: Listing) -> list[LiveInvalid]:
        """Take a first listing as it is; returns the invalid objects in it."""
        self.policies.update(listing.policies)
        reports = []
        for key, message in sorted(listing.invalid.items()):
            self.invalid[key] = message
            reports.append(LiveInvalid(key[0], key[1], message))
        return reports

    def apply(self, type_: str, obj: Mapping[str, Any]) -> LiveEvent | None:
        """A watch event (ADDED, MODIFIED or DELETED) -> the event to yield, if any."""
        version = resource_version(obj)
        if type_ == "DELETED":
            key = object_key(obj)
            return self._delete(key, version)
        try:
            policy = parse_policy(obj)
        except PolicyError as error:
            return self._invalidate(object_key(obj), str(error))
        return self._put(policy, version)

    def reconcile(self, namespace: str | None, listing: Listing) -> Iterator[LiveEvent | None]:
        """Make the keys of ``namespace`` (None: all) what ``listing`` says, yielding one
        event per difference: puts and invalid objects in the list's order (the server's
        key order), then deletions in key order. Yields ``None`` every :data:`CHECKPOINT`
        keys, a moment to hand the event loop back when nothing changes (10,000 keys are
        no work to do all at once). Empties ``listing.policies`` as it goes, so the copies
        it does not keep are freed a few at a time rather than all at once."""
        seen: set[Key] = set()
        index = 0
        for key in list(listing.policies):
            new = listing.policies.pop(key)
            seen.add(key)
            index += 1
            if index % CHECKPOINT == 0:
                yield None
            old = self.policies.get(key)
            if old is not None and _version(old) == _version(new) != "":
                continue  # the same stored object
            event: LiveEvent | None = self._put(new, _version(new))
            if event is not None:
                yield event
        for key, message in listing.invalid.items():
            seen.add(key)
            invalidated = self._invalidate(key, message)
            if invalidated is not None:
                yield invalidated

        def gone(key: Key) -> bool:
            return (namespace is None or key[0] == namespace) and key not in seen

        stale = sorted(k for k in (*self.policies, *self.invalid) if gone(k))
        yield None
        for key in stale:
            deleted = self._delete(key, listing.resource_version)
            if deleted is not None:
                yield deleted

    def _put(self, policy: NetworkPolicy, version: str) -> LivePut | None:
        key = (policy.namespace, policy.name)
        old = self.policies.get(key)
        self.policies[key] = policy  # the freshest origin, even when nothing else changed
        if self.invalid.pop(key, None) is None and old is not None and old == policy:
            return None
        return LivePut(policy, version, created=old is None)

    def _invalidate(self, key: Key, message: str) -> LiveInvalid | None:
        old = self.policies.pop(key, None)
        if old is None and self.invalid.get(key) == message:
            return None
        self.invalid[key] = message
        return LiveInvalid(key[0], key[1], message)

    def _delete(self, key: Key, version: str) -> LiveDeleted | None:
        old = self.policies.pop(key, None)
        was_invalid = self.invalid.pop(key, None) is not None
        if old is None and not was_invalid:
            return None
        return LiveDeleted(key[0], key[1], old, version)
