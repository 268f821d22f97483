"""HTTP handlers of the Kubernetes API: discovery, OpenAPI, and the resource verbs.

One catch-all route: :meth:`ApiHandlers.dispatch` reads the path (see
:mod:`driftwatch.sandbox.routing`) and the method, decodes the body and query parameters,
and calls :class:`~driftwatch.sandbox.operations.Operations`. Errors are raised as
:class:`~driftwatch.sandbox.errors.ApiError` and rendered as ``Status`` by the app's
middleware. Requests for the ``Table`` format get tables (:mod:`driftwatch.sandbox.table`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml
from aiohttp import web
from multidict import CIMultiDict

from driftwatch.sandbox import discovery
from driftwatch.sandbox.admission import Admission, ReviewContext, request_user
from driftwatch.sandbox.errors import (
    ApiError,
    bad_request,
    invalid,
    method_not_allowed,
    unsupported_media_type,
)
from driftwatch.sandbox.managed import field_manager
from driftwatch.sandbox.openapi import OpenAPI
from driftwatch.sandbox.operations import (
    APPLY_PATCH,
    PATCH_TYPES,
    Operations,
    WriteOptions,
    WriteResult,
    list_item,
)
from driftwatch.sandbox.patch import clone
from driftwatch.sandbox.rbac import (
    ACCESS_REVIEW_PATH,
    PROTOBUF,
    Rbac,
    decode_review,
    request_verb,
)
from driftwatch.sandbox.resources import ResourceType
from driftwatch.sandbox.routing import GroupVersionPath, Target, resolve
from driftwatch.sandbox.selectors import FieldRequirement, Selector, parse_selector
from driftwatch.sandbox.table import table_version, to_table
from driftwatch.sandbox.watchstream import WatchSettings, stream_watch

__all__ = ["ApiHandlers", "json_response", "load_yaml"]

Obj = dict[str, Any]

_JSON_TYPES = ("application/json", "application/octet-stream", "")
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", APPLY_PATCH)
_HEALTH = ("/healthz", "/livez", "/readyz")


class _Loader(yaml.SafeLoader):
    """Safe YAML that keeps timestamps as the strings they are on the wire."""


_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),  # type: ignore[arg-type]
)


def load_yaml(text: bytes | str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid number {name}")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _encode_item(obj: Obj) -> bytes:
    return _dumps(list_item(obj))


def json_response(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    for warning in warnings or ():
        headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
    body = _dumps(obj)
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


MAX_DEPTH = 100
MAX_NODES = 250_000


def _check_bounds(value: Any) -> None:
    """Refuse documents nested too deeply or too large once YAML aliases are expanded
    (an alias bomb is small on the wire and billions of nodes in memory)."""
    level: list[Any] = [value]
    nodes = 0
    for _ in range(MAX_DEPTH):
        below: list[Any] = []
        for node in level:
            if type(node) is dict:
                if any(type(k) is not str for k in node):
                    raise bad_request("object keys must be strings")
                children: Any = node.values()
            elif type(node) is list:
                children = node
            elif node is None or isinstance(node, str | int | float):
                continue
            else:
                raise bad_request(f"unsupported value of type {type(node).__name__}")
            nodes += len(children)
            if nodes > MAX_NODES:
                raise bad_request(f"the request body has more than {MAX_NODES} values")
            below.extend(children)
        if not below:
            return
        level = below
    raise bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep")


async def _body(request: web.Request, *, required: bool = True) -> Any:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise bad_request("the body of the request was empty")
        return None
    ctype = request.content_type if request.headers.get("Content-Type") else ""
    try:
        if ctype in _YAML_TYPES:
            value = load_yaml(raw)
        elif ctype in _JSON_TYPES or ctype in PATCH_TYPES:
            value = json.loads(raw, parse_constant=_reject_constant)
        else:
            raise unsupported_media_type(ctype)
    except (ValueError, yaml.YAMLError, RecursionError) as error:
        detail = " ".join(str(error).split())[:300]
        raise bad_request(f"couldn't get version/kind; json parse error: {detail}") from None
    _check_bounds(value)
    return value


def _table_events(target: Target, version: str, include: str) -> Callable[[Obj], Obj]:
    """Watch events as one-row tables; column definitions on the first only."""
    first = True

    def transform(obj: Obj) -> Obj:
        nonlocal first
        rv = str(obj.get("metadata", {}).get("resourceVersion", ""))
        table = to_table(
            target.rtype,
            [obj],
            version=version,
            resource_version=rv,
            include_object=include,
            headers=first,
        )
        first = False
        return table

    return transform


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What discovery reports: the version string and the address clients use."""

    version: str
    address: str


