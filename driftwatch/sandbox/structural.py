"""Custom objects checked against their CRD's structural schema, as the real server does on
every write: unknown fields pruned (``x-kubernetes-preserve-unknown-fields`` keeps them),
``null`` dropped where the schema does not allow it, then types, ``required`` and ``enum``
validated.

Pruning reports each unknown field's path, so the caller can warn (``fieldValidation=Warn``,
the default), refuse (``Strict``) or stay silent (``Ignore``). Only the keywords a
structural schema uses for its shape are interpreted (``type``, ``properties``,
``additionalProperties``, ``items``, ``required``, ``enum``, ``nullable``,
``x-kubernetes-preserve-unknown-fields``, ``x-kubernetes-int-or-string``,
``x-kubernetes-embedded-resource``); ``format``, ``pattern``, ``minimum``, CEL rules and
defaults are not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Checked", "check_object"]

Obj = dict[str, Any]
_ROOT_FIELDS = ("apiVersion", "kind", "metadata")
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@dataclass(slots=True)
class Checked:
    """The pruned object, the paths of the fields pruned as unknown, and the validation
    failures as ``(reason, field, message)`` causes."""

    obj: Obj
    unknown: list[str] = field(default_factory=list)
    causes: list[tuple[str, str, str]] = field(default_factory=list)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _shown(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."


def _type_ok(value: Any, wanted: str) -> bool:
    if wanted in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES.get(wanted, (object,)))


class _Walker:
    def __init__(self, checked: Checked) -> None:
        self.checked = checked

    def cause(self, reason: str, path: str, message: str) -> None:
        self.checked.causes.append((reason, path, message))

    def value(self, value: Any, schema: Obj, path: str) -> Any:
        """``value`` pruned and checked against ``schema``."""
        if schema.get("x-kubernetes-int-or-string"):
            if isinstance(value, bool) or not isinstance(value, int | str):
                self.cause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {_shown(value)}: {path} in body must be of type "
                    "integer or string",
                )
            return value
        wanted = schema.get("type")
        if isinstance(wanted, str) and not _type_ok(value, wanted):
            self.cause(
                "FieldValueTypeInvalid",
                path,
                f"Invalid value: {_shown(value)}: {path} in body must be of type {wanted}: "
                f'"{type(value).__name__}"',
            )
            return value
        enum = schema.get("enum")
        if isinstance(enum, list) and value not in enum:
            allowed = ", ".join(json.dumps(v) for v in enum)
            self.cause(
                "FieldValueNotSupported",
                path,
                f"Unsupported value: {_shown(value)}: supported values: {allowed}",
            )
        if isinstance(value, dict):
            return self.mapping(value, schema, path)
        if isinstance(value, list):
            items = schema.get("items")
            if isinstance(items, dict):
                return [self.value(v, items, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def mapping(self, value: Obj, schema: Obj, path: str, skip: tuple[str, ...] = ()) -> Obj:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        out: Obj = {}
        for key, item in value.items():
            where = _join(path, key)
            if key in skip or (embedded and key in _ROOT_FIELDS):
                out[key] = item
                continue
            sub = properties.get(key)
            if sub is None and isinstance(additional, dict):
                sub = additional
            if sub is None:
                if preserve or additional is True:
                    out[key] = item
                else:
                    self.checked.unknown.append(where)
                continue
            if item is None:
                if sub.get("nullable"):
                    out[key] = None
                continue  # a null the schema does not allow is dropped, as the server does
            out[key] = self.value(item, sub, where)
        for key in schema.get("required") or ():
            if key not in out and key not in skip:
                self.cause("FieldValueRequired", _join(path, key), "Required value")
        return out


def check_object(obj: Obj, schema: Obj) -> Checked:
    """Prune and validate a custom object (``apiVersion``, ``kind`` and ``metadata`` are
    left to the generic checks)."""
    checked = Checked({})
    checked.obj = _Walker(checked).mapping(obj, schema, "", skip=_ROOT_FIELDS)
    return checked
