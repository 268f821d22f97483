"""Discovery documents: ``/version``, ``/api``, ``/apis``, ``/apis/{group}`` and the
``APIResourceList`` of each group-version, generated from the registry.

kubectl asks for the aggregated discovery format (``APIGroupDiscoveryList``) first; it
accepts the plain documents served here and then fetches each group-version's list.
"""

from __future__ import annotations

from typing import Any

from driftwatch.sandbox.resources import ALL_VERBS, Registry, ResourceType

__all__ = [
    "SERVER_VERSION",
    "api_group",
    "api_group_list",
    "api_versions",
    "resource_list",
    "version_info",
]

Obj = dict[str, Any]

SERVER_VERSION = "v1.32.0-sandbox"
"""Reported as ``gitVersion``. gcloud's kubectl dispatcher picks kubectl 1.32 for it."""


def version_info(git_version: str = SERVER_VERSION) -> Obj:
    major, _, rest = git_version.lstrip("v").partition(".")
    minor = rest.partition(".")[0]
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(registry: Registry, group: str) -> Obj:
    versions = [
        {"groupVersion": f"{group}/{version}", "version": version}
        for g, version in registry.group_versions()
        if g == group
    ]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list(registry: Registry) -> Obj:
    groups = list(dict.fromkeys(g for g, _ in registry.group_versions() if g))
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(registry, g) for g in groups],
    }


def api_group(registry: Registry, group: str) -> Obj | None:
    if not any(g == group for g, _ in registry.group_versions()) or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(registry, group)}


def _resource(rtype: ResourceType) -> Obj:
    entry: Obj = {
        "name": rtype.plural,
        "singularName": rtype.singular,
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": list(ALL_VERBS),
    }
    if rtype.short_names:
        entry["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        entry["categories"] = list(rtype.categories)
    return entry


def resource_list(registry: Registry, group: str, version: str) -> Obj | None:
    """The ``APIResourceList`` of one group-version (None if not served)."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources: list[Obj] = []
    for rtype in sorted(types, key=lambda t: t.plural):
        resources.append(_resource(rtype))
        if rtype.has_status:
            resources.append(
                {
                    "name": f"{rtype.plural}/status",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
