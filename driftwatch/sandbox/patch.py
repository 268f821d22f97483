"""The three PATCH body formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
Kubernetes' strategic merge patch.

All functions are pure: they return a new document and never modify their arguments.
A strategic merge patch replaces lists wholesale unless the list's path has a merge key in
``merge_keys`` (``metadata.ownerReferences`` by ``uid``, ``spec.containers`` by ``name``,
...), as the Go types declare with ``patchStrategy:"merge"``; NetworkPolicy declares none.
Supported directives: ``$patch`` (``replace``, ``delete``, ``merge``), ``$retainKeys``,
``$setElementOrder/<list>`` and ``$deleteFromPrimitiveList/<list>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_MERGE_KEYS",
    "MergeKeys",
    "PatchError",
    "clone",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]

MergeKeys = Mapping[tuple[str, ...], str]
"""List path (field names, list positions left out) → merge key; ``""`` merges a set of scalars."""

_CONTAINER_LISTS = {"ports": "containerPort", "env": "name", "volumeMounts": "mountPath"}
DEFAULT_MERGE_KEYS: MergeKeys = {
    ("metadata", "finalizers"): "",
    ("metadata", "ownerReferences"): "uid",
    ("spec", "volumes"): "name",
    ("spec", "imagePullSecrets"): "name",
    ("status", "conditions"): "type",
    ("webhooks",): "name",  # Validating/MutatingWebhookConfiguration
    **{("spec", c): "name" for c in ("containers", "initContainers", "ephemeralContainers")},
    **{
        ("spec", c, field): key
        for c in ("containers", "initContainers", "ephemeralContainers")
        for field, key in _CONTAINER_LISTS.items()
    },
}


class PatchError(ValueError):
    """A patch that cannot be applied. ``code`` is 400 for a malformed patch, else 422."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def clone(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, scalars) — faster than ``copy.deepcopy``."""
    if type(value) is dict:
        return {k: clone(v) for k, v in value.items()}
    if type(value) is list:
        return [clone(v) for v in value]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- JSON patch -------------------------------------------------------------------------


def _pointer(path: Any, op_index: int) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"operation {op_index}: invalid JSON pointer {path!r}", 400)
    if not path:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(container: list[Any], part: str, *, allow_end: bool) -> int:
    if allow_end and part == "-":
        return len(container)
    if not part.isdigit() or (len(part) > 1 and part.startswith("0")):
        raise PatchError(f"invalid array index {part!r}")
    index = int(part)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} out of bounds")
    return index


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return node


def _get(doc: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, allow_end=False)]
    raise PatchError(f"doc is missing path: {path!r}")


def _add(doc: Any, tokens: list[str], value: Any, path: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], allow_end=True), value)
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def _replace(doc: Any, tokens: list[str], value: Any, path: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict) and tokens[-1] in parent:
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent[_index(parent, tokens[-1], allow_end=False)] = value
    else:
        raise PatchError(f"replace operation does not apply: doc is missing key: {path!r}")
    return doc


def _remove(doc: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict) and tokens[-1] in parent:
        return parent.pop(tokens[-1])
    if isinstance(parent, list):
        return parent.pop(_index(parent, tokens[-1], allow_end=False))
    raise PatchError(f"remove operation does not apply: doc is missing path: {path!r}")


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1`` is not ``true``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 ``add``/``remove``/``replace``/``move``/``copy``/``test``, applied in order."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations", 400)
    doc = clone(doc)
    for i, operation in enumerate(operations):
        if not isinstance(operation, dict) or not isinstance(operation.get("op"), str):
            raise PatchError(f"operation {i}: must be an object with an 'op' string", 400)
        op = operation["op"]
        path = operation.get("path")
        tokens = _pointer(path, i)
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"operation {i} ({op}): missing 'value'", 400)
        if op == "add":
            doc = _add(doc, tokens, clone(operation["value"]), str(path))
        elif op == "remove":
            _remove(doc, tokens, str(path))
        elif op == "replace":
            doc = _replace(doc, tokens, clone(operation["value"]), str(path))
        elif op in ("move", "copy"):
            source = operation.get("from")
            from_tokens = _pointer(source, i)
            if op == "move" and tokens[: len(from_tokens)] == from_tokens and tokens != from_tokens:
                raise PatchError(f"operation {i}: cannot move {source!r} into itself")
            value = _get(doc, from_tokens, str(source))
            if op == "move":
                _remove(doc, from_tokens, str(source))
            doc = _add(doc, tokens, clone(value), str(path))
        elif op == "test":
            if not _same(_get(doc, tokens, str(path)), operation["value"]):
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"operation {i}: unknown op {op!r}", 400)
    return doc


