"""Server-side printing: the ``meta.k8s.io`` ``Table`` that ``kubectl get`` asks for, with the
real server's columns (NetworkPolicy: NAME, POD-SELECTOR, AGE; a custom kind: NAME and its
CRD's ``additionalPrinterColumns``, or NAME, AGE when it declares none).

Asked for with ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``. Rows carry the
object's metadata as ``PartialObjectMetadata`` (``includeObject=Metadata``, the default),
the whole object (``Object``) or nothing (``None``). In a watch, only the first event's
table has column definitions, as on the real server.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from typing import Any

from driftwatch.policy.parse import parse_label_selector
from driftwatch.sandbox.resources import PrinterColumn, ResourceType

__all__ = ["human_duration", "json_path", "table_version", "to_table"]

Obj = dict[str, Any]
Cell = Callable[[Obj], Any]


def table_version(accept: str) -> str | None:
    """``v1`` or ``v1beta1`` when the Accept header asks for a Table first, else None."""
    for media_range in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in media_range.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            if params.get("v") in ("v1", "v1beta1"):
                return params["v"]
        elif media_range.split(";")[0].strip() in ("application/json", "*/*"):
            return None
    return None


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration``: ``45s``, ``5m30s``, ``3h20m``, ``4d``, ..."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _since(stamp: Any, now: float) -> str:
    if not isinstance(stamp, str):
        return "<unknown>"
    try:
        created = calendar.timegm(time.strptime(stamp[:19] + "Z", "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "<unknown>"
    return human_duration(now - created)


def _age(now: float) -> Cell:
    def cell(obj: Obj) -> str:
        return _since(obj.get("metadata", {}).get("creationTimestamp"), now)

    return cell


def json_path(obj: Any, path: str) -> Any:
    """A printer column's simple JSONPath (``.status.state``, ``.spec.items[0].name``,
    ``{.a.b}``): the value, or None when a step is missing."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    node: Any = obj
    for step in text.lstrip(".").split("."):
        name, _, index = step.partition("[")
        if name:
            node = node.get(name) if isinstance(node, dict) else None
        if index:
            position = index.rstrip("]")
            if not position.isdigit() or not isinstance(node, list):
                return None
            node = node[int(position)] if int(position) < len(node) else None
        if node is None:
            return None
    return node


def _printer(column: PrinterColumn, now: float) -> Cell:
    def cell(obj: Obj) -> Any:
        value = json_path(obj, column.json_path)
        if value is None:
            return None
        if column.type == "date":
            return _since(value, now)
        if isinstance(value, dict | list):
            return str(value)
        return value

    return cell


def _pod_selector(obj: Obj) -> str:
    try:
        text = str(parse_label_selector(obj.get("spec", {}).get("podSelector")))
    except ValueError:
        return "<invalid>"
    return text or "<none>"


def _path(*keys: str, default: str = "") -> Cell:
    def cell(obj: Obj) -> Any:
        node: Any = obj
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        return default if node is None else node

    return cell


def _ready(obj: Obj) -> str:
    statuses = obj.get("status", {}).get("containerStatuses") or []
    ready = sum(1 for s in statuses if isinstance(s, dict) and s.get("ready"))
    return f"{ready}/{len(obj.get('spec', {}).get('containers') or [])}"


def _restarts(obj: Obj) -> int:
    statuses = obj.get("status", {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses if isinstance(s, dict))


def _columns(rtype: ResourceType, now: float) -> list[tuple[str, str, int, Cell]]:
    """(name, type, priority, cell) per column; NAME first, AGE last."""
    name: tuple[str, str, int, Cell] = ("Name", "string", 0, _path("metadata", "name"))
    age: tuple[str, str, int, Cell] = ("Age", "string", 0, _age(now))
    extra: list[tuple[str, str, int, Cell]] = []
    if rtype.custom:
        if not rtype.printer_columns:
            return [name, age]
        return [
            name,
            *((c.name, c.type, c.priority, _printer(c, now)) for c in rtype.printer_columns),
        ]
    if rtype.kind == "CustomResourceDefinition":
        created = _path("metadata", "creationTimestamp")
        return [name, ("Created At", "date", 0, created)]
    if rtype.kind == "ConfigMap":
        extra = [("Data", "integer", 0, lambda o: len(o.get("data") or {}))]
    elif rtype.kind == "NetworkPolicy":
        extra = [("Pod-Selector", "string", 0, _pod_selector)]
    elif rtype.kind == "Namespace":
        extra = [("Status", "string", 0, _path("status", "phase"))]
    elif rtype.kind == "Pod":
        extra = [
            ("Ready", "string", 0, _ready),
            ("Status", "string", 0, _path("status", "phase")),
            ("Restarts", "string", 0, _restarts),
        ]
        return [
            name,
            *extra,
            age,
            ("IP", "string", 1, _path("status", "podIP", default="<none>")),
            ("Node", "string", 1, _path("spec", "nodeName", default="<none>")),
        ]
    elif rtype.kind == "Lease":
        extra = [("Holder", "string", 0, _path("spec", "holderIdentity"))]
    elif rtype.kind == "ValidatingWebhookConfiguration":
        extra = [("Webhooks", "integer", 0, lambda o: len(o.get("webhooks") or []))]
    return [name, *extra, age]


def _row_object(obj: Obj, include: str, version: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj["metadata"],
    }


def to_table(
    rtype: ResourceType,
    objects: list[Obj],
    *,
    version: str = "v1",
    resource_version: str = "",
    include_object: str = "Metadata",
    headers: bool = True,
    now: float | None = None,
) -> Obj:
    """A ``Table`` of ``objects``."""
    columns = _columns(rtype, time.time() if now is None else now)
    rows = []
    for obj in objects:
        row: Obj = {"cells": [cell(obj) for _, _, _, cell in columns]}
        embedded = _row_object(obj, include_object, version)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    table: Obj = {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}", "metadata": {}}
    if resource_version:
        table["metadata"]["resourceVersion"] = resource_version
    if headers:
        table["columnDefinitions"] = [
            {
                "name": name,
                "type": type_,
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": priority,
            }
            for name, type_, priority, _ in columns
        ]
    table["rows"] = rows
    return table
