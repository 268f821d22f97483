"""Server-populated metadata: what the real server sets, keeps and checks on every write.

``uid``, ``creationTimestamp`` and ``generation`` on create; on update they carry over,
``generation`` grows when ``spec`` changed, and the ``resourceVersion`` and ``uid`` the
client sent are preconditions (409 Conflict when stale). Kinds with a status subresource
keep their stored status on writes to the main resource.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from driftwatch.sandbox.errors import conflict
from driftwatch.sandbox.patch import clone
from driftwatch.sandbox.resources import ResourceType

__all__ = [
    "MODIFIED",
    "check_preconditions",
    "generate_name",
    "keep_status",
    "ordered",
    "stamp_new",
    "stamp_update",
    "without_volatile",
]

Obj = dict[str, Any]

META_ORDER = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def generate_name(prefix: str) -> str:
    """``generateName`` plus five random characters, as the real server picks them."""
    return prefix + "".join(random.choices(_NAME_CHARS, k=5))  # noqa: S311  (not a secret)


def ordered(rtype: ResourceType, obj: Obj) -> Obj:
    """``apiVersion``, ``kind``, ``metadata`` (in the Go struct's field order), the rest."""
    meta = obj.get("metadata", {})
    ordered_meta = {k: meta[k] for k in META_ORDER if k in meta}
    ordered_meta.update((k, v) for k, v in meta.items() if k not in ordered_meta)
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    return {"apiVersion": rtype.api_version, "kind": rtype.kind, "metadata": ordered_meta, **rest}


def without_volatile(obj: Obj) -> Obj:
    """``obj`` without its resourceVersion and managedFields times: equal means no-op."""
    meta = dict(obj.get("metadata", {}))
    meta.pop("resourceVersion", None)
    entries = meta.pop("managedFields", None)
    if isinstance(entries, list):
        meta["managedFields"] = [
            {k: v for k, v in e.items() if k != "time"} if isinstance(e, dict) else e
            for e in entries
        ]
    return {**obj, "metadata": meta}


def stamp_new(rtype: ResourceType, meta: Obj, now: str, uid: str | None = None) -> None:
    """Server fields of a new object (resourceVersion is set on commit)."""
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        meta.pop(key, None)
    meta.update(uid=uid or str(uuid.uuid4()), resourceVersion="", creationTimestamp=now)
    if rtype.has_generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)


def check_preconditions(rtype: ResourceType, meta: Obj, old_meta: Obj) -> None:
    """A ``resourceVersion`` or ``uid`` in the written object must match the stored one."""
    name = old_meta["name"]
    rv = meta.get("resourceVersion")
    if rv not in (None, "") and str(rv) != old_meta["resourceVersion"]:
        raise conflict(rtype, name, MODIFIED)
    uid = meta.get("uid")
    if uid not in (None, "") and uid != old_meta.get("uid"):
        raise conflict(
            rtype,
            name,
            f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
            f"{old_meta.get('uid')}",
        )


def keep_status(rtype: ResourceType, obj: Obj, old: Obj, subresource: str) -> Obj:
    """A status write changes only status; a main-resource write keeps the stored status."""
    if subresource == "status":
        status = obj.get("status")
        obj = clone(old)
        obj.pop("status", None)
        if status is not None:
            obj["status"] = status
    elif rtype.has_status:
        obj.pop("status", None)
        if "status" in old:
            obj["status"] = clone(old["status"])
    return obj


def stamp_update(rtype: ResourceType, obj: Obj, old: Obj) -> None:
    """Carry the server fields over from ``old``; bump ``generation`` if ``spec`` changed."""
    meta, old_meta = obj["metadata"], old["metadata"]
    for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    meta["resourceVersion"] = old_meta["resourceVersion"]
    if rtype.has_generation:
        if rtype.custom:  # everything but metadata (and status, with a status subresource)
            skip = {"apiVersion", "kind", "metadata", *(("status",) if rtype.has_status else ())}
            changed = {k: v for k, v in obj.items() if k not in skip} != {
                k: v for k, v in old.items() if k not in skip
            }
        else:
            changed = any(obj.get(k) != old.get(k) for k in ("spec", "webhooks"))
        bump = 1 if changed else 0
        meta["generation"] = int(old_meta.get("generation", 1)) + bump
