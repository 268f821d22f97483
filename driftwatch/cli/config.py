"""``driftwatch config validate FILE...`` and ``driftwatch config schema``.

``validate`` reads each file as ``driftwatch run`` and ``check`` do (``${VAR}`` references
expanded, ``*_file`` secrets read, relative paths against the file) and prints
``FILE: valid``, or the same one-line-per-problem error (``file:line: field: message``)
that ``run`` prints, with exit status 2.

``schema`` prints the configuration's JSON Schema (draft 2020-12) for editors and CI. It
is pydantic's, from the same models that validate the file, made true to the file format:
durations may be written ``30s``/``5m``, every secret field may be given as
``<field>_file`` (never both), a ``notifiers:`` entry holds its type's own fields (one
schema per receiver type, plugins included), and fields carry their docstrings as
descriptions. It describes a file after ``${VAR}`` substitution; checks that need more
than a schema (a readable secret file, a known rule id, unique receiver names) are left to
``validate``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import functools
import inspect
import itertools
import json
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic's schema machinery loads only for `config schema`
    from pydantic import BaseModel
    from pydantic.json_schema import GenerateJsonSchema

__all__ = ["DURATION_PATTERN", "add_parser", "json_schema"]

EXIT_OK, EXIT_INVALID = 0, 2

_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
DURATION_PATTERN = (
    rf"^\s*(?:{_NUMBER}|(?=[\d.])(?:{_NUMBER}d)?(?:{_NUMBER}h)?(?:{_NUMBER}m)?"
    rf"(?:{_NUMBER}s)?(?:{_NUMBER}ms)?)\s*$"
)
"""What ``values.durations.parse_duration`` reads as text: a number, or ``<n><unit>``
parts largest unit first (``1h30m``, ``250ms``, ``1.5h``)."""

_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0, "description": "Seconds."},
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: 30s, 5m, 1h30m, 250ms, 1d (or seconds).",
        },
    ],
}


def add_parser(commands: Any) -> None:
    config = commands.add_parser("config", help="validate a configuration file, print its schema")
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    validate = actions.add_parser(
        "validate",
        help="check configuration files as `driftwatch run` and `check` read them",
        description="Read each configuration file as `driftwatch run` and `check` do "
        "(${VAR} references expanded, *_file secrets read) and print `FILE: valid`, or "
        "each problem as `file:line: field: message` with exit status 2.",
    )
    validate.add_argument("files", metavar="FILE", type=Path, nargs="+")
    validate.add_argument(
        "--run",
        action="store_true",
        help="also require what `driftwatch run` needs (a desired: section)",
    )
    validate.set_defaults(handler=run_validate)
    schema = actions.add_parser(
        "schema",
        help="print the configuration's JSON Schema",
        description="Print the JSON Schema (draft 2020-12) of the configuration file, "
        "e.g. for an editor's YAML language server.",
    )
    schema.set_defaults(handler=run_schema)


def run_validate(args: argparse.Namespace) -> int:
    from driftwatch.settings import SettingsError, load_settings, require_desired

    status = EXIT_OK
    for path in args.files:
        try:
            settings = load_settings(path)
            if args.run:
                require_desired(settings, str(path))
        except SettingsError as error:
            print(f"driftwatch: error: {error}", file=sys.stderr)
            status = EXIT_INVALID
            continue
        print(f"{path}: valid")
    return status


def run_schema(args: argparse.Namespace) -> int:
    from driftwatch.notify.registry import RegistryError

    del args  # no options
    try:
        schema = json_schema()
    except RegistryError as error:  # a notifier plugin that does not load
        print(f"driftwatch: error: {error}", file=sys.stderr)
        return EXIT_INVALID
    print(json.dumps(schema, indent=2))
    return EXIT_OK


def json_schema() -> dict[str, Any]:
    """The configuration file's JSON Schema (draft 2020-12), as ``config schema`` prints it."""
    from driftwatch.notify.registry import receiver_types
    from driftwatch.settings import Settings

    generator = _generator()
    schema = Settings.model_json_schema(schema_generator=generator)
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    entry = defs.get("NotifierSettings")
    if entry is not None:
        configs = {name: kind.config for name, kind in receiver_types().items()}
        defs["NotifierSettings"] = _notifier_entry(entry, configs, defs, generator)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "driftwatch configuration",
        **{k: v for k, v in schema.items() if k != "title"},
        "description": "The driftwatch configuration file (driftwatch.yaml), after ${VAR} "
        "substitution. `driftwatch config validate FILE` checks everything.",
    }


