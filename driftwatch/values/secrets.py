"""Secrets in the configuration file: ``SecretStr`` fields, ``x_file`` indirection, listing.

Every field typed ``SecretStr`` (or ``SecretStr | None``) on a :class:`SecretFileModel`
may be written either inline (``token: ${TOKEN}``) or as ``<field>_file: /path``: the file
is read while the configuration is validated (trailing line breaks stripped), so a
mounted Kubernetes Secret or a systemd credential works unchanged. Giving both, an
unreadable file or an empty one is an error at ``<field>_file``. Relative paths are
resolved against the configuration file's directory (see :class:`LoadContext`).

``SecretStr`` never shows its value in ``repr``/``str``; :func:`secret_values` lists every
value a validated model holds, so the logger can redact them.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    SecretStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["LoadContext", "SecretFileModel", "custom_error", "resolve_path", "secret_values"]

_FILE_SUFFIX = "_file"


@dataclass(frozen=True, slots=True)
class LoadContext:
    """What validation needs beyond the data: passed as pydantic's validation ``context``."""

    base_dir: Path = field(default_factory=Path.cwd)
    """Directory relative paths in the file are resolved against (the file's own)."""


def resolve_path(value: str | Path, info: ValidationInfo) -> Path:
    """``value`` with ``~`` expanded, made absolute against the file's directory."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    context = info.context
    base = context.base_dir if isinstance(context, LoadContext) else Path.cwd()
    return base / path


def _is_secret(annotation: object) -> bool:
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return False


def _read_secret(raw: object, info: ValidationInfo) -> str:
    if not isinstance(raw, str | Path) or not str(raw):
        raise ValueError("must be the path of a file holding the secret")
    path = resolve_path(raw, info)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ValueError(f"cannot read {path}: not UTF-8 text") from None
    value = text.rstrip("\r\n")
    if not value:
        raise ValueError(f"{path} is empty")
    return value


class SecretFileModel(BaseModel):
    """A model whose ``SecretStr`` fields may also be given as ``<field>_file``."""

    @model_validator(mode="wrap")
    @classmethod
    def _read_secret_files(
        cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        problems: list[InitErrorDetails] = []
        for name, spec in cls.model_fields.items():
            file_key = name + _FILE_SUFFIX
            if file_key not in data or not _is_secret(spec.annotation):
                continue
            data = dict(data)
            raw = data.pop(file_key)
            if name in data:
                message = f"give either {name} or {file_key}, not both"
            else:
                try:
                    data[name] = _read_secret(raw, info)
                    continue
                except ValueError as e:
                    message = str(e)
                    data[name] = "<unreadable>"  # no second error for a required field
            problems.append(custom_error(file_key, message, "secret_file"))
        if not problems:
            return handler(data)
        try:
            handler(data)
        except ValidationError as e:
            problems += [custom_error(err["loc"], err["msg"], err["type"]) for err in e.errors()]
        raise ValidationError.from_exception_data(cls.__name__, problems, hide_input=True)


def custom_error(
    loc: str | tuple[int | str, ...], message: str, kind: str = "invalid"
) -> InitErrorDetails:
    """One validation error at ``loc`` with ``message`` as it is (for errors raised with
    ``ValidationError.from_exception_data`` after a model validated)."""
    # A custom error keeps the message verbatim (no template is applied without a context).
    return InitErrorDetails(
        type=PydanticCustomError(kind, message),
        loc=(loc,) if isinstance(loc, str) else loc,
        input=None,
    )


def secret_values(model: BaseModel) -> frozenset[str]:
    """Every non-empty ``SecretStr`` value held by ``model`` and the models inside it."""
    found: set[str] = set()
    _collect(model, found)
    return frozenset(found)


def _collect(value: object, found: set[str]) -> None:
    if isinstance(value, SecretStr):
        if secret := value.get_secret_value():
            found.add(secret)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _collect(getattr(value, name), found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _collect(item, found)
