"""YAML parsing with a line number for every document and ``List`` item.

Two paths produce the same data:

* a fast path that builds Python objects straight from PyYAML's parser events
  (libyaml's C parser when available). It handles everything Kubernetes
  manifests normally use and is about twice as fast as composing nodes;
* the exact path: ``check_node()``/``get_node()`` then ``construct_document()``
  with PyYAML's own constructor. The fast path hands over to it, for the whole
  text, on anything it does not handle itself: anchors, aliases, explicit tags,
  merge keys, complex keys, duplicate keys and every error, so that error
  messages and their lines always come from one place.

Plain scalars are resolved as YAML 1.1 (PyYAML's rules, which are also
Kubernetes' go-yaml's: ``yes``/``on`` are booleans, ``0755`` is octal) except
that timestamps stay strings, as they do when ``kubectl`` reads a manifest, and
a lone ``=`` is a string rather than PyYAML's unconstructable "value" tag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

__all__ = ["DuplicateKeyError", "ParsedDocument", "parse_yaml"]

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"
_DROPPED_TAGS = frozenset({"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"})

# (line of the document's first content, data, lines of the root's ``items`` entries or None)
ParsedDocument = tuple[int, Any, list[int] | None]


class DuplicateKeyError(Exception):
    """A mapping repeats a key (lines are 1-based)."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        self.key = key
        self.line = line
        self.first_line = first_line
        super().__init__(f"duplicate key {key!r} (first at line {first_line})")


class _Fallback(Exception):
    """The fast path met something it leaves to the exact path."""


class _Loader(_BaseLoader):
    """Safe loader: no timestamps, duplicate keys rejected, no path resolvers."""

    yaml_implicit_resolvers: dict[Any, Any] = {  # noqa: RUF012 - PyYAML's class-level table
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }

    # Nothing registers path resolvers, so skip PyYAML's per-node bookkeeping.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable: PyYAML's own construct_mapping reports it
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise DuplicateKeyError(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _plain(loader: _Loader, value: str) -> Any:
    """Resolve and construct an untagged plain scalar as the exact path would."""
    resolve: Callable[[type[ScalarNode], str, tuple[bool, bool]], str] = loader.resolve
    tag = resolve(ScalarNode, value, (True, False))
    if tag == _STR:
        return value
    constructor = loader.yaml_constructors.get(tag)
    if constructor is None:  # the merge key, or something unexpected
        raise _Fallback
    return constructor(loader, ScalarNode(tag, value))


_NO_KEY: Any = object()

# Plain scalar -> value, shared by all calls (values are immutable: str, int, float,
# bool, None). Most plain scalars are the same few keys and values in every file.
_PLAIN_CACHE: dict[str, Any] = {}
_PLAIN_CACHE_LIMIT = 100_000


def _fast(text: str) -> list[ParsedDocument]:  # noqa: PLR0915 - one hot loop, inlined on purpose
    loader = _Loader(text)
    try:
        get_event: Callable[[], Any] = loader.get_event
        first_chars = loader.yaml_implicit_resolvers
        if len(_PLAIN_CACHE) > _PLAIN_CACHE_LIMIT:
            _PLAIN_CACHE.clear()
        cache = _PLAIN_CACHE
        docs: list[ParsedDocument] = []
        stack: list[Any] = []  # the enclosing containers
        current: Any = None  # the open dict or list; None at document level
        key: Any = _NO_KEY  # the pending key when current is a dict
        root: Any = None
        root_line = 0
        items: list[Any] | None = None
        item_lines: list[int] | None = None
        while True:
            event = get_event()
            cls = event.__class__
            if cls is ScalarEvent:
                if event.anchor is not None or event.tag not in (None, "!"):
                    raise _Fallback
                value: Any = event.value
                if event.implicit[0]:
                    try:
                        value = cache[value]
                    except KeyError:
                        plain = _plain(loader, value) if value[:1] in first_chars else value
                        value = cache[value] = plain
                if current.__class__ is dict:
                    if key is _NO_KEY:
                        key = value
                    elif key in current:
                        raise _Fallback
                    else:
                        current[key] = value
                        key = _NO_KEY
                elif current is None:
                    root = value
                    root_line = event.start_mark.line + 1
                else:
                    current.append(value)
                    if current is items and item_lines is not None:
                        item_lines.append(event.start_mark.line + 1)
                continue
            if cls is MappingStartEvent or cls is SequenceStartEvent:
                if event.anchor is not None or event.tag not in (None, "!"):
                    raise _Fallback
                value = {} if cls is MappingStartEvent else []
                if current.__class__ is dict:
                    if key is _NO_KEY:  # a complex key
                        raise _Fallback
                    if key in current:
                        raise _Fallback
                    current[key] = value
                    if cls is SequenceStartEvent and key == "items" and len(stack) == 1:
                        items = value
                        item_lines = []
                elif current is None:
                    root = value
                    root_line = event.start_mark.line + 1
                else:
                    current.append(value)
                    if current is items and item_lines is not None:
                        item_lines.append(event.start_mark.line + 1)
                stack.append(current)
                current = value
                key = _NO_KEY
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                current = stack.pop()
                key = _NO_KEY
            elif cls is DocumentEndEvent:
                docs.append((root_line, root, item_lines))
                root = items = item_lines = None
            elif cls is StreamEndEvent:
                return docs
            elif cls is AliasEvent:
                raise _Fallback
    finally:
        loader.dispose()


def _item_lines(node: Any) -> list[int] | None:
    if not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if (
            isinstance(key_node, ScalarNode)
            and key_node.value == "items"
            and key_node.tag == _STR
            and isinstance(value_node, SequenceNode)
        ):
            return [item.start_mark.line + 1 for item in value_node.value]
    return None


def _exact(text: str) -> list[ParsedDocument]:
    loader = _Loader(text)
    try:
        docs: list[ParsedDocument] = []
        while loader.check_node():
            node: Any = loader.get_node()
            line = node.start_mark.line + 1
            docs.append((line, loader.construct_document(node), _item_lines(node)))
        return docs
    finally:
        loader.dispose()


def parse_yaml(text: str) -> list[ParsedDocument]:
    """Every document in ``text`` (empty ones included, as ``None``).

    Raises :class:`yaml.YAMLError` or :class:`DuplicateKeyError`.
    """
    try:
        return _fast(text)
    except (_Fallback, yaml.YAMLError):
        return _exact(text)
