"""YAML parsing with a line number for every document and ``List`` item.

Three paths produce the same data, tried in this order:

* the ryaml path: the Rust parser ``ryaml`` (serde-yaml on a port of libyaml: the
  same grammar) builds the objects in about a third of the time
  PyYAML's C parser takes just to emit its events.
  ryaml resolves plain scalars as YAML 1.2, so its result is only taken when it
  cannot differ: no anchors, aliases, tags, directives or explicit keys where a
  token can start; no ``0o`` (a YAML 1.2 octal); every string one that ryaml would
  also have read as a string had it been plain, or one the exact path reads as a
  string anyway (``yes``, ``0755``, ``1_000``, ``1:20``, ``<<`` are not: they are
  YAML 1.1 booleans, numbers and merge keys); no float unless the text has no
  exponent and no sign before a leading dot; only string (or null) keys, so that
  ``1``/``1.0``/``true`` cannot be duplicates the exact path rejects and ryaml does
  not. Document lines come from the text (``---``/``...`` at column 0 and the next
  line with content; LF or CRLF line breaks and no BOM only), checked against
  ryaml's document count; the lines of a non-empty root ``items`` list are left
  to the next path;
* the event path, which builds Python objects straight from PyYAML's parser
  events (libyaml's C parser when available). It handles everything Kubernetes
  manifests normally use and is about twice as fast as composing nodes;
* the exact path: ``check_node()``/``get_node()`` then ``construct_document()``
  with PyYAML's own constructor. The event path hands over to it, for the whole
  text, on anything it does not handle itself: anchors, aliases, explicit tags,
  merge keys, complex keys, duplicate keys and every error, so that error
  messages and their lines always come from one place. Any ryaml error or doubt
  sends the text down the other two paths.

Plain scalars are resolved as YAML 1.1 (PyYAML's rules, which are also
Kubernetes' go-yaml's: ``yes``/``on`` are booleans, ``0755`` is octal) except
that timestamps stay strings, as they do when ``kubectl`` reads a manifest, and
a lone ``=`` is a string rather than PyYAML's unconstructable "value" tag.
"""

from __future__ import annotations

import re
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

try:
    # ryaml re-exports these from its extension module without ``__all__``, so mypy's
    # no-implicit-reexport does not see them; they are its documented API.
    from ryaml import loads as _ryaml_loads  # type: ignore[attr-defined]
    from ryaml import loads_all as _ryaml_loads_all  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a declared dependency; without it the other paths serve
    _ryaml_loads = _ryaml_loads_all = None  # type: ignore[assignment]  # checked before use

__all__ = ["DuplicateKeyError", "ParsedDocument", "parse_yaml"]

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"
_YAML_INDICATOR = "tag:yaml.org,2002:yaml"
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


# --- the ryaml path -------------------------------------------------------------

# An anchor, alias, tag, directive or explicit key: one of these characters where a
# token can start (start of text, after white space, a flow indicator or ``:``/``?``).
# Anywhere else it is part of a scalar, or an error the exact path reports.
_INDICATOR = re.compile(r"[&*!?%](?<![^\s\[\]{},:?].)")
# What ryaml reads as a float and PyYAML as a string: an exponent without a dot or
# without a sign (``1e3``, ``1.5e3``), a sign before a leading dot (``-.5``).
_FLOAT_HAZARD = re.compile(r"[eE](?<=[0-9.][eE])[-+]?[0-9]|[-+]\.[0-9]")
# The rest of a line that is blank or a comment, and its line break.
_SKIPPABLE_LINE = re.compile(r"[ \t]*(?:#[^\n]*)?\r?(?:\n|\Z)")
# A document marker at column 0 (the one at the very start of the text is checked apart).
_MARKER = re.compile(r"\n(?:---|\.\.\.)(?=[ \t\r\n]|\Z)")
# Left to the other paths: a BOM (libyaml skips it and shifts the column), line breaks
# other than LF and CRLF (libyaml counts them as lines), and ``0o`` (a YAML 1.2 octal
# that ryaml reads as an integer, PyYAML as a string).
_UNHANDLED = ("\ufeff", "\x85", "\u2028", "\u2029", "0o", "0O")

# Strings (and ``None``) known to mean the same to ryaml and the exact path, shared by
# all calls: most are the same few keys and values in every file.
_AGREED: set[Any] = set()
_AGREED_LIMIT = 200_000


def _resolve_plain(value: str) -> str:
    """The tag the exact path gives ``value`` as a plain scalar (PyYAML's ``resolve()``)."""
    resolvers = _Loader.yaml_implicit_resolvers
    for tag, regexp in resolvers.get(value[:1], []) + resolvers.get(None, []):
        if regexp.match(value):
            return str(tag)
    return _STR


def _string_agrees(value: str) -> bool:
    """Whether a string from ryaml is certainly a string to the exact path too.

    It is if the exact path would read ``value`` as a string even as a plain
    scalar; or if ryaml would not (it never turns a plain scalar it resolves as
    something else into a string), so that the scalar was quoted or a block.
    """
    tag = _resolve_plain(value)
    if tag == _STR:
        return True
    if tag == _YAML_INDICATOR:  # a lone "!", "&" or "*": never plain, _INDICATOR saw to it
        return True
    if "\n" in value:  # only matched for a final line break, which no plain scalar has
        return True
    if _ryaml_loads is None:  # pragma: no cover - only called on the ryaml path
        return False
    try:
        plain = _ryaml_loads(value)
    except Exception:  # any doubt: let the other paths read the text
        return False
    return plain is None or plain.__class__ in (bool, int, float)


