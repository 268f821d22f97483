"""The API verbs — get, list, create, replace, patch, apply, delete — on top of the store.

Used by the HTTP handlers and directly by Python callers (seeding, tests). Every write goes
through one pipeline: decode and check the body, default and validate it
(:mod:`driftwatch.sandbox.kinds`), enforce preconditions (``resourceVersion``, ``uid``),
stamp server metadata (``uid``, ``creationTimestamp``, ``generation``), record
``managedFields``, and commit — unless it changes nothing (no new resourceVersion, as on a
real server) or is a dry run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from driftwatch.sandbox import managed
from driftwatch.sandbox.deletion import DeleteVerbs
from driftwatch.sandbox.errors import ApiError, already_exists, bad_request, invalid, not_found
from driftwatch.sandbox.kinds import prepare
from driftwatch.sandbox.metadata import (
    check_preconditions,
    generate_name,
    keep_status,
    ordered,
    stamp_new,
    stamp_update,
    without_volatile,
)
from driftwatch.sandbox.pagination import page
from driftwatch.sandbox.patch import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from driftwatch.sandbox.resources import NAMESPACES, ResourceType
from driftwatch.sandbox.selectors import Selector
from driftwatch.sandbox.ssa import plan_apply
from driftwatch.sandbox.store import Store

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "PATCH_TYPES",
    "STRATEGIC_MERGE_PATCH",
    "Operations",
    "WriteOptions",
    "WriteResult",
    "list_item",
]

Obj = dict[str, Any]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """Query parameters of a write: ``fieldManager`` (resolved), ``fieldValidation``,
    ``dryRun=All``, and ``force`` for server-side apply."""

    manager: str
    field_validation: str = "Warn"
    dry_run: bool = False
    force: bool = False


@dataclass(slots=True)
class WriteResult:
    """The object as stored (or as it would be, for a dry run) and the warnings to send."""

    obj: Obj
    warnings: list[str] = field(default_factory=list)
    created: bool = False
    changed: bool = True


def list_item(obj: Obj) -> Obj:
    """An object as a list response carries it: without ``kind`` and ``apiVersion``."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}


