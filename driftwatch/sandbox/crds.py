"""CustomResourceDefinitions: a CRD written to ``apiextensions.k8s.io/v1`` makes its kind
served at once, as the real server's establishing controller does.

:func:`prepare_crd` validates a CRD as the real server does (the parts that matter for
serving it: name, group, names, scope, versions with exactly one storage version, a schema
per version, printer columns) and sets its status (``NamesAccepted`` and ``Established``,
``acceptedNames``, ``storedVersions``). :class:`CrdController` listens to the store's
commits: a created or changed CRD (re)registers one :class:`ResourceType` per served
version, with its schema (for pruning and validation, :mod:`driftwatch.sandbox.structural`,
and OpenAPI), its printer columns (for ``kubectl get``) and its status subresource; a
deleted CRD takes its objects with it (one DELETED event each) and ends their watches.

Simplified: each served version keeps its own objects (no conversion between versions),
and names are not checked for conflicts with other CRDs.
"""

from __future__ import annotations

import re
from typing import Any

from driftwatch.sandbox.errors import FieldCause, invalid
from driftwatch.sandbox.resources import (
    CUSTOM_RESOURCE_DEFINITIONS,
    PrinterColumn,
    ResourceType,
)
from driftwatch.sandbox.schemas import schema_name
from driftwatch.sandbox.store import Event, Store

__all__ = ["CrdController", "custom_types", "prepare_crd"]

Obj = dict[str, Any]

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
_SCOPES = ("Cluster", "Namespaced")


def _names(spec: Obj, causes: list[FieldCause]) -> Obj:
    names = spec.get("names")
    if not isinstance(names, dict):
        causes.append(("FieldValueRequired", "spec.names", "Required value"))
        return {}
    plural, kind = names.get("plural"), names.get("kind")
    if not isinstance(plural, str) or not plural:
        causes.append(("FieldValueRequired", "spec.names.plural", "Required value"))
    elif not _DNS_LABEL.fullmatch(plural):
        causes.append(
            (
                "FieldValueInvalid",
                "spec.names.plural",
                f'Invalid value: "{plural}": a lowercase RFC 1123 label must consist of lower '
                "case alphanumeric characters or '-'",
            )
        )
    if not isinstance(kind, str) or not kind:
        causes.append(("FieldValueRequired", "spec.names.kind", "Required value"))
    elif not _KIND.fullmatch(kind):
        causes.append(("FieldValueInvalid", "spec.names.kind", f'Invalid value: "{kind}"'))
    out = dict(names)
    if isinstance(kind, str) and kind:
        out.setdefault("singular", kind.lower())
        out.setdefault("listKind", f"{kind}List")
    return out


def _columns(version: Obj, where: str, causes: list[FieldCause]) -> None:
    columns = version.get("additionalPrinterColumns") or []
    if not isinstance(columns, list):
        causes.append(("FieldValueInvalid", f"{where}.additionalPrinterColumns", "must be a list"))
        return
    for j, column in enumerate(columns):
        at = f"{where}.additionalPrinterColumns[{j}]"
        if not isinstance(column, dict):
            causes.append(("FieldValueInvalid", at, "must be an object"))
            continue
        for key in ("name", "jsonPath"):
            if not isinstance(column.get(key), str) or not column[key]:
                causes.append(("FieldValueRequired", f"{at}.{key}", "Required value"))
        if column.get("type") not in _COLUMN_TYPES:
            supported = ", ".join(f'"{t}"' for t in _COLUMN_TYPES)
            causes.append(
                (
                    "FieldValueNotSupported",
                    f"{at}.type",
                    f'Unsupported value: "{column.get("type")}": supported values: {supported}',
                )
            )


def _versions(spec: Obj, causes: list[FieldCause]) -> None:
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(("FieldValueRequired", "spec.versions", "Required value"))
        return
    seen: set[str] = set()
    storage = 0
    for i, version in enumerate(versions):
        where = f"spec.versions[{i}]"
        if not isinstance(version, dict):
            causes.append(("FieldValueInvalid", where, "must be an object"))
            continue
        name = version.get("name")
        if not isinstance(name, str) or not _DNS_LABEL.fullmatch(name):
            causes.append(("FieldValueInvalid", f"{where}.name", f"Invalid value: {name!r}"))
        elif name in seen:
            causes.append(("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{name}"'))
        else:
            seen.add(name)
        storage += 1 if version.get("storage") is True else 0
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, dict):
            causes.append(
                (
                    "FieldValueRequired",
                    f"{where}.schema.openAPIV3Schema",
                    "Required value: schemas are required",
                )
            )
        elif schema.get("type") != "object":
            causes.append(
                (
                    "FieldValueInvalid",
                    f"{where}.schema.openAPIV3Schema.type",
                    'Unsupported value: must be "object" at the root',
                )
            )
        _columns(version, where, causes)
    if storage != 1:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )


def _conditions(old: Obj | None, now: str) -> list[Obj]:
    before = {
        c.get("type"): c
        for c in ((old or {}).get("status", {}).get("conditions") or [])
        if isinstance(c, dict)
    }

    def condition(kind: str, reason: str, message: str) -> Obj:
        kept = before.get(kind, {})
        since = kept.get("lastTransitionTime") if kept.get("status") == "True" else None
        return {
            "type": kind,
            "status": "True",
            "lastTransitionTime": since or now,
            "reason": reason,
            "message": message,
        }

    return [
        condition("NamesAccepted", "NoConflicts", "no conflicts found"),
        condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
    ]


def prepare_crd(rtype: ResourceType, obj: Obj, old: Obj | None, now: str) -> Obj:
    """Validate a CRD (422 naming the fields) and set its names' defaults and its status."""
    name = str(obj["metadata"].get("name", ""))
    spec = obj.get("spec")
    causes: list[FieldCause] = []
    if not isinstance(spec, dict):
        raise invalid(rtype.kind, rtype.group, name, [("FieldValueRequired", "spec", "Required")])
    group = spec.get("group")
    if not isinstance(group, str) or not group:
        causes.append(("FieldValueRequired", "spec.group", "Required value"))
    elif "." not in group or not _DNS_SUBDOMAIN.fullmatch(group):
        causes.append(
            (
                "FieldValueInvalid",
                "spec.group",
                f'Invalid value: "{group}": should be a domain with at least one dot',
            )
        )
    names = _names(spec, causes)
    scope = spec.get("scope")
    if scope not in _SCOPES:
        causes.append(
            (
                "FieldValueNotSupported",
                "spec.scope",
                f'Unsupported value: "{scope}": supported values: "Cluster", "Namespaced"',
            )
        )
    elif old is not None and old.get("spec", {}).get("scope") != scope:
        causes.append(("FieldValueInvalid", "spec.scope", "Invalid value: field is immutable"))
    _versions(spec, causes)
    if isinstance(group, str) and names.get("plural") and name != f"{names['plural']}.{group}":
        causes.append(
            (
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    if causes:
        raise invalid(rtype.kind, rtype.group, name, causes)
    spec = {**spec, "names": names}
    obj = {**obj, "spec": spec}
    storage = next(v["name"] for v in spec["versions"] if v.get("storage") is True)
    stored = list((old or {}).get("status", {}).get("storedVersions") or [])
    obj["status"] = {
        "conditions": _conditions(old, now),
        "acceptedNames": names,
        "storedVersions": [*stored, storage] if storage not in stored else stored,
    }
    return obj


def custom_types(crd: Obj) -> list[tuple[ResourceType, Obj]]:
    """One served type and its schema per served version of a (valid) CRD."""
    spec = crd["spec"]
    names = spec["names"]
    found: list[tuple[ResourceType, Obj]] = []
    for version in spec["versions"]:
        if version.get("served") is False:
            continue
        columns = tuple(
            PrinterColumn(
                name=str(c["name"]),
                type=str(c["type"]),
                json_path=str(c["jsonPath"]),
                priority=int(c.get("priority") or 0),
                format=str(c.get("format") or ""),
                description=str(c.get("description") or ""),
            )
            for c in version.get("additionalPrinterColumns") or []
        )
        rtype = ResourceType(
            group=spec["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names["kind"],
            namespaced=spec["scope"] == "Namespaced",
            schema=schema_name(spec["group"], version["name"], names["kind"]),
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            has_generation=True,
            has_status="status" in (version.get("subresources") or {}),
            custom=True,
            printer_columns=columns,
            singular_name=names.get("singular") or "",
        )
        found.append((rtype, version["schema"]["openAPIV3Schema"]))
    return found


class CrdController:
    """Keeps the registry in step with the stored CRDs (install with :meth:`attach`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def attach(self) -> CrdController:
        self.store.listeners.append(self._on_commit)
        for crd in self.store.select(CUSTOM_RESOURCE_DEFINITIONS):
            self._serve(crd, None)
        return self

    def _on_commit(self, event: Event) -> None:
        if event.rtype.key != CUSTOM_RESOURCE_DEFINITIONS.key:
            return
        if event.type == "DELETED":
            self._retire(event.obj)
        else:
            self._serve(event.obj, event.old)

    def _serve(self, crd: Obj, old: Obj | None) -> None:
        registry = self.store.registry
        now = {rtype.key for rtype, _ in custom_types(crd)}
        if old is not None:
            for rtype, _ in custom_types(old):
                if rtype.key not in now and registry.remove(rtype.key) is not None:
                    self.store.cut_watches(rtype=rtype)
        for rtype, schema in custom_types(crd):
            registry.add(rtype, schema)

    def _retire(self, crd: Obj) -> None:
        registry = self.store.registry
        manager = "apiextensions-apiserver"
        for rtype, _ in custom_types(crd):
            for obj in self.store.select(rtype):
                self.store.commit("DELETED", rtype, obj, obj, manager)
            self.store.cut_watches(rtype=rtype)
            registry.remove(rtype.key)