def _keys_agree(mapping: dict[Any, Any], agreed: set[Any]) -> bool:
    for key in mapping:
        if key is None:
            continue
        # Only strings: ryaml rejects duplicates by YAML value, the exact path by Python
        # equality (1, 1.0 and true are one key to it, three to ryaml).
        if key.__class__ is not str or (key not in agreed and not _string_agrees(key)):
            return False
        agreed.add(key)
    return True


def _values_agree(documents: list[Any], text: str) -> bool:
    """Whether every key and scalar ryaml built is what the exact path builds."""
    agreed = _AGREED
    if len(agreed) > _AGREED_LIMIT:
        agreed.clear()
    floats = False
    pending: list[Any] = [documents]  # grows while it is walked
    for node in pending:
        values = node
        if node.__class__ is dict:
            if not agreed.issuperset(node) and not _keys_agree(node, agreed):
                return False
            values = node.values()
        for value in values:
            cls = value.__class__
            if cls is str:
                if value not in agreed:
                    if not _string_agrees(value):
                        return False
                    agreed.add(value)
            elif cls is dict or cls is list:
                pending.append(value)
            elif cls is float:
                floats = True
            elif cls is not int and cls is not bool and value is not None:
                return False
    return not floats or _FLOAT_HAZARD.search(text) is None


def _first_content(text: str, start: int, end: int) -> int | None:
    """Where the first line in ``text[start:end]`` that is not blank or a comment starts.

    ``start`` is a line's start or its end (then that line is skipped as empty).
    """
    skip = _SKIPPABLE_LINE.match
    pos = start
    while pos < end:
        skipped = skip(text, pos, end)
        if skipped is None:
            return pos
        pos = skipped.end()
    return None


def _document_lines(text: str) -> list[int] | None:
    """The exact path's line for each document, from the text; None when unsure.

    A document's line is that of its first token: on its ``---`` line if the
    marker is followed by more than a comment, else the first later line that is
    not blank or a comment. An empty document gets the line of whatever ends it:
    the next marker, or the end of the text (a line further when the text does
    not end with a line break). A ``---`` or ``...`` at column 0 always ends
    block and plain scalars; inside a quoted scalar or a flow collection it is an
    error that ryaml reports too. Only LF and CRLF line breaks reach this.
    """
    markers = [match.start() + 1 for match in _MARKER.finditer(text)]
    if text.startswith(("---", "...")) and text[3:4] in ("", " ", "\t", "\r", "\n"):
        markers.insert(0, 0)
    counted = line = 0

    def line_at(pos: int) -> int:
        nonlocal counted, line
        line += text.count("\n", counted, pos)
        counted = pos
        return line + 1

    lines: list[int] = []
    start = _first_content(text, 0, markers[0] if markers else len(text))
    if start is not None:
        lines.append(line_at(start))
    for index, pos in enumerate(markers):
        end = markers[index + 1] if index + 1 < len(markers) else len(text)
        eol = text.find("\n", pos, end)
        if eol < 0:
            eol = end
        rest = text[pos + 3 : eol].strip(" \t\r")
        content_on_marker = bool(rest) and rest[0] != "#"
        start = _first_content(text, eol, end)
        if text[pos] == ".":
            if content_on_marker or start is not None:  # content without "---": an error
                return None
        elif content_on_marker:
            lines.append(line_at(pos))
        elif start is not None:
            lines.append(line_at(start))
        elif index + 1 < len(markers):
            lines.append(line_at(end))
        else:
            lines.append(text.count("\n") + 1 + (not text.endswith("\n")))
    return lines


def _ryaml_path(text: str) -> list[ParsedDocument] | None:
    """The documents as the exact path reads them, or None to leave ``text`` to it."""
    if _ryaml_loads_all is None:  # pragma: no cover - ryaml is not installed
        return None
    if any(unhandled in text for unhandled in _UNHANDLED):
        return None
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        return None  # a lone CR: a line break to libyaml
    if _INDICATOR.search(text) is not None:
        return None
    lines = _document_lines(text)
    if not lines:  # no document (ryaml says one), or unsure
        return None
    try:
        documents = _ryaml_loads_all(text)
    except Exception:  # errors (and their lines) come from the exact path
        return None
    if not isinstance(documents, list) or len(documents) != len(lines):
        return None
    if not _values_agree(documents, text):
        return None
    parsed: list[ParsedDocument] = []
    for line, data in zip(lines, documents, strict=True):
        item_lines: list[int] | None = None
        if data.__class__ is dict:
            items = data.get("items")
            if items.__class__ is list:
                if items:  # the items' own lines: left to the event path
                    return None
                item_lines = []
        parsed.append((line, data, item_lines))
    return parsed


def parse_yaml(text: str) -> list[ParsedDocument]:
    """Every document in ``text`` (empty ones included, as ``None``).

    Raises :class:`yaml.YAMLError` or :class:`DuplicateKeyError`.
    """
    parsed = _ryaml_path(text)
    if parsed is not None:
        return parsed
    try:
        return _fast(text)
    except (_Fallback, yaml.YAMLError):
        return _exact(text)