class Operations(DeleteVerbs):
    """The verbs. ``clock`` gives seconds since the epoch (timestamps are to the second)."""

    def __init__(
        self,
        store: Store,
        *,
        auto_create_namespaces: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.auto_create_namespaces = auto_create_namespaces
        self.clock = clock

    def now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))

    def _schema(self, rtype: ResourceType) -> Obj | None:
        return self.store.registry.schemas.get(rtype.key) if rtype.custom else None

    # --- reads --------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(rtype, namespace, name)
        if obj is None:
            raise not_found(rtype, name)
        return obj

    def list_page(
        self,
        rtype: ResourceType,
        namespace: str | None,
        selector: Selector | None = None,
        *,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> tuple[list[Obj], Obj]:
        """One page of a list (stored objects, in key order) and the list's metadata
        (see :mod:`driftwatch.sandbox.pagination` for paging)."""
        return page(
            self.store.select(rtype, namespace, selector),
            self.store.revision,
            self.store.compacted,
            limit,
            continue_token,
        )

    def list_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        selector: Selector | None = None,
        *,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> Obj:
        """A ``<Kind>List`` as the API returns it (items without kind and apiVersion)."""
        items, meta = self.list_page(
            rtype, namespace, selector, limit=limit, continue_token=continue_token
        )
        return {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": meta,
            "items": [list_item(o) for o in items],
        }

    # --- writes -------------------------------------------------------------------------

    def _decode(self, rtype: ResourceType, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise bad_request(f"Object 'Kind' is missing in '{str(body)[:200]}'")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if kind not in (None, rtype.kind):
            raise bad_request(f"the kind in the data ({kind}) does not match {rtype.kind}")
        if api_version not in (None, rtype.api_version):
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rtype.api_version})"
            )
        # A shallow copy: prepare() builds the stored object afresh, so only the top level
        # and metadata (adjusted before it runs) must not be shared with the caller.
        obj: Obj = dict(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request(f"{rtype.kind}.metadata must be an object")
        obj["metadata"] = dict(meta)
        return obj

    def _scope(self, rtype: ResourceType, namespace: str | None, meta: Obj) -> None:
        if not rtype.namespaced:
            meta.pop("namespace", None)
            return
        given = meta.get("namespace")
        if given not in (None, "", namespace):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        meta["namespace"] = namespace

    def _require_namespace(self, namespace: str, opts: WriteOptions) -> None:
        if self.store.get(NAMESPACES, None, namespace) is not None:
            return
        if not self.auto_create_namespaces:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )
        self.create(NAMESPACES, None, {"metadata": {"name": namespace}}, opts)

    def create(
        self, rtype: ResourceType, namespace: str | None, body: Any, opts: WriteOptions
    ) -> WriteResult:
        return self._create(rtype, namespace, self._decode(rtype, body), opts, None)

    def _create(
        self,
        rtype: ResourceType,
        namespace: str | None,
        obj: Obj,
        opts: WriteOptions,
        applied: list[managed.Entry] | None,
    ) -> WriteResult:
        meta = obj["metadata"]
        self._scope(rtype, namespace, meta)
        if not meta.get("name") and isinstance(meta.get("generateName"), str):
            meta["name"] = generate_name(meta["generateName"])
        prepared = prepare(
            rtype, obj, None, opts.field_validation, schema=self._schema(rtype), now=self.now()
        )
        obj, meta = prepared.obj, prepared.obj["metadata"]
        if rtype.namespaced and namespace is not None:
            self._require_namespace(namespace, opts)
        now = self.now()
        stamp_new(rtype, meta, now)
        sent = managed.decode_entries(meta.pop("managedFields", None))
        entries = applied
        if entries is None:
            entries = managed.record_update(
                sent, None, obj, manager=opts.manager, api_version=rtype.api_version, now=now
            )
        if entries:
            meta["managedFields"] = managed.encode_entries(entries)
        obj = ordered(rtype, obj)
        if self.store.get(rtype, namespace, meta["name"]) is not None:
            raise already_exists(rtype, meta["name"])
        if opts.dry_run:
            return WriteResult(obj, prepared.warnings, created=True)
        stored = self.store.commit("ADDED", rtype, obj, None, opts.manager)
        return WriteResult(stored, prepared.warnings, created=True)

    def replace(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        opts: WriteOptions,
        *,
        subresource: str = "",
        unconditional: bool = False,
    ) -> WriteResult:
        """PUT. Custom kinds need the object's resourceVersion, as on the real server (its
        built-in kinds allow an unconditional update); ``unconditional`` (Python callers:
        seeding, ``put_object``) writes over whatever is stored."""
        old = self.get(rtype, namespace, name)
        obj = self._decode(rtype, body)
        if unconditional:
            obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        elif rtype.custom and not obj["metadata"].get("resourceVersion"):
            raise invalid(
                rtype.kind,
                rtype.group,
                name,
                [
                    (
                        "FieldValueInvalid",
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        return self._update(rtype, old, obj, opts, subresource=subresource)

    def _update(
        self,
        rtype: ResourceType,
        old: Obj,
        obj: Obj,
        opts: WriteOptions,
        *,
        subresource: str = "",
        applied: list[managed.Entry] | None = None,
    ) -> WriteResult:
        old_meta = old["metadata"]
        name, namespace = old_meta["name"], old_meta.get("namespace")
        meta = obj["metadata"]
        if meta.get("name") not in (None, "", name):
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        self._scope(rtype, namespace, meta)
        check_preconditions(rtype, meta, old_meta)
        obj = keep_status(rtype, obj, old, subresource)
        prepared = prepare(
            rtype, obj, old, opts.field_validation, schema=self._schema(rtype), now=self.now()
        )
        obj, meta = prepared.obj, prepared.obj["metadata"]
        stamp_update(rtype, obj, old)
        sent = managed.decode_entries(meta.pop("managedFields", None))
        entries = applied
        if entries is None:
            entries = managed.record_update(
                sent or managed.decode_entries(old_meta.get("managedFields")),
                old,
                obj,
                manager=opts.manager,
                api_version=rtype.api_version,
                now=self.now(),
                subresource=subresource,
            )
        if entries:
            meta["managedFields"] = managed.encode_entries(entries)
        return self._commit_update(rtype, old, ordered(rtype, obj), opts, prepared.warnings)

    def _commit_update(
        self, rtype: ResourceType, old: Obj, obj: Obj, opts: WriteOptions, warnings: list[str]
    ) -> WriteResult:
        if without_volatile(obj) == without_volatile(old):
            return WriteResult(old, warnings, changed=False)
        if opts.dry_run:
            return WriteResult(obj, warnings)
        return WriteResult(self.store.commit("MODIFIED", rtype, obj, old, opts.manager), warnings)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        opts: WriteOptions,
        *,
        patch_type: str,
        subresource: str = "",
    ) -> WriteResult:
        """JSON, merge or strategic merge patch (``patch`` already parsed from the body)."""
        if patch_type == APPLY_PATCH:
            return self.apply(rtype, namespace, name, patch, opts)
        old = self.get(rtype, namespace, name)
        try:
            if patch_type == JSON_PATCH:
                patched = json_patch(old, patch)
            elif patch_type == MERGE_PATCH:
                if not isinstance(patch, dict):
                    raise PatchError("a merge patch must be a JSON object", 400)
                patched = merge_patch(old, patch)
            elif patch_type == STRATEGIC_MERGE_PATCH:
                if rtype.custom:  # as the real server: custom kinds have no patch strategies
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        f"the body of the request was in an unknown format - accepted media "
                        f"types include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}",
                    )
                patched = strategic_merge_patch(old, patch)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {patch_type}")
        except PatchError as error:
            reason = "BadRequest" if error.code == 400 else "Invalid"
            raise ApiError(error.code, reason, error.message) from None
        return self._update(rtype, old, self._decode(rtype, patched), opts, subresource=subresource)

    def apply(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        config: Any,
        opts: WriteOptions,
    ) -> WriteResult:
        """Server-side apply: ``config`` is the manager's whole intent for the object."""
        config = self._decode(rtype, config)
        for key in ("apiVersion", "kind"):
            if key not in config or config[key] is None:
                raise bad_request(f"{key} must be set in an applied configuration")
        config["metadata"].setdefault("name", name)
        old = self.store.get(rtype, namespace, name)
        merged, entries = plan_apply(
            rtype, old, config, manager=opts.manager, now=self.now(), force=opts.force
        )
        if old is None:
            return self._create(rtype, namespace, self._decode(rtype, merged), opts, entries)
        return self._update(rtype, old, self._decode(rtype, merged), opts, applied=entries)
