"""The default incident store: one SQLite file (WAL).

Writes are committed before the method returns, so what was saved survives ``kill -9`` (in
WAL mode a killed process loses nothing committed; ``synchronous=NORMAL`` only risks the
last commits on a power cut).

Calls run on the event loop's thread, one at a time (the loop is single-threaded): in WAL
mode with ``synchronous=NORMAL`` a commit appends to the log and does not wait for the
disk, so a call takes tens of microseconds, where handing it to a worker thread cost about
a millisecond on a busy core (the interpreter lock going back and forth). What does wait for
the disk, copying the log back into the database (a checkpoint, with its ``fsync``), is
taken off the loop: automatic checkpoints are off, and every ``CHECKPOINT_EVERY`` calls a
passive checkpoint runs on a connection of its own in the store's worker thread.
``SqliteStore(path, inline=False)`` runs every call in that thread instead.

This store is its file's only writer, so what is asked for every event is kept in memory
as well, read once at open and updated by each write: the open incidents by key, each
key's highest incident number, and which receivers have threads at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from driftwatch.incidents.model import DeadLetter, Incident, IncidentState, Pending, iso_time
from driftwatch.incidents.store import Outgoing
from driftwatch.policy import PolicyKey

__all__ = ["SqliteStore", "default_state_path"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    cluster TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    severity TEXT, status TEXT NOT NULL, fingerprint TEXT NOT NULL,
    opened_at TEXT NOT NULL, updated_at TEXT NOT NULL, resolved_at TEXT,
    last_notified_at TEXT,
    body TEXT NOT NULL,
    labels TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_per_key
    ON incidents (cluster, namespace, name) WHERE state != 'resolved';
CREATE INDEX IF NOT EXISTS by_update ON incidents (updated_at);
CREATE INDEX IF NOT EXISTS by_key ON incidents (cluster, namespace, name, number);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    receiver TEXT NOT NULL, incident_id TEXT NOT NULL, kind TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    grouped INTEGER NOT NULL DEFAULT 0,
    batch TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_at);
CREATE INDEX IF NOT EXISTS outbox_first ON outbox (receiver, incident_id, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    receiver TEXT NOT NULL, incident_id TEXT NOT NULL, kind TEXT NOT NULL,
    body TEXT NOT NULL, reason TEXT NOT NULL, attempts INTEGER NOT NULL,
    failed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS threads (
    receiver TEXT NOT NULL, incident_id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (receiver, incident_id)
);
CREATE TABLE IF NOT EXISTS disabled_receivers (
    receiver TEXT PRIMARY KEY, reason TEXT NOT NULL, at TEXT NOT NULL
);
"""

CHECKPOINT_EVERY = 256
"""Store calls between two checkpoints (each a few KiB of log at most)."""

_ADDED_COLUMNS = {"grouped": "INTEGER NOT NULL DEFAULT 0", "batch": "TEXT"}
"""Outbox columns newer than the first schema: added to older files when opened."""


