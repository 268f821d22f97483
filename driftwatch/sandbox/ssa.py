"""Server-side apply (``application/apply-patch+yaml``), simplified.

The applied configuration is the manager's whole intent: its fields are merged into the
live object (maps merge, lists and scalars replace), fields the manager applied before but
no longer does — and nobody else owns — are removed, and a field another manager owns is
a conflict (409, naming the manager and field) when the configuration changes its value,
unless ``force=true`` takes it over. Ownership is recorded as an ``Apply`` entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from driftwatch.sandbox.errors import ApiError
from driftwatch.sandbox.managed import Entry, FieldPath, leaves, same
from driftwatch.sandbox.managed import decode_entries as decode
from driftwatch.sandbox.patch import clone
from driftwatch.sandbox.resources import ResourceType

__all__ = ["apply_ownership", "plan_apply"]

Obj = dict[str, Any]


def apply_ownership(
    entries: list[Entry],
    live: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    *,
    manager: str,
    api_version: str,
    now: str,
    force: bool,
) -> tuple[list[Entry], frozenset[FieldPath], dict[str, list[FieldPath]]]:
    """Server-side apply bookkeeping for ``manager`` applying ``config`` to ``live``.

    Returns the new entries, the fields the manager applied before but no longer does and no
    one else owns (to be removed from the object), and — unless ``force`` — the conflicts:
    fields other managers own whose value the config changes, by manager.
    """
    applied = leaves(config)
    current = leaves(live) if live is not None else {}
    identity = Entry(manager, "Apply", api_version, now, frozenset()).identity
    conflicts: dict[str, list[FieldPath]] = {}
    previous: frozenset[FieldPath] = frozenset()
    others: list[Entry] = []
    for entry in entries:
        if entry.identity == identity:
            previous = entry.fields
            continue
        differing = {
            p for p in entry.fields & applied.keys() if not same(current.get(p), applied[p])
        }
        if differing and not force:
            conflicts.setdefault(entry.manager, []).extend(sorted(differing))
        others.append(replace(entry, fields=entry.fields - differing))
    owned_by_others = frozenset().union(*(e.fields for e in others))
    dropped = frozenset(p for p in previous - applied.keys() if p not in owned_by_others)
    mine = Entry(manager, "Apply", api_version, now, frozenset(applied))
    return [*others, mine], dropped, conflicts


def _path_text(path: FieldPath) -> str:
    return "".join("." + p[2:] if p.startswith("f:") else f"[{p}]" for p in path if p != ".")


def _remove_path(obj: Obj, path: FieldPath) -> None:
    """Remove a field (given as a field-set path) from ``obj``; other path kinds are ignored."""
    if path[-1] == "." or not all(p.startswith("f:") for p in path):
        return
    node: Any = obj
    for element in path[:-1]:
        node = node.get(element[2:]) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1][2:], None)


def _merge(live: Any, config: Any) -> Any:
    """Merge an applied configuration into the live object: maps merge, the rest replaces."""
    if not isinstance(config, dict) or not isinstance(live, dict):
        return clone(config)
    merged = dict(live)
    for key, value in config.items():
        merged[key] = _merge(live.get(key), value)
    return merged


def _without(obj: Mapping[str, Any], *keys: str) -> Obj:
    return {k: v for k, v in obj.items() if k not in keys}


def plan_apply(
    rtype: ResourceType,
    live: Obj | None,
    config: Obj,
    *,
    manager: str,
    now: str,
    force: bool,
) -> tuple[Obj, list[Entry]]:
    """The object after ``manager`` applies ``config`` (no managedFields) and the new
    entries; raises a 409 Conflict Status when other managers own changed fields."""
    entries = decode(live["metadata"].get("managedFields")) if live is not None else []
    applied = _without(config, "apiVersion", "kind")
    applied["metadata"] = _without(config["metadata"], "name", "namespace")
    entries, dropped, conflicts = apply_ownership(
        entries,
        _without(live, "apiVersion", "kind") if live is not None else None,
        applied,
        manager=manager,
        api_version=rtype.api_version,
        now=now,
        force=force,
    )
    if conflicts:
        causes = [
            {
                "reason": "FieldManagerConflict",
                "message": f'conflict with "{who}" using {rtype.api_version}',
                "field": _path_text(path),
            }
            for who, paths in conflicts.items()
            for path in paths
        ]
        count = len(causes)
        raise ApiError(
            409,
            "Conflict",
            f"Apply failed with {count} conflict{'s' if count != 1 else ''}: "
            + "; ".join(f"{c['message']}: {c['field']}" for c in causes),
            {"causes": causes},
        )
    merged = _merge(clone(live) if live is not None else {}, config)  # _remove_path edits it
    for path in dropped:
        _remove_path(merged, path)
    merged["metadata"].pop("managedFields", None)
    return merged, entries
