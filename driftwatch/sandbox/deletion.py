"""The delete verbs: ``delete`` (with ``preconditions``) and ``deletecollection``.

Deletion is immediate — no finalizers, no grace period — and deleting a namespace deletes
everything in it first, one DELETED event each, as a real namespace controller ends up
doing (without the ``Terminating`` phase in between).
"""

from __future__ import annotations

from typing import Any

from driftwatch.sandbox.errors import conflict, not_found
from driftwatch.sandbox.resources import NAMESPACES, ResourceType
from driftwatch.sandbox.selectors import Selector
from driftwatch.sandbox.store import Store

__all__ = ["DeleteVerbs"]

Obj = dict[str, Any]


class DeleteVerbs:
    """Mixed into :class:`~driftwatch.sandbox.operations.Operations`."""

    store: Store

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        options: Any = None,
        *,
        dry_run: bool = False,
        manager: str = "",
    ) -> Obj:
        """Delete at once (no finalizers, no grace period); a namespace takes its contents
        with it. Returns a success ``Status``."""
        old = self.store.get(rtype, namespace, name)
        if old is None:
            raise not_found(rtype, name)
        meta = old["metadata"]
        preconditions = options.get("preconditions") if isinstance(options, dict) else None
        if isinstance(preconditions, dict):
            for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                wanted = preconditions.get(key)
                if wanted not in (None, "") and wanted != meta.get(key):
                    raise conflict(
                        rtype,
                        name,
                        f"Precondition failed: {label} in precondition: {wanted}, {label} in "
                        f"object meta: {meta.get(key)}",
                    )
        if not dry_run:
            if rtype is NAMESPACES:
                for contained in self.store.registry:
                    if contained.namespaced:
                        for obj in self.store.select(contained, name):
                            self.store.commit("DELETED", contained, obj, obj, manager)
            self.store.commit("DELETED", rtype, old, old, manager)
        details: Obj = {"name": name, "kind": rtype.plural, "uid": meta.get("uid", "")}
        if rtype.group:
            details["group"] = rtype.group
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        selector: Selector | None,
        *,
        dry_run: bool = False,
        manager: str = "",
    ) -> Obj:
        """Delete every matching object; returns them as a list."""
        doomed = self.store.select(rtype, namespace, selector)
        for obj in doomed:
            meta = obj["metadata"]
            self.delete(
                rtype, meta.get("namespace"), meta["name"], dry_run=dry_run, manager=manager
            )
        return {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(self.store.revision)},
            "items": doomed,
        }
