"""The sandbox API server: :class:`Sandbox` in an event loop, :class:`SandboxThread` for
synchronous code (tests that drive the real kubectl).

It listens on 127.0.0.1 only. A request with a bearer token must carry ``token`` (the one
in the written kubeconfig), else 401. One without is served anonymously unless
``require_auth`` is set — kubectl (client-go) sends no credentials at all to an ``http://``
server, while kubernetes_asyncio does. ``/version``, the health endpoints and
``/_sandbox/`` are always open. It starts with the namespaces a new cluster has
(``default``, ``kube-system``, ``kube-public``, ``kube-node-lease``), created by
``kube-apiserver``; creating an object in a missing namespace is a 404 unless
``auto_create_namespaces`` is set (seeding and :meth:`Sandbox.put_object` create them).

The Python object API (``put_object``, ``get_object``, ``faults``, ...) must be called on the
sandbox's event loop; from another thread, go through :meth:`SandboxThread.call`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from aiohttp import web

from driftwatch.sandbox.admission import Admission
from driftwatch.sandbox.app import build_app
from driftwatch.sandbox.crds import CrdController
from driftwatch.sandbox.discovery import SERVER_VERSION
from driftwatch.sandbox.faults import Faults
from driftwatch.sandbox.handlers import ApiHandlers, ServerInfo
from driftwatch.sandbox.kubeconfig import kubeconfig, write_kubeconfig
from driftwatch.sandbox.openapi import OpenAPI
from driftwatch.sandbox.operations import Operations, WriteOptions
from driftwatch.sandbox.patch import clone
from driftwatch.sandbox.rbac import Rbac
from driftwatch.sandbox.resources import NAMESPACES, Registry, ResourceType, default_registry
from driftwatch.sandbox.seed import seed_paths
from driftwatch.sandbox.store import Change, Store
from driftwatch.sandbox.watchstream import WatchSettings

__all__ = ["DEFAULT_NAMESPACES", "DEFAULT_TOKEN", "HOST", "Sandbox", "SandboxThread"]

Obj = dict[str, Any]
T = TypeVar("T")
P = ParamSpec("P")

HOST = "127.0.0.1"
DEFAULT_TOKEN = "driftwatch-sandbox-token"  # noqa: S105  (a fixed test credential)
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PYTHON_MANAGER = "driftwatch-sandbox"


class Sandbox:
    """A Kubernetes-API-compatible in-memory server. ``async with Sandbox() as sb: sb.url``."""

    def __init__(
        self,
        *,
        port: int = 0,
        seed: Iterable[str | os.PathLike[str]] = (),
        token: str | None = DEFAULT_TOKEN,
        require_auth: bool = False,
        bookmark_interval: float = 1.0,
        history_limit: int = 10_000,
        max_watch_seconds: float | None = None,
        auto_create_namespaces: bool = False,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        server_version: str = SERVER_VERSION,
        registry: Registry | None = None,
        clock: Callable[[], float] = time.time,
        users: Mapping[str, str] | None = None,
        webhook_services: Mapping[str, str] | None = None,
    ) -> None:
        """``users``: bearer tokens besides ``token`` and their user names (what admission
        webhooks are told; ``token``'s user is ``kubernetes-admin``). ``webhook_services``:
        ``<service>.<namespace>.svc:<port>`` -> the loopback ``host:port`` where a
        webhook's ``clientConfig.service`` is served (also :attr:`webhook_services`)."""
        self.registry = registry if registry is not None else default_registry()
        self.store = Store(self.registry, history_limit=history_limit)
        self.ops = Operations(
            self.store, auto_create_namespaces=auto_create_namespaces, clock=clock
        )
        self.crds = CrdController(self.store).attach()
        self.faults = Faults(self.store)
        self.rbac = Rbac()
        """Verbs the sandbox denies (403, and in SelfSubjectAccessReview); none by default."""
        self.token = token
        self.require_auth = require_auth
        self.users = dict(users or {})
        self.webhook_services: dict[str, str] = dict(webhook_services or {})
        """Where validating webhooks given as a ``service`` are reached (change it at will)."""
        self.admission = Admission(self.store, services=self.webhook_services)
        self._requested_port = port
        self._seed = list(seed)
        self._namespaces = tuple(namespaces)
        self._info = ServerInfo(server_version, f"{HOST}:{port}")
        self._watch = WatchSettings(bookmark_interval, max_watch_seconds)
        self._openapi = OpenAPI(self.registry, server_version)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Create the initial namespaces, load the seed manifests, start listening."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        system = WriteOptions(manager="kube-apiserver")
        for name in self._namespaces:
            if self.store.get(NAMESPACES, None, name) is None:
                self.ops.create(NAMESPACES, None, {"metadata": {"name": name}}, system)
        if self._seed:
            seed_paths(self.ops, self._seed)
        api = ApiHandlers(self.ops, self._openapi, self._info, self._watch, self.rbac)
        api.admission = self.admission
        app = build_app(
            api, self.faults, self.token, require_auth=self.require_auth, users=self.users
        )
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0
        )
        await runner.setup()
        site = web.TCPSite(runner, HOST, self._requested_port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        api.info = ServerInfo(self._info.version, f"{HOST}:{self._port}")

    async def stop(self) -> None:
        """End open watches cleanly, stop listening, remove written kubeconfigs."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self.store.cut_watches()
            await asyncio.sleep(0)
            await runner.cleanup()
        await self.admission.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the sandbox is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # --- clients ------------------------------------------------------------------------

    def kubeconfig(self, *, namespace: str | None = None) -> Obj:
        return kubeconfig(self.url, self.token, namespace=namespace)

    def kubeconfig_path(
        self, directory: str | os.PathLike[str] | None = None, *, namespace: str | None = None
    ) -> Path:
        """Write a kubeconfig for this sandbox (into a temporary directory removed on stop,
        unless ``directory`` is given) and return its path."""
        if directory is None:
            if self._tmpdir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="driftwatch-sandbox-")
            directory = self._tmpdir.name
        suffix = f"-{namespace}" if namespace else ""
        path = Path(directory) / f"kubeconfig-{self.port}{suffix}"
        return write_kubeconfig(path, self.kubeconfig(namespace=namespace))

    # --- the Python object API (on the loop thread) ---------------------------------------

    def resource(self, api_version: str, kind: str) -> ResourceType:
        rtype = self.registry.by_kind(api_version, kind)
        if rtype is None:
            raise ValueError(f"{kind} ({api_version}) is not served by the sandbox")
        return rtype

    def _namespace_of(self, rtype: ResourceType, namespace: str | None) -> str | None:
        return (namespace or "default") if rtype.namespaced else None

    def put_object(self, obj: Mapping[str, Any], *, manager: str = PYTHON_MANAGER) -> Obj:
        """Create ``obj``, or replace it unconditionally; creates a missing namespace."""
        rtype = self.resource(str(obj.get("apiVersion")), str(obj.get("kind")))
        meta = obj.get("metadata") or {}
        namespace = self._namespace_of(rtype, meta.get("namespace"))
        options = WriteOptions(manager=manager)
        if namespace is not None and self.store.get(NAMESPACES, None, namespace) is None:
            self.ops.create(NAMESPACES, None, {"metadata": {"name": namespace}}, options)
        body = clone(dict(obj))
        body.setdefault("metadata", {}).pop("resourceVersion", None)
        name = body["metadata"].get("name")
        if isinstance(name, str) and self.store.get(rtype, namespace, name) is not None:
            return self.ops.replace(rtype, namespace, name, body, options, unconditional=True).obj
        return self.ops.create(rtype, namespace, body, options).obj

    def get_object(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        rtype = self.resource(api_version, kind)
        obj = self.store.get(rtype, self._namespace_of(rtype, namespace), name)
        return None if obj is None else clone(obj)

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]:
        return [clone(o) for o in self.store.select(self.resource(api_version, kind), namespace)]

    def delete_object(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        manager: str = PYTHON_MANAGER,
    ) -> bool:
        """Delete; False if there was nothing to delete."""
        rtype = self.resource(api_version, kind)
        namespace = self._namespace_of(rtype, namespace)
        if self.store.get(rtype, namespace, name) is None:
            return False
        self.ops.delete(rtype, namespace, name, manager=manager)
        return True

    def seed(self, paths: Iterable[str | os.PathLike[str]]) -> list[Obj]:
        """Apply the manifests under ``paths`` (see :mod:`driftwatch.sandbox.seed`)."""
        return [clone(o) for o in seed_paths(self.ops, paths)]

    @property
    def changes(self) -> list[Change]:
        """Every committed write so far, oldest first."""
        return list(self.store.changes)

    @property
    def resource_version(self) -> str:
        return str(self.store.revision)

    async def wait_for_watchers(
        self, count: int = 1, *, resource: str | None = None, timeout: float = 5.0
    ) -> None:
        """Wait until at least ``count`` watches (of ``resource``, a plural) are open."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            open_ = sum(
                1 for w in self.store.watchers if resource is None or w.rtype.plural == resource
            )
            if open_ >= count:
                return
            if asyncio.get_running_loop().time() >= deadline:
                raise TimeoutError(f"{open_} watches open, wanted {count}")
            await asyncio.sleep(0.01)


