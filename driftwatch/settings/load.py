"""Read and validate the configuration file, with errors that name file, line and field.

Every string value (never a key) may refer to the environment: ``${VAR}``,
``${VAR:-default}`` (the default when VAR is unset or empty) and ``$$`` for a literal
``$``; any other ``$`` is kept as written. Substitution happens after YAML parsing, so a
value never changes the document's structure and errors keep their lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from driftwatch.settings.models import DesiredSettings, Settings
from driftwatch.values.secrets import LoadContext

__all__ = [
    "SettingsError",
    "expand_environment",
    "load_settings",
    "parse_settings",
    "require_desired",
]

Loc = tuple[int | str, ...]


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


_REFERENCE = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<name>[A-Za-z_]\w*)(?::-(?P<default>[^}]*))?\}|(?P<bad>\{[^}]*\}?))",
    re.ASCII,
)


def expand_environment(text: str, environ: Mapping[str, str]) -> str:
    """``text`` with ``${VAR}``, ``${VAR:-default}`` and ``$$`` replaced; ValueError if unset."""

    def replace(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        if match["bad"] is not None:
            raise ValueError(
                f"invalid reference ${match['bad']}: write ${{VAR}}, ${{VAR:-default}} "
                "or $$ for a literal $"
            )
        value = environ.get(match["name"])
        if match["default"] is not None and not value:
            return match["default"]
        if value is None:
            raise ValueError(f"environment variable {match['name']} is not set")
        return value

    return _REFERENCE.sub(replace, text)


def _substitute(data: Any, loc: Loc, environ: Mapping[str, str], problems: dict[Loc, str]) -> Any:
    if isinstance(data, str):
        try:
            return expand_environment(data, environ)
        except ValueError as e:
            problems[loc] = str(e)
            return data
    if isinstance(data, dict):
        return {
            k: _substitute(v, (*loc, k if isinstance(k, int | str) else str(k)), environ, problems)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_substitute(v, (*loc, i), environ, problems) for i, v in enumerate(data)]
    return data


def parse_settings(
    text: str,
    source: str,
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Validate configuration text; ``source`` names it in errors.

    Relative paths in it are resolved against ``base_dir`` (default: the working
    directory); ``${VAR}`` references read ``environ`` (default: ``os.environ``).
    """
    try:
        return _parse_settings(text, source, base_dir=base_dir, environ=environ)
    except RecursionError:
        raise SettingsError(
            f"{source}: the configuration is nested too deeply, or an alias (*name) refers"
            " to itself"
        ) from None


def _parse_settings(
    text: str,
    source: str,
    *,
    base_dir: Path | None,
    environ: Mapping[str, str] | None,
) -> Settings:
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
    unset: dict[Loc, str] = {}
    data = _substitute(data, (), os.environ if environ is None else environ, unset)
    problems: list[tuple[Loc, str]] = list(unset.items())
    context = LoadContext(base_dir if base_dir is not None else Path.cwd())
    settings: Settings | None = None
    error: ValidationError | None = None
    try:
        settings = Settings.model_validate(data, context=context)
    except ValidationError as e:
        error = e
        for err in e.errors():
            loc = tuple(p for p in err["loc"] if isinstance(p, int | str))
            # pydantic appends the union member / validator name: keep the data path only.
            loc = tuple(
                p for p in loc if not (isinstance(p, str) and p in ("str", "dict[str,any]"))
            )
            if any(loc[:n] in unset for n in range(len(loc) + 1)):
                continue  # the unsubstituted text is not worth a second error
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            problems.append((loc, msg))
    if settings is not None and not problems:
        return settings
    lines = []
    for loc, msg in problems:
        line = _line_of(node, loc)
        where = f"{source}:{line}" if line else source
        lines.append((line or 0, f"{where}: {_field(loc) or '(top level)'}: {msg}"))
    lines.sort(key=lambda pair: pair[0])
    raise SettingsError("\n".join(text for _, text in lines)) from error


def load_settings(path: Path, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the configuration file at ``path`` (relative paths in it are relative to it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise SettingsError(f"{path}: cannot read the configuration: {reason}") from e
    return parse_settings(text, str(path), base_dir=path.absolute().parent, environ=environ)


def require_desired(settings: Settings, source: str | None = None) -> DesiredSettings:
    """``settings.desired``, or SettingsError when the file has none (``driftwatch run``)."""
    if settings.desired is None:
        where = f"{source}: " if source else ""
        raise SettingsError(
            f"{where}desired: required for `driftwatch run`: "
            "give desired.path (a manifest directory) or desired.git (a repository)"
        )
    return settings.desired