def _notifier_entry(
    entry: dict[str, Any],
    configs: dict[str, type[BaseModel]],
    defs: dict[str, Any],
    generator: type[GenerateJsonSchema],
) -> dict[str, Any]:
    """``NotifierSettings`` as written in the file: its own fields and, chosen by ``type``,
    the fields of that receiver type's model (pydantic sees only an opaque ``config``)."""
    from pydantic.errors import PydanticUserError

    common = {k: v for k, v in entry.get("properties", {}).items() if k != "config"}
    branches = []
    for name, model in sorted(configs.items()):
        try:
            own = model.model_json_schema(schema_generator=generator)
        except PydanticUserError as e:  # a plugin's model with a field JSON Schema cannot say
            own = {"description": f"{model.__name__}: no JSON Schema ({e.code}); any fields."}
        for def_name, definition in own.pop("$defs", {}).items():
            if defs.setdefault(def_name, definition) != definition:
                raise ValueError(f"two definitions of {def_name} in the configuration schema")
        variant: dict[str, Any] = {
            **{k: v for k, v in own.items() if k not in ("properties", "required", "title")},
            "title": f"{name} notifier",
            "type": "object",
            "properties": {**common, "type": {"const": name}, **own.get("properties", {})},
            "required": ["name", "type", *own.get("required", [])],
        }
        defs[f"Notifier_{name}"] = variant
        branches.append(
            {
                "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                "then": {"$ref": f"#/$defs/Notifier_{name}"},
            }
        )
    kinds = sorted(configs)
    return {
        "title": entry.get("title", "NotifierSettings"),
        "description": entry.get("description", ""),
        "type": "object",
        "properties": {
            "name": common.get("name", {"type": "string"}),
            "type": {
                "enum": kinds,
                "description": "The receiver type; the other fields depend on it.",
            },
        },
        "required": ["name", "type"],
        "allOf": branches,
    }


@functools.cache
def _generator() -> type[GenerateJsonSchema]:
    """pydantic's generator, extended for durations, ``*_file`` secrets and docstrings."""
    from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
    from pydantic_core import core_schema

    from driftwatch.values.durations import parse_duration
    from driftwatch.values.secrets import SecretFileModel

    class Generator(GenerateJsonSchema):
        def function_before_schema(
            self, schema: core_schema.BeforeValidatorFunctionSchema
        ) -> JsonSchemaValue:
            if schema["function"].get("function") is parse_duration:
                return copy.deepcopy(_DURATION_SCHEMA)
            return super().function_before_schema(schema)

        def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
            json_schema = super().model_schema(schema)
            model = schema["cls"]
            _describe(json_schema, model)
            if issubclass(model, SecretFileModel):
                _secret_files(json_schema, model)
            return json_schema

    return Generator


def _describe(json_schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Give each property without a description its field's docstring (the text under it;
    pydantic does this itself only with ``use_attribute_docstrings``)."""
    if "description" in json_schema:
        json_schema["description"] = _markdown(json_schema["description"])
    properties = json_schema.get("properties", {})
    docs = _attribute_docs(model)
    for name, field in model.model_fields.items():
        prop = properties.get(field.alias or name)
        if isinstance(prop, dict) and "description" not in prop and name in docs:
            prop["description"] = _markdown(docs[name])


def _markdown(text: str) -> str:
    """reStructuredText literals (````x````) as Markdown ones (```x```), as editors show them."""
    return text.replace("``", "`")


@functools.cache
def _attribute_docs(model: type) -> dict[str, str]:
    """``{field: docstring}`` for the string literals right under annotated class attributes,
    inherited ones included (a subclass's own win)."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if cls.__module__.startswith(("pydantic", "builtins")):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            continue  # no source (a frozen or generated class): no descriptions
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _is_secret(annotation: object) -> bool:
    """``SecretStr``, or a union holding it (as ``values.secrets`` reads ``*_file`` for)."""
    from pydantic import SecretStr

    if annotation is SecretStr:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return False


def _secret_files(json_schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Add ``<field>_file`` beside each secret field: one of the two, never both."""
    properties = json_schema.setdefault("properties", {})
    required: list[str] = json_schema.get("required", [])
    rules: list[dict[str, Any]] = []
    for name, field in model.model_fields.items():
        if not _is_secret(field.annotation):
            continue
        key, file_key = field.alias or name, name + "_file"
        properties[file_key] = {
            "type": "string",
            "minLength": 1,
            "description": f"Instead of `{key}`: a file holding it (a mounted Secret, a "
            "systemd credential); trailing line breaks are ignored.",
        }
        if key in required:
            required.remove(key)
            rules.append({"oneOf": [{"required": [key]}, {"required": [file_key]}]})
        else:
            rules.append({"not": {"required": [key, file_key]}})
    if "required" in json_schema and not required:
        del json_schema["required"]
    if rules:
        json_schema["allOf"] = [*json_schema.get("allOf", []), *rules]
