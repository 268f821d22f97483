"""Map a request path to what it addresses: a discovery document or a resource.

Resource paths, as the real server lays them out (``/api/v1`` for the core group)::

    /apis/{group}/{version}/{plural}                                  all namespaces
    /apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}[/{sub}]] namespaced
    /apis/{group}/{version}/{plural}[/{name}[/{sub}]]                 cluster-scoped

plus the deprecated ``.../watch/...`` form of each collection and object path.
"""

from __future__ import annotations

from dataclasses import dataclass

from driftwatch.sandbox.resources import Registry, ResourceType

__all__ = ["GroupVersionPath", "Target", "resolve"]


@dataclass(frozen=True, slots=True)
class Target:
    """A resource request: ``namespace`` None means cluster-scoped or across namespaces."""

    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str
    legacy_watch: bool = False


@dataclass(frozen=True, slots=True)
class GroupVersionPath:
    """``/api``, ``/apis``, ``/apis/{group}`` or ``/api[s]/.../{version}`` (discovery)."""

    group: str | None
    version: str | None
    core: bool


def _split(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def resolve(registry: Registry, path: str) -> Target | GroupVersionPath | None:
    """What ``path`` addresses, or None (404)."""
    segments = _split(path)
    if not segments or segments[0] not in ("api", "apis"):
        return None
    core = segments[0] == "api"
    if core:
        if len(segments) <= 2:
            return GroupVersionPath("", segments[1] if len(segments) == 2 else None, True)
        group, version, rest = "", segments[1], segments[2:]
    else:
        if len(segments) <= 3:
            group_name = segments[1] if len(segments) >= 2 else None
            version_name = segments[2] if len(segments) == 3 else None
            return GroupVersionPath(group_name, version_name, False)
        group, version, rest = segments[1], segments[2], segments[3:]
    legacy_watch = rest[0] == "watch"
    if legacy_watch:
        rest = rest[1:]
        if not rest:
            return None
    target = _resource(registry, group, version, rest, legacy_watch)
    if target is None or (target.subresource and target.subresource != "status"):
        return None
    if target.subresource and (not target.rtype.has_status or legacy_watch):
        return None
    return target


def _resource(
    registry: Registry, group: str, version: str, rest: list[str], legacy_watch: bool
) -> Target | None:
    if rest[0] == "namespaces" and len(rest) >= 3:
        rtype = registry.get(group, version, rest[2])
        if rtype is not None and rtype.namespaced and len(rest) <= 5:
            name = rest[3] if len(rest) >= 4 else None
            sub = rest[4] if len(rest) == 5 else ""
            return Target(rtype, rest[1], name, sub, legacy_watch)
    rtype = registry.get(group, version, rest[0])
    if rtype is None or len(rest) > 3:
        return None
    name = rest[1] if len(rest) >= 2 else None
    if rtype.namespaced and name is not None:
        return None
    return Target(rtype, None, name, rest[2] if len(rest) == 3 else "", legacy_watch)
