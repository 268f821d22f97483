"""OpenAPI v3: the ``/openapi/v3`` index and one document per group-version.

kubectl needs these for ``apply``: it looks for the PATCH operation of the kind (found by
its ``x-kubernetes-group-version-kind``) and, when that operation declares the
``fieldValidation`` query parameter, leaves validation to the server instead of refusing
with "failed to download openapi". It also computes strategic merge patches and ``explain``
output from the component schemas. ``/openapi/v2`` is not served (404). Custom kinds are
described by their CRD's schema, as on the real server.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from driftwatch.sandbox.operations import PATCH_TYPES, STRATEGIC_MERGE_PATCH
from driftwatch.sandbox.resources import Registry, ResourceType
from driftwatch.sandbox.schemas import META, SCHEMAS, custom_schemas, ref

__all__ = ["OpenAPI"]

Obj = dict[str, Any]

_QUERY = {"type": "string", "uniqueItems": True}
_BOOL_QUERY = {"type": "boolean", "uniqueItems": True}
_INT_QUERY = {"type": "integer", "uniqueItems": True}


def _query(name: str, schema: Obj = _QUERY) -> Obj:
    return {"name": name, "in": "query", "schema": schema}


def _path_param(name: str) -> Obj:
    return {"name": name, "in": "path", "required": True, "schema": _QUERY}


_WRITE = [_query("dryRun"), _query("fieldManager"), _query("fieldValidation")]
_LIST = [
    _query("allowWatchBookmarks", _BOOL_QUERY),
    _query("continue"),
    _query("fieldSelector"),
    _query("labelSelector"),
    _query("limit", _INT_QUERY),
    _query("resourceVersion"),
    _query("resourceVersionMatch"),
    _query("sendInitialEvents", _BOOL_QUERY),
    _query("timeoutSeconds", _INT_QUERY),
    _query("watch", _BOOL_QUERY),
]


def _content(schema: Obj, types: tuple[str, ...] = ("application/json", "application/yaml")) -> Obj:
    return {t: {"schema": schema} for t in types}


def _op(rtype: ResourceType, action: str, op_id: str, schema: str, params: list[Obj]) -> Obj:
    operation: Obj = {
        "operationId": op_id,
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": _content(ref(schema))}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rtype.group,
            "kind": rtype.kind,
            "version": rtype.version,
        },
        "tags": [rtype.api_version.replace("/", "_").replace(".", "_")],
    }
    if action in ("post", "put"):
        operation["requestBody"] = {"content": _content(ref(rtype.schema)), "required": True}
    if action == "patch":
        # kubectl apply sends a strategic merge patch only where this lists it: custom kinds
        # take none (the real server answers 415), so kubectl sends them a merge patch.
        types = [t for t in PATCH_TYPES if not (rtype.custom and t == STRATEGIC_MERGE_PATCH)]
        operation["requestBody"] = {
            "content": {t: {"schema": {"type": "object"}} for t in types},
            "required": True,
        }
        operation["parameters"] = [*params, _query("force", _BOOL_QUERY)]
    return operation


def _paths(rtype: ResourceType) -> Obj:
    scope = "Namespaced" if rtype.namespaced else ""
    group = "".join(p.capitalize() for p in rtype.group.split(".")[:1]) or "Core"
    stem = f"{group}{rtype.version.capitalize()}{scope}{rtype.kind}"
    list_schema = rtype.schema + "List"
    ns = [_path_param("namespace")] if rtype.namespaced else []
    name = [_path_param("name")]
    item = {
        "get": _op(rtype, "get", f"read{stem}", rtype.schema, []),
        "put": _op(rtype, "put", f"replace{stem}", rtype.schema, list(_WRITE)),
        "patch": _op(rtype, "patch", f"patch{stem}", rtype.schema, list(_WRITE)),
        "delete": _op(rtype, "delete", f"delete{stem}", META + "Status", [_query("dryRun")]),
        "parameters": [*name, *ns],
    }
    collection = {
        "get": _op(rtype, "list", f"list{stem}", list_schema, list(_LIST)),
        "post": _op(rtype, "post", f"create{stem}", rtype.schema, list(_WRITE)),
        "delete": _op(
            rtype, "deletecollection", f"deleteCollection{stem}", META + "Status", list(_LIST)
        ),
        "parameters": ns,
    }
    base = rtype.base_path("{namespace}")
    paths: Obj = {base: collection, f"{base}/{{name}}": item}
    if rtype.has_status:
        paths[f"{base}/{{name}}/status"] = {
            "get": _op(rtype, "get", f"read{stem}Status", rtype.schema, []),
            "put": _op(rtype, "put", f"replace{stem}Status", rtype.schema, list(_WRITE)),
            "patch": _op(rtype, "patch", f"patch{stem}Status", rtype.schema, list(_WRITE)),
            "parameters": [*name, *ns],
        }
    if rtype.namespaced:
        all_stem = f"{group}{rtype.version.capitalize()}{rtype.kind}ForAllNamespaces"
        paths[rtype.base_path()] = {
            "get": _op(rtype, "list", f"list{all_stem}", list_schema, list(_LIST))
        }
    return paths


def _reachable(roots: list[str], schemas: dict[str, Obj]) -> dict[str, Obj]:
    """The component schemas ``roots`` refer to, transitively."""
    found: dict[str, Obj] = {}
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in found or name not in schemas:
            continue
        found[name] = schemas[name]
        text = json.dumps(schemas[name])
        prefix = '"#/components/schemas/'
        start = text.find(prefix)
        while start >= 0:
            end = text.index('"', start + len(prefix))
            stack.append(text[start + len(prefix) : end])
            start = text.find(prefix, end)
    return dict(sorted(found.items()))


class OpenAPI:
    """The documents, built from the registry (again whenever a CRD changed it); each
    carries a content hash in the index."""

    def __init__(self, registry: Registry, server_version: str) -> None:
        self.registry = registry
        self.server_version = server_version
        self._documents: dict[str, bytes] = {}
        self._generation = -1

    @property
    def documents(self) -> dict[str, bytes]:
        if self._generation != self.registry.generation:
            self._documents = self._build()
            self._generation = self.registry.generation
        return self._documents

    def _build(self) -> dict[str, bytes]:
        registry = self.registry
        schemas = dict(SCHEMAS)
        for type_key, schema in registry.schemas.items():
            rtype = registry.get(*type_key)
            if rtype is not None:
                schemas.update(custom_schemas(rtype.group, rtype.version, rtype.kind, schema))
        documents: dict[str, bytes] = {}
        for group, version in registry.group_versions():
            types = registry.in_group_version(group, version)
            paths: Obj = {}
            roots = [META + "Status"]
            for rtype in types:
                paths.update(_paths(rtype))
                roots += [rtype.schema, rtype.schema + "List"]
            document = {
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": self.server_version},
                "paths": paths,
                "components": {"schemas": _reachable(roots, schemas)},
            }
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            documents[key] = json.dumps(document, separators=(",", ":")).encode()
        return documents

    def index(self) -> Obj:
        return {
            "paths": {
                key: {
                    "serverRelativeURL": f"/openapi/v3/{key}?hash="
                    + hashlib.sha512(body).hexdigest().upper()
                }
                for key, body in self.documents.items()
            }
        }

    def document(self, key: str) -> bytes | None:
        """The document of ``api/v1`` or ``apis/{group}/{version}``."""
        return self.documents.get(key.strip("/"))
