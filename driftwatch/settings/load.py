"""Read and validate the configuration file, with errors that name file, line and field."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from driftwatch.settings.models import Settings

__all__ = ["SettingsError", "load_settings", "parse_settings"]


class SettingsError(Exception):
    """An unreadable or invalid configuration file; ``str()`` is one line per problem."""


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the value at ``loc`` in a composed YAML tree (nearest known)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(part):
                    child = k if v is None else v
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def _field(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_settings(text: str, source: str) -> Settings:
    """Validate configuration text; ``source`` names it in errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(e, "problem", None) or str(e)
        raise SettingsError(f"{where}: invalid YAML: {problem}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(f"{source}:1: the configuration must be a mapping")
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = [p for p in err["loc"] if isinstance(p, int | str)]
            # pydantic appends the union member / validator name: keep the data path only.
            loc = [p for p in loc if not (isinstance(p, str) and p in ("str", "dict[str,any]"))]
            line = _line_of(node, loc)
            where = f"{source}:{line}" if line else source
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            lines.append(f"{where}: {_field(loc) or '(top level)'}: {msg}")
        raise SettingsError("\n".join(lines)) from e


def load_settings(path: Path) -> Settings:
    """Read the configuration file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise SettingsError(f"{path}: cannot read the configuration: {reason}") from e
    return parse_settings(text, str(path))
