"""The incident store for high availability: ``DriftIncident`` objects (``driftwatch.io/v1``,
``config/kubernetes/crd-driftincident.yaml``) in one namespace, so a new leader finds what the
last one delivered and what it left pending, and ``kubectl get driftincidents`` shows the
open drift.

Layout (:mod:`driftwatch.incidents.driftincident`): one object per incident, with the
incident, its pending notifications, its receivers' threads and its dead letters, and labels
for selectors; no status subresource, so one change is one write. Disabled receivers are
kept in the ConfigMap ``driftwatch-receivers`` (key ``disabled.json``).

Concurrency: the store assumes one writer at a time, which the leader Lease guarantees
(``driftwatch.live.leader``). Every object is loaded at :meth:`KubernetesStore.open`, so
reads cost nothing; every change is a read-modify-write of one object under its
``resourceVersion``: a 409 (a stale cache, or a write of the previous leader still landing)
re-reads the object and applies the change again. Calls that change several objects
(forming, retrying, delivering or dead-lettering a batch; :meth:`~KubernetesStore.due_now`)
are atomic per object: after a crash half-way, a batch's stamped members go out as a batch
and the rest in the next one, so nothing is lost (delivery stays at least once). Call
:meth:`~KubernetesStore.reload` after winning the lease.

``seq`` (the enqueue order): ``max(highest seq seen + 1, now in microseconds)``. Every
object keeps the highest seq it used (``status.lastSeq``) even after its outbox empties, so
a new leader never hands out a smaller one than its predecessor, even with a clock behind;
the time base keeps it growing if objects are deleted, and fits JSON's exact integers until
the year 2255.

Errors: a failed request becomes :class:`KubernetesStoreError` (an ``OSError``) naming the
object, after retrying transient failures (429, 5xx, connection errors, timeouts) for
``retry_for`` seconds. RBAC: ``get``, ``list``, ``create``, ``update`` on
``driftincidents.driftwatch.io`` and ``get``, ``create``, ``update`` on ``configmaps`` in the
store's namespace.

Limits: an object must stay under etcd's 1.5 MiB (the incident's body plus each distinct
pending body: a very large diff with many undelivered updates can exceed it, and the write
then fails); resolved incidents are kept, as in SQLite (nothing prunes them yet); every
change is idempotent when applied again after a lost answer except a retry's attempt count,
which may then grow by one too many; returned bodies are the cache's (read-only).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import aiohttp
import structlog
from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from driftwatch.incidents.driftincident import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    Entry,
    Record,
    decode,
    edit,
    encode,
    label_value,
    object_name,
)
from driftwatch.incidents.model import DeadLetter, Incident, Pending, iso_time
from driftwatch.incidents.store import Outgoing
from driftwatch.policy import PolicyKey

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "RECEIVERS_CONFIG_MAP",
    "VERSION",
    "KubernetesStore",
    "KubernetesStoreError",
    "label_value",
    "object_name",
]

T = TypeVar("T")
Obj = dict[str, Any]

RECEIVERS_CONFIG_MAP = "driftwatch-receivers"
_DISABLED_KEY = "disabled.json"
_TRANSIENT = frozenset({429, 500, 502, 503, 504})


class KubernetesStoreError(OSError):
    """A request of the Kubernetes store failed; the message names the object."""


class _Conflict(Exception):
    """409: a stale resourceVersion, or the object exists already."""


class _Missing(Exception):
    """404: the object is gone."""


Change = Callable[[Record | None], Record | None]


class KubernetesStore:
    """:class:`~driftwatch.incidents.store.IncidentStore` on DriftIncident objects in
    ``namespace`` (see the module docstring). ``api`` stays the caller's to close."""

    def __init__(
        self,
        api: ApiClient,
        namespace: str,
        *,
        request_timeout: float = 10.0,
        retry_for: float = 5.0,
        max_conflicts: int = 10,
        page_size: int = 250,
        log: Any = None,
    ) -> None:
        self.namespace = namespace
        self.request_timeout = request_timeout
        self.retry_for = retry_for
        self.max_conflicts = max_conflicts
        self.page_size = page_size
        self._objects: Any = CustomObjectsApi(api)
        self._core: Any = CoreV1Api(api)
        self._records: dict[str, Record] = {}
        self._open: dict[PolicyKey, str] = {}
        self._numbers: dict[PolicyKey, int] = {}
        self._active: set[str] = set()
        self._seq = 0
        self._disabled: dict[str, str] = {}
        self._locks = [asyncio.Lock() for _ in range(32)]
        self._log = log if log is not None else structlog.get_logger("driftwatch.incidents")
        self.skipped: list[str] = []
        """Why each DriftIncident the last load could not read was left alone."""

    # -- the API boundary -------------------------------------------------------------------

    def _what(self, name: str | None, kind: str = KIND) -> str:
        if name is None:
            return f"{KIND}s in namespace {self.namespace}"
        return f"{kind} {self.namespace}/{name}"

    async def _call(self, verb: str, what: str, request: Callable[[], Awaitable[T]]) -> T:
        """``request()``; 409 and 404 become :class:`_Conflict` / :class:`_Missing`,
        transient failures are retried, the rest is a :class:`KubernetesStoreError`."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.retry_for, 0.1
        while True:
            try:
                return await request()
            except ApiException as e:
                if e.status == 409:
                    raise _Conflict from None
                if e.status == 404:
                    raise _Missing from None
                error: BaseException = e
                transient = e.status in _TRANSIENT
            except (aiohttp.ClientError, TimeoutError) as e:
                error, transient = e, True
            if not transient or loop.time() + delay > deadline:
                raise KubernetesStoreError(f"{what}: {verb} failed: {self._why(error)}") from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _why(self, error: BaseException) -> str:
        if not isinstance(error, ApiException):
            return str(error) or type(error).__name__
        try:
            message = str(json.loads(error.body or "{}").get("message") or "")
        except (ValueError, AttributeError):
            message = ""
        said = f"{error.status} {error.reason}" + (f": {message}" if message else "")
        if error.status in (401, 403):
            said += (
                f"; driftwatch needs get, list, create and update on {PLURAL}.{GROUP} and get,"
                f" create and update on configmaps in namespace {self.namespace}"
            )
        return said

    # -- loading ----------------------------------------------------------------------------

    async def open(self) -> KubernetesStore:
        """Load every DriftIncident of the namespace and the disabled receivers."""
        await self.reload()
        return self

    async def reload(self) -> None:
        """Load everything again: what the last leader wrote (after winning the lease,
        before writing)."""
        records: list[Record] = []
        skipped: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": self.page_size}
            if token:
                kwargs["_continue"] = token
            try:
                page = await self._call(
                    "list", self._what(None), partial(self._request, "list", **kwargs)
                )
            except _Missing:
                raise KubernetesStoreError(
                    f"{self._what(None)}: the API server does not serve {PLURAL}.{GROUP};"
                    " install the CRD: kubectl apply -f config/kubernetes/crd-driftincident.yaml"
                ) from None
            for item in page.get("items") or []:
                try:
                    records.append(self._decoded(item))
                except KubernetesStoreError as e:
                    # One bad object (hand-made, or from another version) must not stop
                    # every replica from starting or taking over: named, and left alone.
                    skipped.append(str(e))
                    self._log.error("skipping a DriftIncident that is not one", error=str(e))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        self._records, self._open, self._numbers, self._active = {}, {}, {}, set()
        self.skipped = skipped
        for rec in records:
            self._keep(rec)
        self._disabled = {
            r: str(v.get("reason", "")) for r, v in (await self._receivers())[0].items()
        }

    async def _request(self, verb: str, *args: Any, **kwargs: Any) -> Obj:
        """``<verb>_namespaced_custom_object`` on DriftIncidents in the namespace."""
        call = getattr(self._objects, f"{verb}_namespaced_custom_object")
        timeout = self.request_timeout
        obj: Obj = await call(
            GROUP, VERSION, self.namespace, PLURAL, *args, _request_timeout=timeout, **kwargs
        )
        return obj

    def _decoded(self, obj: Obj) -> Record:
        try:
            return decode(obj)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            name = (obj.get("metadata") or {}).get("name", "?")
            raise KubernetesStoreError(
                f"{self._what(name)}: cannot be read as an incident: {type(e).__name__}: {e}"
            ) from e

    def _keep(self, rec: Record) -> Record:
        inc = rec.incident
        self._records[inc.id] = rec
        if inc.is_open:
            self._open[inc.key] = inc.id
        elif self._open.get(inc.key) == inc.id:
            del self._open[inc.key]
        self._numbers[inc.key] = max(self._numbers.get(inc.key, 0), inc.number)
        (self._active.add if rec.outbox else self._active.discard)(inc.id)
        self._seq = max(self._seq, rec.last_seq)
        return rec

    def _forget(self, incident_id: str) -> None:
        rec = self._records.pop(incident_id, None)
        self._active.discard(incident_id)
        if rec is not None and self._open.get(rec.incident.key) == incident_id:
            del self._open[rec.incident.key]

    def _next_seq(self) -> int:
        self._seq = max(self._seq + 1, time.time_ns() // 1000)
        return self._seq

    # -- writing one object -----------------------------------------------------------------

    async def _write(self, incident_id: str, change: Change) -> None:
        """Apply ``change`` to the incident's object (None: it does not exist) and write the
        result, re-reading and applying it again after a 409."""
        what = self._what(incident_id)
        async with self._locks[hash(incident_id) % len(self._locks)]:
            for _ in range(self.max_conflicts):
                current = self._records.get(incident_id)
                new = change(current)
                if new is None or new == current:
                    return
                what = self._what(new.name)
                body = encode(new, self.namespace)
                try:
                    if current is None:
                        obj = await self._call(
                            "create", what, partial(self._request, "create", body)
                        )
                    else:
                        obj = await self._call(
                            "update", what, partial(self._request, "replace", new.name, body)
                        )
                except _Conflict:
                    await self._reread(incident_id, new.name)
                    continue
                except _Missing:
                    if current is None:
                        raise KubernetesStoreError(
                            f"{what}: create failed: 404: no namespace {self.namespace}, or"
                            f" {PLURAL}.{GROUP} is not served (is the CRD installed?)"
                        ) from None
                    self._forget(incident_id)  # deleted behind the store's back: recreate it
                    continue
                self._keep(self._decoded(obj))
                return
            raise KubernetesStoreError(
                f"{what}: still conflicting after {self.max_conflicts} attempts"
                " (is more than one driftwatch writing?)"
            )

    async def _reread(self, incident_id: str, name: str) -> None:
        try:
            obj = await self._call("get", self._what(name), partial(self._request, "get", name))
        except _Missing:
            self._forget(incident_id)
            return
        self._keep(self._decoded(obj))

    async def _each(self, incident_ids: Iterable[str], change: Callable[[Record], Record]) -> None:
        """``change`` on several objects, each atomically (concurrently)."""

        def existing(rec: Record | None) -> Record | None:
            return None if rec is None else change(rec)

        await asyncio.gather(*(self._write(i, existing) for i in dict.fromkeys(incident_ids)))

    # -- incidents --------------------------------------------------------------------------

    async def open_incident(self, key: PolicyKey) -> Incident | None:
        found = self._open.get(key)
        return None if found is None else self._records[found].incident

    async def open_incidents(self) -> list[Incident]:
        found = [self._records[i].incident for i in self._open.values()]
        return sorted(found, key=lambda i: (i.opened_at, i.id))

    async def next_number(self, key: PolicyKey) -> int:
        return self._numbers.get(key, 0) + 1

    async def get(self, incident_id: str) -> Incident | None:
        rec = self._records.get(incident_id)
        return None if rec is None else rec.incident

    async def history(self, limit: int = 100) -> list[Incident]:
        found = sorted((r.incident for r in self._records.values()), key=lambda i: i.updated_at)
        return found[::-1][:limit]

    async def save(self, incident: Incident, outgoing: Sequence[Outgoing], now: float) -> None:
        other = self._open.get(incident.key)
        if incident.is_open and other not in (None, incident.id):
            raise ValueError(f"{incident.key} already has an open incident: {other}")

        def change(current: Record | None) -> Record:
            name = object_name(incident.key, incident.number)
            rec = Record(name, "", incident) if current is None else current
            have = {e.id for e in rec.outbox}
            added = tuple(
                Entry(
                    o.id,
                    o.receiver,
                    o.kind,
                    dict(o.body),
                    self._next_seq(),
                    now + o.delay,
                    now,
                    grouped=o.grouped,
                )
                for o in outgoing
                if o.id not in have
            )
            last = max([rec.last_seq, *(e.seq for e in added)])
            return replace(rec, incident=incident, outbox=rec.outbox + added, last_seq=last)

        await self._write(incident.id, change)

    # -- the outbox -------------------------------------------------------------------------

    def _rows(self, receiver: str) -> list[tuple[str, Entry]]:
        return [
            (i, e) for i in self._active for e in self._records[i].outbox if e.receiver == receiver
        ]

    async def due(self, receiver: str, now: float, limit: int = 100) -> list[Pending]:
        first: dict[str, Entry] = {}
        for iid, e in self._rows(receiver):
            if iid not in first or e.seq < first[iid].seq:
                first[iid] = e
        found = [e.pending(i) for i, e in first.items() if not e.grouped and e.next_at <= now]
        return sorted(found, key=lambda p: p.seq)[:limit]

    async def batch(self, receiver: str, now: float, limit: int = 50) -> list[Pending]:
        rows = sorted(self._rows(receiver), key=lambda r: r[1].seq)
        formed = [e.batch for _, e in rows if e.batch is not None and e.next_at <= now]
        if formed:
            batch = formed[0]
        elif any(e.grouped and e.batch is None and e.next_at <= now for _, e in rows):
            # The oldest waited its group_wait: it goes with everything grouped since.
            batch = str(uuid.uuid4())
            chosen = [(i, e) for i, e in rows if e.grouped and e.batch is None][:limit]
            ids = {e.id for _, e in chosen}
            stamp = {"batch": batch, "next_at": now}
            await self._each((i for i, _ in chosen), lambda r: edit(r, ids, **stamp))
        else:
            return []
        members = [(i, e) for i, e in self._rows(receiver) if e.batch == batch]
        return [e.pending(i) for i, e in sorted(members, key=lambda r: r[1].seq)]

    async def next_due(self, receiver: str) -> float | None:
        return min((e.next_at for _, e in self._rows(receiver)), default=None)

    async def delivered(self, pending: Pending, thread: Mapping[str, str] | None) -> None:
        await self.delivered_batch(
            [pending], {} if thread is None else {pending.incident_id: thread}
        )

    async def delivered_batch(
        self, pendings: Sequence[Pending], threads: Mapping[str, Mapping[str, str]]
    ) -> None:
        def change(rec: Record) -> Record:
            mine = [p for p in pendings if p.incident_id == rec.incident.id]
            ids = {p.id for p in mine}
            kept = {**rec.threads}
            for p in mine:
                if p.incident_id in threads:
                    kept[p.receiver] = dict(threads[p.incident_id])
            outbox = tuple(e for e in rec.outbox if e.id not in ids)
            return replace(rec, outbox=outbox, threads=kept)

        await self._each((p.incident_id for p in pendings), change)

    async def retry(self, pending: Pending, at: float, error: str) -> None:
        if pending.batch:
            incidents = [i for i, e in self._rows(pending.receiver) if e.batch == pending.batch]
        else:
            incidents = [pending.incident_id]

        def change(rec: Record) -> Record:
            def hit(e: Entry) -> bool:
                return e.batch == pending.batch if pending.batch else e.id == pending.id

            outbox = tuple(
                replace(e, attempts=e.attempts + 1, next_at=at, last_error=error) if hit(e) else e
                for e in rec.outbox
            )
            return replace(rec, outbox=outbox)

        await self._each(incidents, change)

    async def due_now(self, now: float) -> int:
        later = [(i, e) for i in self._active for e in self._records[i].outbox if e.next_at > now]
        ids = {e.id for _, e in later}
        await self._each((i for i, _ in later), lambda r: edit(r, ids, next_at=now))
        return len(later)

    async def dead_letter(self, pending: Pending, reason: str, now: float) -> None:
        await self.dead_letter_batch([pending], reason, now)

    async def dead_letter_batch(self, pendings: Sequence[Pending], reason: str, now: float) -> None:
        def change(rec: Record) -> Record:
            mine = {p.id: p for p in pendings if p.incident_id == rec.incident.id}
            letters = tuple(
                DeadLetter(
                    p.id, p.receiver, p.incident_id, p.kind, reason, p.attempts + 1, iso_time(now)
                )
                for p in mine.values()
            )
            dead = tuple(d for d in rec.dead if d.id not in mine) + letters
            outbox = tuple(e for e in rec.outbox if e.id not in mine)
            return replace(rec, outbox=outbox, dead=dead)

        await self._each((p.incident_id for p in pendings), change)

    async def thread(self, receiver: str, incident_id: str) -> dict[str, str]:
        rec = self._records.get(incident_id)
        return {} if rec is None else dict(rec.threads.get(receiver, {}))

    async def pending_count(self) -> int:
        return sum(len(self._records[i].outbox) for i in self._active)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        found = [d for r in self._records.values() for d in r.dead]
        return sorted(found, key=lambda d: d.failed_at, reverse=True)[:limit]

    # -- receivers --------------------------------------------------------------------------

    async def _receivers(self) -> tuple[dict[str, dict[str, str]], Obj | None]:
        """The disabled receivers and the ConfigMap holding them (None: there is none)."""
        what = self._what(RECEIVERS_CONFIG_MAP, "ConfigMap")

        async def get() -> Obj:
            found = await self._core.read_namespaced_config_map(
                RECEIVERS_CONFIG_MAP, self.namespace, _request_timeout=self.request_timeout
            )
            return dict(self._core.api_client.sanitize_for_serialization(found))

        try:
            cm = await self._call("get", what, get)
        except _Missing:
            return {}, None
        try:
            data = json.loads((cm.get("data") or {}).get(_DISABLED_KEY) or "{}")
            return {str(k): dict(v) for k, v in data.items()}, cm
        except (ValueError, TypeError, AttributeError) as e:
            raise KubernetesStoreError(f"{what}: {_DISABLED_KEY} is not valid: {e}") from e

    async def disable_receiver(self, receiver: str, reason: str, now: float) -> None:
        what = self._what(RECEIVERS_CONFIG_MAP, "ConfigMap")
        for _ in range(self.max_conflicts):
            disabled, cm = await self._receivers()
            disabled[receiver] = {"reason": reason, "at": iso_time(now)}
            data = {_DISABLED_KEY: json.dumps(disabled, sort_keys=True, indent=1)}
            meta: Obj = {"name": RECEIVERS_CONFIG_MAP, "namespace": self.namespace}
            if cm is not None:
                meta["resourceVersion"] = cm["metadata"]["resourceVersion"]
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
            try:
                if cm is None:
                    await self._call("create", what, partial(self._write_cm, body, True))
                else:
                    await self._call("update", what, partial(self._write_cm, body, False))
            except _Conflict:
                continue
            except _Missing:
                if cm is None:
                    raise KubernetesStoreError(
                        f"{what}: create failed: 404: no namespace {self.namespace}"
                    ) from None
                continue  # deleted meanwhile: created afresh
            self._disabled = {r: str(v.get("reason", "")) for r, v in disabled.items()}
            return
        raise KubernetesStoreError(f"{what}: still conflicting after {self.max_conflicts} attempts")

    async def _write_cm(self, body: Obj, create: bool) -> None:
        timeout = self.request_timeout
        if create:
            await self._core.create_namespaced_config_map(
                self.namespace, body, _request_timeout=timeout
            )
        else:
            await self._core.replace_namespaced_config_map(
                RECEIVERS_CONFIG_MAP, self.namespace, body, _request_timeout=timeout
            )

    async def disabled_receivers(self) -> dict[str, str]:
        # Asked for every incident change: kept in memory (this store is the only writer).
        return dict(self._disabled)

    async def close(self) -> None:
        """Nothing to release: the ApiClient is the caller's."""
