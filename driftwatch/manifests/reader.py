"""Read Kubernetes manifest files into documents that know their file and line."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from driftwatch.manifests._json import JSONDuplicateKeyError, parse_json
from driftwatch.manifests._yaml import DuplicateKeyError, ParsedDocument, parse_yaml
from driftwatch.manifests.collector import paused_gc

__all__ = [
    "MANIFEST_SUFFIXES",
    "Document",
    "ManifestError",
    "is_resource",
    "iter_manifest_files",
    "read_documents",
    "read_file",
]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Document:
    """One object from a manifest file.

    ``path`` is the display path the caller chose; ``line`` (1-based) is where the
    object's first content is: the line after ``---``, or a ``List`` item's own line.
    """

    path: str
    line: int
    data: Any


class ManifestError(Exception):
    """A file that cannot be read as manifests. ``str()`` is one line: ``path:line: message``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = " ".join(message.split())
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {self.message}")


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _yaml_error(error: yaml.YAMLError, text: str, path: str) -> ManifestError:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        context = str(error.context or "")
        started = error.context_mark
        if context and started is not None and mark is not None and started.line != mark.line:
            context += f" (line {started.line + 1})"
        parts = [p for p in (context, str(error.problem or "")) if p]
        message = ": ".join(parts) or "invalid YAML"
        return ManifestError(path, None if mark is None else mark.line + 1, message)
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        return ManifestError(path, line, f"invalid character: {error.reason}")
    return ManifestError(path, None, f"invalid YAML: {error}")


def _parse(text: str, path: str) -> list[ParsedDocument]:
    try:
        if path.lower().endswith(".json"):
            try:
                return parse_json(text)
            except JSONDuplicateKeyError as error:
                # Only a YAML parser can say where; JSON is (nearly) YAML.
                try:
                    parse_yaml(text)
                except DuplicateKeyError:
                    raise
                except yaml.YAMLError:
                    pass
                raise ManifestError(path, None, str(error)) from None
            except json.JSONDecodeError as error:
                raise ManifestError(path, error.lineno, f"invalid JSON: {error.msg}") from None
        return parse_yaml(text)
    except DuplicateKeyError as error:
        raise ManifestError(path, error.line, str(error)) from None
    except yaml.YAMLError as error:
        raise _yaml_error(error, text, path) from None
    except RecursionError:
        raise ManifestError(path, None, "nested too deeply") from None


def _list_items(data: Mapping[str, Any]) -> list[Any] | None:
    kind = data.get("kind")
    items = data.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        return items
    return None


def _with_list_type(item: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """An item of ``FooList`` without ``kind``/``apiVersion`` is a ``Foo`` of the list's version."""
    item_kind = str(data["kind"])[: -len("List")]
    if not item_kind or ("kind" in item and "apiVersion" in item):
        return item
    filled = dict(item)
    filled.setdefault("kind", item_kind)
    if "apiVersion" in data:
        filled.setdefault("apiVersion", data["apiVersion"])
    return filled


def read_documents(text: str, path: str) -> list[Document]:
    """Every object in a manifest file's text, in order.

    Multi-document YAML (empty documents skipped) or, when ``path`` ends in
    ``.json``, one JSON document. A ``List`` (any kind ending in ``List`` that
    has an ``items`` list) becomes one document per item, on the item's own line;
    items of ``FooList`` that lack ``kind``/``apiVersion`` get ``Foo`` and the
    list's ``apiVersion``, as the API server means them.

    Raises :class:`ManifestError` for malformed text, a duplicate key, or a
    document or ``List`` item that is not a mapping.
    """
    documents: list[Document] = []
    with paused_gc():
        parsed = _parse(text, path)
    for line, data, lines in parsed:
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ManifestError(path, line, f"document is not a mapping (got {_describe(data)})")
        items = _list_items(data)
        if items is None:
            documents.append(Document(path, line, data))
            continue
        item_lines = (
            lines if lines is not None and len(lines) == len(items) else [line] * len(items)
        )
        for item, item_line in zip(items, item_lines, strict=True):
            if not isinstance(item, dict):
                raise ManifestError(
                    path, item_line, f"List item is not a mapping (got {_describe(item)})"
                )
            documents.append(Document(path, item_line, _with_list_type(item, data)))
    return documents


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def iter_manifest_files(root: Path) -> list[Path]:
    """``root`` itself if it is a file, else the manifest files below it.

    A directory is walked recursively; files ending in ``.yaml``, ``.yml`` or
    ``.json`` are returned in sorted order; hidden files and directories
    (``.git``, ``.github``, ...) are skipped. Symbolic links to directories are
    not followed.
    """
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ManifestError(str(root), None, "no such file or directory")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        found.extend(
            Path(dirpath, name)
            for name in filenames
            if not _is_hidden(name) and name.lower().endswith(MANIFEST_SUFFIXES)
        )
    return sorted(found)


def read_file(path: Path, display: str) -> list[Document]:
    """:func:`read_documents` of a file, naming it ``display`` in documents and errors."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ManifestError(display, None, f"cannot read file: {reason}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ManifestError(display, line, "file is not UTF-8 text") from None
    return read_documents(text, display)


def is_resource(data: Mapping[str, Any], kind: str, group: str) -> bool:
    """Whether ``data`` is a ``kind`` of API ``group`` (any version; a missing apiVersion counts).

    ``is_resource(doc, "NetworkPolicy", "networking.k8s.io")`` is false for
    Calico's ``projectcalico.org/v3`` NetworkPolicy.
    """
    if data.get("kind") != kind:
        return False
    api_version = data.get("apiVersion")
    if api_version is None:
        return True
    if not isinstance(api_version, str):
        return False
    found_group, _, _ = api_version.rpartition("/")
    return found_group == group