class ApiHandlers:
    """The Kubernetes API of one sandbox."""

    def __init__(
        self,
        ops: Operations,
        openapi: OpenAPI,
        info: ServerInfo,
        watch: WatchSettings,
        rbac: Rbac | None = None,
    ) -> None:
        self.ops = ops
        self.registry = ops.store.registry
        self.openapi = openapi
        self.info = info
        self.watch = watch
        self.admission: Admission | None = None
        """Calls validating webhooks on writes (``None``: none are called)."""
        self.tokens: Mapping[str, str] = {}
        """Bearer tokens and their user names (``request.userInfo`` of admission reviews)."""
        self.rbac = rbac if rbac is not None else Rbac()

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/version":
            return json_response(discovery.version_info(self.info.version))
        if path in _HEALTH:
            return web.Response(text="ok")
        if path.rstrip("/") == "/openapi/v3":
            return json_response(self.openapi.index())
        if path.startswith("/openapi/v3/"):
            spec = self.openapi.document(path[len("/openapi/v3/") :])
            if spec is not None:
                return web.Response(body=spec, content_type="application/json")
        if path.rstrip("/") == ACCESS_REVIEW_PATH and request.method == "POST":
            if request.content_type == PROTOBUF:  # kubectl auth can-i
                return json_response(self.rbac.review(decode_review(await request.read())), 201)
            return json_response(self.rbac.review(await _body(request)), 201)
        target = resolve(self.registry, path)
        if isinstance(target, Target):
            return await self.resource(request, target)
        if isinstance(target, GroupVersionPath) and request.method == "GET":
            document = self._discovery(target)
            if document is not None:
                return json_response(document)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _discovery(self, target: GroupVersionPath) -> Obj | None:
        if target.core:
            if target.version is None:
                return discovery.api_versions(self.info.address)
            return discovery.resource_list(self.registry, "", target.version)
        if target.group is None:
            return discovery.api_group_list(self.registry)
        if target.version is None:
            return discovery.api_group(self.registry, target.group)
        return discovery.resource_list(self.registry, target.group, target.version)

    def _options(self, request: web.Request, *, apply: bool = False) -> WriteOptions:
        query = request.query
        requested = query.get("fieldManager")
        if apply and not requested:
            raise invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                [
                    (
                        "FieldValueRequired",
                        "fieldManager",
                        "Required value: is required for apply patch",
                    )
                ],
            )
        dry_run = query.getall("dryRun", [])
        for value in dry_run:
            if value != "All":
                raise bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
        return WriteOptions(
            manager=field_manager(requested, request.headers.get("User-Agent", "")),
            field_validation=query.get("fieldValidation") or "Warn",
            dry_run=bool(dry_run),
            force=_truthy(query.get("force")),
        )

    async def resource(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        rtype, namespace, name = target.rtype, target.namespace, target.name
        query = request.query
        self._authorize(request, target)
        if method == "GET":
            selector = parse_selector(query.get("labelSelector"), query.get("fieldSelector"), rtype)
            table = table_version(request.headers.get("Accept", ""))
            include = query.get("includeObject", "Metadata")
            if target.legacy_watch or (name is None and _truthy(query.get("watch"))):
                if name is not None:
                    by_name = FieldRequirement("metadata.name", name)
                    selector = Selector(selector.labels, (*selector.fields, by_name))
                transform = None if table is None else _table_events(target, table, include)
                return await stream_watch(
                    request, self.ops.store, target, selector, self.watch, transform=transform
                )
            if name is not None:
                obj = self.ops.get(rtype, namespace, name)
                if table is not None:
                    rv = str(obj["metadata"].get("resourceVersion", ""))
                    obj = to_table(
                        rtype, [obj], version=table, resource_version=rv, include_object=include
                    )
                return json_response(obj)
            limit_text = query.get("limit", "0")
            if not limit_text.isdigit():
                raise bad_request(f'limit: invalid value "{limit_text}"')
            items, meta = self.ops.list_page(
                rtype,
                namespace,
                selector,
                limit=int(limit_text),
                continue_token=query.get("continue"),
            )
            if table is not None:
                rendered = to_table(rtype, items, version=table, include_object=include)
                rendered["metadata"] = meta
                return json_response(rendered)
            return self._list_response(rtype, items, meta)
        if method == "POST" and name is None and (namespace is not None or not rtype.namespaced):
            body = await _body(request)
            result = await self._admitted(
                request,
                target,
                self._options(request),
                lambda o: self.ops.create(rtype, namespace, clone(body), o),
            )
            return self._written(result, 201)
        if method == "PUT" and name is not None:
            body = await _body(request)
            result = await self._admitted(
                request,
                target,
                self._options(request),
                lambda o: self.ops.replace(
                    rtype, namespace, name, clone(body), o, subresource=target.subresource
                ),
            )
            return self._written(result, 200)
        if method == "PATCH" and name is not None:
            ctype = request.content_type
            if ctype not in PATCH_TYPES:
                raise unsupported_media_type(ctype)
            options = self._options(request, apply=ctype == APPLY_PATCH)
            patch = await _body(request)
            result = await self._admitted(
                request,
                target,
                options,
                lambda o: self.ops.patch(
                    rtype,
                    namespace,
                    name,
                    clone(patch),
                    o,
                    patch_type=ctype,
                    subresource=target.subresource,
                ),
            )
            return self._written(result, 201 if result.created else 200)
        if method == "DELETE" and not target.subresource:
            return await self._delete(request, target)
        raise method_not_allowed(method)

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        """DELETE of one object or of a collection, through the validating webhooks."""
        rtype, namespace, name = target.rtype, target.namespace, target.name
        options = self._options(request)
        body = await _body(request, required=False)
        context = self._review_context(request, options)
        if name is not None:

            def delete() -> Obj:
                return self.ops.delete(
                    rtype, namespace, name, body, dry_run=options.dry_run, manager=options.manager
                )

            if self.admission is None:
                return json_response(delete())
            status, warnings = await self.admission.delete(delete, context, rtype, namespace, name)
            return json_response(status, warnings=warnings)
        query = request.query
        selector = parse_selector(query.get("labelSelector"), query.get("fieldSelector"), rtype)

        def delete_all() -> Obj:
            return self.ops.delete_collection(
                rtype, namespace, selector, dry_run=options.dry_run, manager=options.manager
            )

        if self.admission is None:
            return json_response(delete_all())
        deleted, warnings = await self.admission.delete_collection(
            delete_all, context, rtype, namespace, selector
        )
        return json_response(deleted, warnings=warnings)

    def _review_context(self, request: web.Request, options: WriteOptions) -> ReviewContext:
        return ReviewContext(
            user=request_user(request.headers, self.tokens),
            field_manager=request.query.get("fieldManager") or None,
            dry_run=options.dry_run,
        )

    async def _admitted(
        self,
        request: web.Request,
        target: Target,
        options: WriteOptions,
        write: Callable[[WriteOptions], WriteResult],
    ) -> WriteResult:
        """``write(options)``, through the validating webhooks when there are any."""
        if self.admission is None:
            return write(options)
        dry = replace(options, dry_run=True)
        return await self.admission.write(
            lambda dry_run: write(dry if dry_run else options),
            self._review_context(request, options),
            target.rtype,
            namespace=target.namespace,
            name=target.name,
            subresource=target.subresource,
        )

    def _authorize(self, request: web.Request, target: Target) -> None:
        """403 for a verb the sandbox's RBAC rules deny (an apply that creates is a create
        too, as on the real server)."""
        if not self.rbac.denied:
            return
        watch = target.legacy_watch or _truthy(request.query.get("watch"))
        verb = request_verb(request.method, named=target.name is not None, watch=watch)
        rtype, namespace, name = target.rtype, target.namespace, target.name
        self.rbac.check(verb, rtype, namespace, name)
        if (
            verb == "patch"
            and name is not None
            and request.content_type == APPLY_PATCH
            and self.ops.store.get(rtype, namespace, name) is None
        ):
            self.rbac.check("create", rtype, namespace, name)

    def _list_response(self, rtype: ResourceType, items: list[Obj], meta: Obj) -> web.Response:
        """The list as JSON, each item's encoding cached with the stored object."""
        encoded = [self.ops.store.encoded(o, _encode_item) for o in items]
        head = _dumps({"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": meta})
        body = b"".join((head[:-1], b',"items":[', b",".join(encoded), b"]}"))
        return web.Response(body=body, content_type="application/json")

    @staticmethod
    def _written(result: WriteResult, status: int) -> web.Response:
        return json_response(result.obj, status, result.warnings)