# --- strategic merge patch --------------------------------------------------------------


class _Delete:
    """Marks a map that ``$patch: delete`` removes from its parent."""


_DELETE = _Delete()


def strategic_merge_patch(
    original: Any, patch: Any, merge_keys: MergeKeys = DEFAULT_MERGE_KEYS
) -> dict[str, Any]:
    """Apply a strategic merge patch (as ``kubectl apply``, ``edit`` and ``patch`` send it)."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object", 400)
    result = _merge_map(original if isinstance(original, dict) else {}, patch, (), merge_keys)
    return {} if isinstance(result, _Delete) else result


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...], keys: MergeKeys
) -> dict[str, Any] | _Delete:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        replaced = _merge_map({}, {k: v for k, v in patch.items() if k != "$patch"}, path, keys)
        return {} if isinstance(replaced, _Delete) else replaced
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch type {directive!r} at {'.'.join(path) or '<root>'}")
    result = dict(original)
    orders: dict[str, Any] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.partition("/")[2]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.partition("/")[2]
            current = result.get(field)
            if isinstance(current, list) and isinstance(value, list):
                result[field] = [x for x in current if x not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        sub = (*path, key)
        if isinstance(value, dict):
            current = result.get(key)
            merged = _merge_map(current if isinstance(current, dict) else {}, value, sub, keys)
            if isinstance(merged, _Delete):
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, sub, keys)
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list) and isinstance(order, list):
            result[field] = _reorder(result[field], order, keys.get((*path, field)))
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _clean(value: Any, path: tuple[str, ...], keys: MergeKeys) -> Any:
    """New content from a patch, with any directives in it interpreted."""
    if isinstance(value, dict):
        merged = _merge_map({}, value, path, keys)
        return {} if isinstance(merged, _Delete) else merged
    return clone(value)


def _merge_list(
    current: Any, patch: list[Any], path: tuple[str, ...], keys: MergeKeys
) -> list[Any]:
    strategy = keys.get(path)
    if strategy is None:
        return [_clean(item, path, keys) for item in patch]
    existing = list(current) if isinstance(current, list) else []
    if strategy == "":
        return existing + [x for x in patch if x not in existing]
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [
            _clean(x, path, keys)
            for x in patch
            if not (isinstance(x, dict) and x.get("$patch") == "replace")
        ]
    for item in patch:
        if not isinstance(item, dict) or strategy not in item:
            raise PatchError(
                f"{'.'.join(path)}: list item does not contain declared merge key: {strategy}"
            )
        found = next(
            (
                i
                for i, x in enumerate(existing)
                if isinstance(x, dict) and x.get(strategy) == item[strategy]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if found is not None:
                del existing[found]
            continue
        if found is None:
            existing.append(_clean(item, path, keys))
        else:
            merged = _merge_map(existing[found], item, path, keys)
            if isinstance(merged, _Delete):
                del existing[found]
            else:
                existing[found] = merged
    return existing


def _reorder(items: list[Any], order: list[Any], strategy: str | None) -> list[Any]:
    if strategy is None:
        return items

    def identity(item: Any) -> str:
        value = item.get(strategy) if strategy and isinstance(item, dict) else item
        return json.dumps(value, sort_keys=True)

    position = {identity(item): i for i, item in enumerate(order)}
    return sorted(items, key=lambda item: position.get(identity(item), len(position)))
