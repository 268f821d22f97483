"""``metadata.managedFields``: who set which field, as the real server records it.

Field sets follow the real server's bookkeeping (structured-merge-diff) with one
simplification: a field set holds leaf paths (plus ``.`` for maps such as labels) and every
list is atomic, as are label selectors (true of all NetworkPolicy fields; for pods' keyed
lists the real server is finer-grained). The rules:

* an update gives its manager every field it added or changed; other managers lose those
  fields, and everybody loses removed fields; a manager left with nothing is dropped;
* the manager's entry (and its ``time``) changes only when the update added or changed a
  field — a write that only removes fields leaves no trace of its writer, as on a real
  cluster;
* entries are sorted like the real server's: operation (``Apply`` before ``Update``), time
  to the second, manager name.

The manager name is the ``fieldManager`` query parameter, else the User-Agent up to its first
``/`` (what the real server does): ``kubectl/v1.32.4 (linux/amd64) ...`` gives ``kubectl``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from driftwatch.sandbox.errors import invalid

__all__ = [
    "Entry",
    "FieldPath",
    "decode_entries",
    "encode_entries",
    "field_manager",
    "leaves",
    "record_update",
    "same",
]

FieldPath = tuple[str, ...]
"""``("f:spec", "f:podSelector")`` — field-set path elements as they appear in ``fieldsV1``."""

_SERVER_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    }
)
_MAX_MANAGER = 128
# Label selectors are atomic (owned as a whole); maps with free-form keys own their node too.
_ATOMIC_MAPS = frozenset({"f:podSelector", "f:namespaceSelector", "f:selector"})
_MAP_FIELDS = frozenset({"f:labels", "f:annotations", "f:matchLabels", "f:nodeSelector"})


def field_manager(requested: str | None, user_agent: str) -> str:
    """The manager name of a write; 422 for a ``fieldManager`` the real server would refuse."""
    if requested is not None and requested != "":
        if len(requested) > _MAX_MANAGER:
            raise invalid(
                "CreateOptions",
                "meta.k8s.io",
                "",
                [("FieldValueInvalid", "fieldManager", "must be less than 128 characters")],
            )
        if not requested.isprintable():
            raise invalid(
                "CreateOptions",
                "meta.k8s.io",
                "",
                [("FieldValueInvalid", "fieldManager", "must only contain printable characters")],
            )
        return requested
    prefix = "".join(c for c in user_agent.split("/", 1)[0] if c.isprintable())
    return prefix[:_MAX_MANAGER]


def leaves(obj: Mapping[str, Any], *, status: bool = False) -> dict[FieldPath, Any]:
    """Every leaf field of an object (lists and empty maps are leaves), server fields left out.

    ``status=False`` leaves out ``status`` (writes to the main resource of a kind with a
    status subresource); ``status=True`` keeps only ``status``.
    """
    found: dict[FieldPath, Any] = {}

    def walk(node: Any, path: FieldPath) -> None:
        if isinstance(node, dict) and node and path[-1] not in _ATOMIC_MAPS:
            if path[-1] in _MAP_FIELDS:
                found[(*path, ".")] = True
            for key, value in node.items():
                walk(value, (*path, f"f:{key}"))
        else:
            found[path] = node

    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status") != status:
            continue
        if key == "metadata" and isinstance(value, dict):
            for mkey, mvalue in value.items():
                if mkey not in _SERVER_METADATA:
                    walk(mvalue, ("f:metadata", f"f:{mkey}"))
        else:
            walk(value, (f"f:{key}",))
    return found


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``managedFields`` entry."""

    manager: str
    operation: str
    api_version: str
    time: str
    fields: frozenset[FieldPath]
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def encode(self) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        for path in sorted(self.fields):
            node = tree
            for element in path:
                node = node.setdefault(element, {})
        entry: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": tree,
        }
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


def _decode_fields(tree: Any) -> frozenset[FieldPath]:
    paths: set[FieldPath] = set()

    def walk(node: dict[str, Any], path: FieldPath) -> None:
        for key, value in node.items():
            if key == ".":
                paths.add((*path, "."))
            elif isinstance(value, dict) and value:
                walk(value, (*path, key))
            else:
                paths.add((*path, key))

    if isinstance(tree, dict):
        walk(tree, ())
    return frozenset(paths)


def decode_entries(raw: Any) -> list[Entry]:
    """Entries from ``metadata.managedFields``; malformed entries are dropped, never fatal."""
    entries: list[Entry] = []
    if not isinstance(raw, list):
        return entries
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("manager"), str):
            continue
        entries.append(
            Entry(
                manager=item["manager"],
                operation=str(item.get("operation") or "Update"),
                api_version=str(item.get("apiVersion") or ""),
                time=str(item.get("time") or ""),
                fields=_decode_fields(item.get("fieldsV1")),
                subresource=str(item.get("subresource") or ""),
            )
        )
    return entries


def encode_entries(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """Entries in the real server's order; empty field sets dropped."""
    kept = [e for e in entries if e.fields]
    kept.sort(key=lambda e: (e.operation, e.time[:19], e.manager, e.api_version, e.subresource))
    return [e.encode() for e in kept]


def same(a: Any, b: Any) -> bool:
    """JSON equality that tells ``1`` from ``true``."""
    return type(a) is type(b) and a == b


def record_update(
    entries: list[Entry],
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    manager: str,
    api_version: str,
    now: str,
    subresource: str = "",
) -> list[Entry]:
    """The entries after ``manager`` turned ``old`` (``None``: create) into ``new``."""
    on_status = subresource == "status"
    before = leaves(old, status=on_status) if old is not None else {}
    after = leaves(new, status=on_status)
    changed = {p for p, v in after.items() if p not in before or not same(before[p], v)}
    removed = before.keys() - after.keys()
    identity = Entry(manager, "Update", api_version, now, frozenset(), subresource).identity
    result: list[Entry] = []
    mine: Entry | None = None
    for entry in entries:
        kept = replace(entry, fields=entry.fields - changed - removed)
        if entry.identity == identity:
            mine = kept
        else:
            result.append(kept)
    if changed:
        fields = frozenset(changed) | (mine.fields if mine else frozenset())
        mine = Entry(manager, "Update", api_version, now, fields, subresource)
    if mine is not None:
        result.append(mine)
    return [e for e in result if e.fields]
