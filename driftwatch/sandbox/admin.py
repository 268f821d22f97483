"""The sandbox's own endpoints under ``/_sandbox/`` (no authentication, never faulted).

=========================================  ==================================================
``GET  /_sandbox/state``                    resourceVersion, compaction floor, open watches,
                                            object counts, active faults
``GET  /_sandbox/changes?since=RV``         the change log (``resource=`` filters by plural)
``POST /_sandbox/faults/cut-watches``       ``{"abrupt": false}``
``POST /_sandbox/faults/compact``           ``{"resourceVersion": "N"}`` (default: all)
``POST /_sandbox/faults/refuse``            ``{"count": N, "duration": S, "match": "..."}``
``POST /_sandbox/faults/delay``             ``{"seconds": S, "count", "duration", "match"}``
``POST /_sandbox/faults/errors``            ``{"status": 500, "count", "duration", "match"}``
``POST /_sandbox/faults/restart``           ``{"downtime": S}``
``POST /_sandbox/faults/clear``             remove refuse/delay/errors rules
``GET  /_sandbox/rbac``                     the verbs denied (403 and access reviews)
``POST /_sandbox/rbac``                     ``{"deny": [{"verb", "resource", "namespace",
                                            "group"}]}`` replaces them (``[]``: allow all)
=========================================  ==================================================
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from driftwatch.sandbox.errors import bad_request
from driftwatch.sandbox.faults import Faults
from driftwatch.sandbox.handlers import json_response
from driftwatch.sandbox.rbac import Denial, Rbac
from driftwatch.sandbox.store import Store

__all__ = ["add_admin_routes"]

Obj = dict[str, Any]


async def _params(request: web.Request) -> Obj:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        params = json.loads(raw)
    except ValueError as error:
        raise bad_request(f"invalid JSON: {error}") from None
    if not isinstance(params, dict):
        raise bad_request("the body must be a JSON object")
    return params


def _number(params: Obj, key: str, kind: type[int] | type[float]) -> Any:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{key} must be a number")
    return kind(value)


def _match(params: Obj) -> str | None:
    value = params.get("match")
    if value is not None and not isinstance(value, str):
        raise bad_request("match must be a string")
    return value


def add_admin_routes(
    app: web.Application, store: Store, faults: Faults, rbac: Rbac | None = None
) -> None:
    """Register the ``/_sandbox/`` endpoints on ``app``."""
    access = rbac if rbac is not None else Rbac()

    async def state(request: web.Request) -> web.Response:
        return json_response(
            {
                "resourceVersion": str(store.revision),
                "compacted": str(store.compacted),
                "watchers": store.watcher_count(),
                "objects": {t.plural: store.count(t) for t in store.registry},
                "faults": faults.describe(),
                "restarts": faults.restarts,
            }
        )

    async def changes(request: web.Request) -> web.Response:
        since_text = request.query.get("since", "0")
        if not since_text.isdigit():
            raise bad_request("since must be a resourceVersion")
        since = int(since_text)
        resource = request.query.get("resource")
        selected = [
            c.as_dict()
            for c in store.changes
            if int(c.resource_version) > since and (resource is None or c.resource == resource)
        ]
        return json_response({"resourceVersion": str(store.revision), "changes": selected})

    def fault(action: Callable[[Obj], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            params = await _params(request)
            try:
                result = action(params)
            except (ValueError, TypeError) as error:
                raise bad_request(str(error)) from None
            return json_response({"ok": True, "result": result, "faults": faults.describe()})

        return handler

    def compact(params: Obj) -> str:
        raw = params.get("resourceVersion")
        if raw is not None and not str(raw).isdigit():
            raise ValueError("resourceVersion must be a number")
        return str(faults.compact(None if raw is None else int(raw)))

    def common(params: Obj) -> Obj:
        return {
            "count": _number(params, "count", int),
            "duration": _number(params, "duration", float),
            "match": _match(params),
        }

    actions: dict[str, Callable[[Obj], Any]] = {
        "cut-watches": lambda p: faults.cut_watches(abrupt=bool(p.get("abrupt"))),
        "compact": compact,
        "refuse": lambda p: faults.refuse(**common(p)).describe(),
        "delay": lambda p: faults.delay(
            _number(p, "seconds", float) or 0.0, **common(p)
        ).describe(),
        "errors": lambda p: faults.fail(
            status=_number(p, "status", int) or 500, **common(p)
        ).describe(),
        "restart": lambda p: faults.restart(downtime=_number(p, "downtime", float) or 0.0),
        "clear": lambda p: faults.clear(),
    }

    async def rbac_rules(request: web.Request) -> web.Response:
        if request.method == "POST":
            rules = (await _params(request)).get("deny")
            if not isinstance(rules, list):
                raise bad_request('give {"deny": [{"verb": ..., "resource": ...}, ...]}')
            access.deny([Denial.parse(r) for r in rules])
        return json_response({"deny": [d.describe() for d in access.denied]})

    app.router.add_get("/_sandbox/state", state)
    app.router.add_get("/_sandbox/rbac", rbac_rules)
    app.router.add_post("/_sandbox/rbac", rbac_rules)
    app.router.add_get("/_sandbox/changes", changes)
    for name, action in actions.items():
        app.router.add_post(f"/_sandbox/faults/{name}", fault(action))