def _dumps(value: object) -> str:
    """JSON text of a body, labels or thread (orjson: several times faster than ``json``,
    and read back by either)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


_loads = orjson.loads


def default_state_path() -> Path:
    """``$XDG_STATE_HOME/driftwatch/state.db`` (``~/.local/state/driftwatch/state.db``)."""
    import os  # noqa: PLC0415 - only for the default path

    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "driftwatch" / "state.db"


class SqliteStore:
    """:class:`~driftwatch.incidents.store.IncidentStore` on SQLite."""

    def __init__(self, path: Path | str, *, inline: bool = True) -> None:
        self.path = Path(path)
        self.inline = inline
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="driftwatch-state")
        self._db: sqlite3.Connection | None = None
        self._disabled: dict[str, str] = {}
        self._calls = 0
        self._checkpoint: asyncio.Future[None] | None = None
        self._open_by_key: dict[PolicyKey, Incident] = {}
        """Every open incident by key, read once at open and kept up to date by
        :meth:`save` (this store is the file's only writer): asked for every event."""
        self._numbers: dict[PolicyKey, int] = {}
        """Every key's highest incident number (read at open, kept up to date by
        :meth:`save`)."""
        self._threaded: set[str] = set()
        """Receivers with a thread kept for some incident (the others have none to read)."""

    async def open(self) -> SqliteStore:
        """Create the file (and its directory) if needed and the tables; errors name the
        file."""
        await self._run(self._open)
        return self

    def _open(self) -> None:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            if self.inline and str(self.path) != ":memory:":
                db.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint_now
            db.executescript(_SCHEMA)
            _add_columns(db)
        except sqlite3.Error as e:
            raise OSError(f"{self.path}: cannot open the state database: {e}") from e
        db.row_factory = sqlite3.Row
        self._db = db
        self._disabled = self._read_disabled()
        self._open_by_key = {i.key: i for i in self._select("WHERE state != 'resolved'", ())}
        self._numbers = {
            PolicyKey(r[0], r[1], r[2]): int(r[3])
            for r in db.execute(
                "SELECT cluster, namespace, name, MAX(number) FROM incidents"
                " GROUP BY cluster, namespace, name"
            )
        }
        self._threaded = {str(r[0]) for r in db.execute("SELECT DISTINCT receiver FROM threads")}

    async def reload(self) -> None:
        """Nothing to do: this process is the file's only writer."""

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        if not self.inline or self._db is None:  # opening may create files: off the loop
            return await loop.run_in_executor(self._executor, fn, *args)
        result = fn(*args)
        self._calls += 1
        if self._calls % CHECKPOINT_EVERY == 0:
            self._checkpoint_soon(loop)
        return result

    def _checkpoint_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._checkpoint is None or self._checkpoint.done():
            self._checkpoint = loop.run_in_executor(self._executor, self._checkpoint_now, False)

    def _checkpoint_now(self, truncate: bool) -> None:
        """Copy the log into the database, on a connection of this thread's own (never
        blocks the loop's writes: a passive checkpoint takes no write lock)."""
        if str(self.path) == ":memory:":
            return
        mode = "TRUNCATE" if truncate else "PASSIVE"
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=5.0)) as db:
                db.execute(f"PRAGMA wal_checkpoint({mode})")
        except sqlite3.Error:
            pass  # the next checkpoint tries again; nothing is lost meanwhile

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the state database is not open (call open() first)")
        return self._db

    # -- incidents --------------------------------------------------------------------------

    async def open_incident(self, key: PolicyKey) -> Incident | None:
        if self._db is not None:
            return self._open_by_key.get(key)
        return await self._run(self._open_incident, key)

    def _open_incident(self, key: PolicyKey) -> Incident | None:
        row = self.db.execute(
            "SELECT * FROM incidents WHERE cluster=? AND namespace=? AND name=?"
            " AND state != 'resolved'",
            (key.cluster, key.namespace, key.name),
        ).fetchone()
        return None if row is None else _incident(row)

    async def open_incidents(self) -> list[Incident]:
        return await self._run(self._select, "WHERE state != 'resolved' ORDER BY opened_at", ())

    async def get(self, incident_id: str) -> Incident | None:
        found = await self._run(self._select, "WHERE id=?", (incident_id,))
        return found[0] if found else None

    async def history(self, limit: int = 100) -> list[Incident]:
        return await self._run(self._select, "ORDER BY updated_at DESC LIMIT ?", (limit,))

    def _select(self, where: str, args: tuple[Any, ...]) -> list[Incident]:
        return [_incident(r) for r in self.db.execute(f"SELECT * FROM incidents {where}", args)]  # noqa: S608 - fixed clauses, values bound

    async def next_number(self, key: PolicyKey) -> int:
        if self._db is not None:
            return self._numbers.get(key, 0) + 1
        return await self._run(self._next_number, key)

    def _next_number(self, key: PolicyKey) -> int:
        row = self.db.execute(
            "SELECT MAX(number) FROM incidents WHERE cluster=? AND namespace=? AND name=?",
            (key.cluster, key.namespace, key.name),
        ).fetchone()
        return int(row[0] or 0) + 1

    async def save(self, incident: Incident, outgoing: Sequence[Outgoing], now: float) -> None:
        await self._run(self._save, incident, outgoing, now)

    def _save(self, incident: Incident, outgoing: Sequence[Outgoing], now: float) -> None:
        db = self.db
        body = _dumps(incident.body)
        # The outgoing bodies are mostly one dict, equal to the incident's: encoded once.
        encoded = {id(incident.body): body}
        rows = []
        for o in outgoing:
            text = encoded.get(id(o.body))
            if text is None:
                text = encoded[id(o.body)] = _dumps(o.body)
            rows.append(
                (o.id, o.receiver, incident.id, o.kind, text, now + o.delay, now, int(o.grouped))
            )
        db.execute("BEGIN IMMEDIATE")
        try:
            k = incident.key
            db.execute(
                "INSERT OR REPLACE INTO incidents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    incident.id, k.cluster, k.namespace, k.name, incident.number,
                    str(incident.state), incident.severity, incident.status,
                    incident.fingerprint, incident.opened_at, incident.updated_at,
                    incident.resolved_at, incident.last_notified_at,
                    body, _dumps(incident.labels),
                ),
            )  # fmt: skip
            db.executemany(
                "INSERT INTO outbox (id, receiver, incident_id, kind, body, next_at,"
                " created_at, grouped) VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        key = incident.key
        if incident.state == IncidentState.RESOLVED:
            if (kept := self._open_by_key.get(key)) is not None and kept.id == incident.id:
                del self._open_by_key[key]
        else:
            self._open_by_key[key] = incident
        if incident.number > self._numbers.get(key, 0):
            self._numbers[key] = incident.number

    # -- the outbox -------------------------------------------------------------------------

    async def due(self, receiver: str, now: float, limit: int = 100) -> list[Pending]:
        return await self._run(self._due, receiver, now, limit)

    def _due(self, receiver: str, now: float, limit: int) -> list[Pending]:
        rows = self.db.execute(
            # The oldest pending notification of each of the receiver's incidents, if due.
            "SELECT o.* FROM outbox o JOIN ("
            "  SELECT MIN(seq) AS seq FROM outbox WHERE receiver=? GROUP BY incident_id"
            ") first ON o.seq = first.seq WHERE o.next_at <= ? AND o.grouped = 0"
            " ORDER BY o.seq LIMIT ?",
            (receiver, now, limit),
        ).fetchall()
        return [_pending(r) for r in rows]

    async def batch(self, receiver: str, now: float, limit: int = 50) -> list[Pending]:
        return await self._run(self._batch, receiver, now, limit)

    def _batch(self, receiver: str, now: float, limit: int) -> list[Pending]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT batch FROM outbox WHERE receiver=? AND batch IS NOT NULL"
                " AND next_at <= ? ORDER BY seq LIMIT 1",
                (receiver, now),
            ).fetchone()
            if row is not None:
                batch = str(row[0])
            elif db.execute(
                "SELECT 1 FROM outbox WHERE receiver=? AND grouped=1 AND batch IS NULL"
                " AND next_at <= ? LIMIT 1",
                (receiver, now),
            ).fetchone():
                # The oldest waited its group_wait: it goes with everything grouped since.
                batch = str(uuid.uuid4())
                db.execute(
                    "UPDATE outbox SET batch=?, next_at=? WHERE seq IN (SELECT seq FROM outbox"
                    " WHERE receiver=? AND grouped=1 AND batch IS NULL ORDER BY seq LIMIT ?)",
                    (batch, now, receiver, limit),
                )
            else:
                db.execute("COMMIT")
                return []
            rows = db.execute("SELECT * FROM outbox WHERE batch=? ORDER BY seq", (batch,))
            found = [_pending(r) for r in rows]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return found

    async def next_due(self, receiver: str) -> float | None:
        return await self._run(self._next_due, receiver)

    def _next_due(self, receiver: str) -> float | None:
        row = self.db.execute(
            "SELECT MIN(next_at) FROM outbox WHERE receiver=?", (receiver,)
        ).fetchone()
        return None if row[0] is None else float(row[0])

    async def delivered(self, pending: Pending, thread: Mapping[str, str] | None) -> None:
        await self._run(self._delivered, pending, thread)

    def _delivered(self, pending: Pending, thread: Mapping[str, str] | None) -> None:
        db = self.db
        if thread is None:  # one statement: a transaction of its own
            db.execute("DELETE FROM outbox WHERE id=?", (pending.id,))
            return
        self._threaded.add(pending.receiver)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM outbox WHERE id=?", (pending.id,))
            if thread is not None:
                db.execute(
                    "INSERT OR REPLACE INTO threads VALUES (?,?,?)",
                    (pending.receiver, pending.incident_id, _dumps(dict(thread))),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def delivered_batch(
        self, pendings: Sequence[Pending], threads: Mapping[str, Mapping[str, str]]
    ) -> None:
        await self._run(self._delivered_batch, pendings, threads)

    def _delivered_batch(
        self, pendings: Sequence[Pending], threads: Mapping[str, Mapping[str, str]]
    ) -> None:
        db = self.db
        self._threaded.update(p.receiver for p in pendings if p.incident_id in threads)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("DELETE FROM outbox WHERE id=?", [(p.id,) for p in pendings])
            db.executemany(
                "INSERT OR REPLACE INTO threads VALUES (?,?,?)",
                [
                    (p.receiver, p.incident_id, _dumps(dict(threads[p.incident_id])))
                    for p in pendings
                    if p.incident_id in threads
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def retry(self, pending: Pending, at: float, error: str) -> None:
        column, value = ("batch", pending.batch) if pending.batch else ("id", pending.id)
        await self._run(
            self._execute,
            f"UPDATE outbox SET attempts=attempts+1, next_at=?, last_error=? WHERE {column}=?",  # noqa: S608 - a fixed column name
            (at, error, value),
        )

    def _execute(self, sql: str, args: tuple[Any, ...]) -> None:
        self.db.execute(sql, args)

    async def due_now(self, now: float) -> int:
        return await self._run(self._due_now, now)

    def _due_now(self, now: float) -> int:
        return self.db.execute("UPDATE outbox SET next_at=? WHERE next_at > ?", (now, now)).rowcount

    async def dead_letter(self, pending: Pending, reason: str, now: float) -> None:
        await self._run(self._dead_letter, [pending], reason, now)

    async def dead_letter_batch(self, pendings: Sequence[Pending], reason: str, now: float) -> None:
        await self._run(self._dead_letter, pendings, reason, now)

    def _dead_letter(self, pendings: Sequence[Pending], reason: str, now: float) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO dead_letters VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        p.id,
                        p.receiver,
                        p.incident_id,
                        p.kind,
                        _dumps(p.body),
                        reason,
                        p.attempts + 1,
                        iso_time(now),
                    )
                    for p in pendings
                ],
            )
            db.executemany("DELETE FROM outbox WHERE id=?", [(p.id,) for p in pendings])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def thread(self, receiver: str, incident_id: str) -> dict[str, str]:
        if receiver not in self._threaded and self._db is not None:
            return {}  # asked before every delivery; most receivers keep no threads
        return await self._run(self._thread, receiver, incident_id)

    def _thread(self, receiver: str, incident_id: str) -> dict[str, str]:
        row = self.db.execute(
            "SELECT data FROM threads WHERE receiver=? AND incident_id=?", (receiver, incident_id)
        ).fetchone()
        return {} if row is None else dict(_loads(row[0]))

    async def pending_count(self) -> int:
        return await self._run(self._count, "outbox")

    def _count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608 - a fixed table name

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return await self._run(self._dead_letters, limit)

    def _dead_letters(self, limit: int) -> list[DeadLetter]:
        rows = self.db.execute(
            "SELECT * FROM dead_letters ORDER BY failed_at DESC LIMIT ?", (limit,)
        ).fetchall()
        return [
            DeadLetter(
                r["id"], r["receiver"], r["incident_id"], r["kind"], r["reason"],
                r["attempts"], r["failed_at"],
            )
            for r in rows
        ]  # fmt: skip

    async def disable_receiver(self, receiver: str, reason: str, now: float) -> None:
        await self._run(
            self._execute,
            "INSERT OR REPLACE INTO disabled_receivers VALUES (?,?,?)",
            (receiver, reason, iso_time(now)),
        )
        self._disabled[receiver] = reason

    async def disabled_receivers(self) -> dict[str, str]:
        # Asked for every incident change: kept in memory (this store is the only writer),
        # read from the file once, at open.
        return dict(self._disabled)

    def _read_disabled(self) -> dict[str, str]:
        return {
            r[0]: r[1] for r in self.db.execute("SELECT receiver, reason FROM disabled_receivers")
        }

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, db.close)
            if self.inline:
                await loop.run_in_executor(self._executor, self._checkpoint_now, True)
        self._executor.shutdown(wait=False)


def _add_columns(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    for column, declaration in _ADDED_COLUMNS.items():
        if column not in have:
            db.execute(f"ALTER TABLE outbox ADD COLUMN {column} {declaration}")


def _pending(r: sqlite3.Row) -> Pending:
    return Pending(
        r["id"], r["receiver"], r["incident_id"], r["kind"], _loads(r["body"]), r["seq"],
        r["attempts"], r["next_at"], r["last_error"], r["batch"],
    )  # fmt: skip


def _incident(r: sqlite3.Row) -> Incident:
    return Incident(
        id=r["id"],
        key=PolicyKey(r["cluster"], r["namespace"], r["name"]),
        number=r["number"],
        state=IncidentState(r["state"]),
        severity=r["severity"],
        status=r["status"],
        fingerprint=r["fingerprint"],
        opened_at=r["opened_at"],
        updated_at=r["updated_at"],
        resolved_at=r["resolved_at"],
        last_notified_at=r["last_notified_at"],
        body=_loads(r["body"]),
        labels=_loads(r["labels"]),
    )
