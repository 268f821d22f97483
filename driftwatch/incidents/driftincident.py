"""The ``DriftIncident`` object (``driftwatch.io/v1``): how the Kubernetes store lays one
incident out, and reads it back.

``metadata.name`` is ``<namespace>.<name>-<n>-<hash>`` (:func:`object_name`); labels
``driftwatch.io/cluster``, ``/namespace``, ``/policy`` (:func:`label_value`), ``/state``,
``/open`` and ``/pending`` serve label selectors (``kubectl get di -l
driftwatch.io/open=true``). ``spec`` is the incident's identity (``id``, ``cluster``,
``policyNamespace``, ``policyName``, ``policy``, ``number``); ``status`` is what changes:
the incident's fields, ``policyLabels``, ``body``, ``outbox`` (each row's body stored once in
``bodies`` and referred to by ``bodyRef``, or ``@incident`` when it is ``status.body``, so
three receivers' copies of one message cost one), ``pending`` (the row count, a printer
column), ``lastSeq``, ``threads`` and ``deadLetters`` (without bodies). The schema is
``config/kubernetes/crd-driftincident.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from driftwatch.incidents.model import DeadLetter, Incident, IncidentState, Pending, incident_id
from driftwatch.policy import PolicyKey

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "Entry",
    "Record",
    "decode",
    "edit",
    "encode",
    "label_value",
    "object_name",
]

Obj = dict[str, Any]

GROUP, VERSION, PLURAL, KIND = "driftwatch.io", "v1", "driftincidents", "DriftIncident"
_INCIDENT_BODY = "@incident"
_LABEL_OK = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")
_NOT_DNS = re.compile(r"[^a-z0-9.-]+")


def _digest(text: str, size: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def object_name(key: PolicyKey, number: int) -> str:
    """``<namespace>.<name>-<n>-<hash>``: a DNS subdomain of at most 253 characters. The
    hash is the incident id's, so ids that sanitise alike (another cluster, ``Prod`` and
    ``prod``, a cut long name) still get distinct names (barring a 32-bit collision)."""
    suffix = f"-{number}-{_digest(incident_id(key, number))}"
    parts = _NOT_DNS.sub("-", f"{key.namespace}.{key.name}".lower()).split(".")
    base = ".".join(p.strip("-") for p in parts if p.strip("-")) or "incident"
    return base[: 253 - len(suffix)].rstrip(".-") + suffix


def label_value(text: str) -> str:
    """``text`` as a label value: as is when valid, else cleaned, cut and suffixed with its
    hash (so a selector on it still finds only its own objects)."""
    if len(text) <= 63 and _LABEL_OK.fullmatch(text):
        return text
    clean = _NOT_LABEL.sub("-", text)[:54].strip("-_.")
    return f"{clean}-{_digest(text)}" if clean else _digest(text)


@dataclass(frozen=True, slots=True)
class Entry:
    """One outbox row (a :class:`Pending` plus what only the store needs)."""

    id: str
    receiver: str
    kind: str
    body: dict[str, Any]
    seq: int
    next_at: float
    created_at: float
    attempts: int = 0
    last_error: str | None = None
    grouped: bool = False
    batch: str | None = None

    def pending(self, incident_id: str) -> Pending:
        return Pending(
            self.id, self.receiver, incident_id, self.kind, self.body, self.seq,
            self.attempts, self.next_at, self.last_error, self.batch,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Record:
    """One DriftIncident object, decoded (``resource_version`` ``""``: not created yet)."""

    name: str
    resource_version: str
    incident: Incident
    outbox: tuple[Entry, ...] = ()
    threads: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    dead: tuple[DeadLetter, ...] = ()
    last_seq: int = 0


def _canonical(body: Mapping[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def encode(rec: Record, namespace: str) -> Obj:
    """The object to write for ``rec`` (with its resourceVersion, if it has one)."""
    inc, key = rec.incident, rec.incident.key
    own = _canonical(inc.body)
    bodies: dict[str, Any] = {}
    outbox: list[Obj] = []
    for e in rec.outbox:
        text = _canonical(e.body)
        ref = _INCIDENT_BODY if text == own else _digest(text, 16)
        if ref != _INCIDENT_BODY:
            bodies[ref] = e.body
        item: Obj = {
            "id": e.id, "receiver": e.receiver, "kind": e.kind, "bodyRef": ref,
            "attempts": e.attempts, "nextAt": e.next_at, "grouped": e.grouped, "seq": e.seq,
            "createdAt": e.created_at,
        }  # fmt: skip
        item.update({k: v for k, v in (("lastError", e.last_error), ("batch", e.batch)) if v})
        outbox.append(item)
    status: Obj = {
        "state": str(inc.state), "driftStatus": inc.status, "fingerprint": inc.fingerprint,
        "openedAt": inc.opened_at, "updatedAt": inc.updated_at, "policyLabels": inc.labels,
        "body": inc.body, "pending": len(outbox), "lastSeq": rec.last_seq, "outbox": outbox,
        "bodies": bodies, "threads": {r: dict(t) for r, t in rec.threads.items()},
        "deadLetters": [
            {"id": d.id, "receiver": d.receiver, "kind": d.kind, "reason": d.reason,
             "attempts": d.attempts, "failedAt": d.failed_at}
            for d in rec.dead
        ],
    }  # fmt: skip
    for name, value in (
        ("severity", inc.severity),
        ("resolvedAt", inc.resolved_at),
        ("lastNotifiedAt", inc.last_notified_at),
    ):
        if value is not None:
            status[name] = value
    labels = {
        "app.kubernetes.io/managed-by": "driftwatch",
        "driftwatch.io/cluster": label_value(key.cluster),
        "driftwatch.io/namespace": label_value(key.namespace),
        "driftwatch.io/policy": label_value(key.name),
        "driftwatch.io/state": str(inc.state),
        "driftwatch.io/open": str(inc.is_open).lower(),
        "driftwatch.io/pending": str(bool(outbox)).lower(),
    }
    meta: Obj = {"name": rec.name, "namespace": namespace, "labels": labels}
    if rec.resource_version:
        meta["resourceVersion"] = rec.resource_version
    spec = {
        "id": inc.id, "cluster": key.cluster, "policyNamespace": key.namespace,
        "policyName": key.name, "policy": f"{key.namespace}/{key.name}", "number": inc.number,
    }  # fmt: skip
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": meta, "spec": spec,
            "status": status}  # fmt: skip


def decode(obj: Obj) -> Record:
    """A stored object, read back (KeyError, TypeError, ValueError when it is not one)."""
    meta, spec, status = obj["metadata"], obj["spec"], obj.get("status") or {}
    incident = Incident(
        id=spec["id"],
        key=PolicyKey(spec["cluster"], spec["policyNamespace"], spec["policyName"]),
        number=int(spec["number"]),
        state=IncidentState(status["state"]),
        severity=status.get("severity"),
        status=str(status.get("driftStatus", "")),
        fingerprint=str(status.get("fingerprint", "")),
        opened_at=status["openedAt"],
        updated_at=status["updatedAt"],
        resolved_at=status.get("resolvedAt"),
        last_notified_at=status.get("lastNotifiedAt"),
        body=dict(status.get("body") or {}),
        labels=dict(status.get("policyLabels") or {}),
    )
    bodies = status.get("bodies") or {}
    outbox = tuple(
        Entry(
            e["id"],
            e["receiver"],
            e["kind"],
            incident.body if e["bodyRef"] == _INCIDENT_BODY else bodies[e["bodyRef"]],
            int(e["seq"]),
            float(e["nextAt"]),
            float(e.get("createdAt", 0)),
            int(e["attempts"]),
            e.get("lastError"),
            bool(e.get("grouped", False)),
            e.get("batch"),
        )
        for e in status.get("outbox") or []
    )
    dead = tuple(
        DeadLetter(
            d["id"],
            d["receiver"],
            incident.id,
            d["kind"],
            d["reason"],
            int(d["attempts"]),
            d["failedAt"],
        )
        for d in status.get("deadLetters") or []
    )
    threads = {r: dict(t) for r, t in (status.get("threads") or {}).items()}
    last_seq = max([int(status.get("lastSeq") or 0), *(e.seq for e in outbox)])
    return Record(meta["name"], meta["resourceVersion"], incident, outbox, threads, dead, last_seq)


def edit(rec: Record, ids: set[str], **changes: Any) -> Record:
    """``rec`` with ``changes`` made to its outbox rows in ``ids``."""
    outbox = tuple(replace(e, **changes) if e.id in ids else e for e in rec.outbox)
    return replace(rec, outbox=outbox)
