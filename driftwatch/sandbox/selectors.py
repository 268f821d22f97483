"""``labelSelector`` and ``fieldSelector`` query parameters: parsing and matching objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftwatch.policy import LabelSelector, parse_selector_string
from driftwatch.sandbox.errors import bad_request
from driftwatch.sandbox.resources import ResourceType

__all__ = ["FieldRequirement", "Selector", "parse_field_selector", "parse_selector"]

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """``path=value`` (``equal``) or ``path!=value``."""

    path: str
    value: str
    equal: bool = True

    def matches(self, obj: dict[str, Any]) -> bool:
        return (_field_value(obj, self.path) == self.value) == self.equal


def _field_value(obj: dict[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    return node if isinstance(node, str) else str(node)


def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is not escaped with a backslash; keeps escapes."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        out.append(next(chars, "") if char == "\\" else char)
    return "".join(out)


def parse_field_selector(text: str, rtype: ResourceType) -> tuple[FieldRequirement, ...]:
    """``metadata.name=web,metadata.namespace!=kube-system``; 400 for unsupported fields."""
    requirements: list[FieldRequirement] = []
    if not text.strip():
        return ()
    allowed = _COMMON_FIELDS + rtype.field_labels
    for raw in _split_unescaped(text, ","):
        term = raw.strip()
        if not term:
            continue
        op = next((op for op in ("!=", "==", "=") if op in term), None)
        if op is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        head, _, tail = term.partition(op)
        path = head.strip()
        if path not in allowed:
            raise bad_request(f"field label not supported: {path}")
        requirements.append(FieldRequirement(path, _unescape(tail.strip()), op != "!="))
    return tuple(requirements)


def parse_label_selector(text: str) -> LabelSelector:
    try:
        return parse_selector_string(text)
    except ValueError as error:
        raise bad_request(f"unable to parse requirement: {error}") from None


@dataclass(frozen=True, slots=True)
class Selector:
    """A label selector and field requirements, both optional; matches everything when empty."""

    labels: LabelSelector | None = None
    fields: tuple[FieldRequirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        return (self.labels is None or self.labels.is_empty) and not self.fields

    def matches(self, obj: dict[str, Any]) -> bool:
        if self.labels is not None and not self.labels.is_empty:
            meta = obj.get("metadata")
            labels = meta.get("labels") if isinstance(meta, dict) else None
            if not self.labels.matches(labels if isinstance(labels, dict) else {}):
                return False
        return all(req.matches(obj) for req in self.fields)


def parse_selector(label_text: str | None, field_text: str | None, rtype: ResourceType) -> Selector:
    """The selector of a list, watch or deletecollection request."""
    labels = parse_label_selector(label_text) if label_text else None
    fields = parse_field_selector(field_text, rtype) if field_text else ()
    return Selector(labels, fields)