class SandboxThread:
    """A :class:`Sandbox` running on its own event loop in a daemon thread.

    ``with SandboxThread(seed=[...]) as st: subprocess.run(["kubectl", ...], env=...)``;
    use :meth:`call` (a function) or :meth:`run` (a coroutine) to reach the sandbox.
    """

    def __init__(self, **options: Any) -> None:
        self.sandbox = Sandbox(**options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> Sandbox:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._main, name="driftwatch-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the sandbox did not start")
        if self._error is not None:
            raise self._error
        return self.sandbox

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._stop = asyncio.Event()
            loop.run_until_complete(self.sandbox.start())
        except BaseException as error:  # reported to start()
            self._error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_until_complete(self._stop.wait())
        finally:
            loop.run_until_complete(self.sandbox.stop())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> SandboxThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the sandbox's loop and return (or raise) its result."""
        if self._loop is None:
            raise RuntimeError("not started")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:  # handed to the caller
                future.set_exception(error)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the sandbox's loop and wait for it."""
        if self._loop is None:
            raise RuntimeError("not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    @property
    def url(self) -> str:
        return self.sandbox.url

    def kubeconfig_path(
        self, directory: str | os.PathLike[str] | None = None, *, namespace: str | None = None
    ) -> Path:
        return self.call(self.sandbox.kubeconfig_path, directory, namespace=namespace)

    def put_object(self, obj: Mapping[str, Any], *, manager: str = PYTHON_MANAGER) -> Obj:
        return self.call(self.sandbox.put_object, obj, manager=manager)

    def get_object(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        return self.call(self.sandbox.get_object, api_version, kind, name, namespace)

    def delete_object(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> bool:
        return self.call(self.sandbox.delete_object, api_version, kind, name, namespace)

    def changes(self) -> list[Change]:
        return self.call(lambda: self.sandbox.changes)
