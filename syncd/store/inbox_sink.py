"""The inbox's write path, straight to the database driver.

Webhook acknowledgement waits on this write, so it is the one place syncd steps around the
SQLAlchemy async engine (whose path costs ~2 ms a batch in thread hops against ~0.4 ms here):
on SQLite one multi-row `INSERT` per batch on a dedicated sqlite3 connection (see SqliteSink);
on PostgreSQL one `INSERT … SELECT FROM json_to_recordset(…)` statement per batch, a single
round trip that commits by itself (see PostgresSink). Both keep the table's duplicate rule
(`ON CONFLICT (tenant_id, dedupe_key) DO NOTHING`). The schema is the migrations'; the column
list below is checked against the model by a test. Measured in docs/webhook-performance.md.
"""

from __future__ import annotations

import asyncio
import json
import operator
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import make_url

from syncd.clock import ensure_aware
from syncd.store.db import SQLITE_BUSY_TIMEOUT_MS

# (column, kind) in insert order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("tenant_id", "text"),
    ("source", "text"),
    ("dedupe_key", "text"),
    ("category", "text"),
    ("event_type", "text"),
    ("resource_id", "text"),
    ("event_date", "time"),
    ("payload", "json"),
    ("raw_body", "text"),
    ("state", "text"),
    ("attempts", "int"),
    ("result", "text"),
    ("received_at", "time"),
    ("processed_at", "time"),
)
_NAMES = ", ".join(column for column, _ in COLUMNS)
_CONFLICT = "ON CONFLICT (tenant_id, dedupe_key) DO NOTHING"
_KEYS = tuple(column for column, _ in COLUMNS)
_ALL_KEYS = operator.itemgetter(*_KEYS)
_TIMES = tuple(i for i, (_, kind) in enumerate(COLUMNS) if kind == "time")
_JSONS = tuple(i for i, (_, kind) in enumerate(COLUMNS) if kind == "json")


class InboxSink(Protocol):
    concurrency: int  # batches it can commit at once

    async def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Commit `rows` (duplicates dropped) or raise."""
        ...

    async def close(self) -> None: ...


def _sqlite_values(row: dict[str, Any]) -> list[Any]:
    """The row's values in column order, times and JSON as text."""
    try:
        values = list(_ALL_KEYS(row))  # event_row/quarantine_row give every column
    except KeyError:
        values = [row.get(key) for key in _KEYS]
    for i in _TIMES:
        if values[i] is not None:
            values[i] = _sqlite_time(values[i])
    for i in _JSONS:
        if values[i] is not None:
            values[i] = json.dumps(values[i], separators=(",", ":"))
    return values


def _sqlite_time(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite DATETIME uses (what UTCDateTime reads back)."""
    if value.tzinfo is not UTC:
        value = ensure_aware(value)  # refuses naive times; other zones become UTC
    return value.isoformat(" ", "microseconds")[:26]  # without "+00:00"


class SqliteSink:
    """One sqlite3 connection for inbox writes.

    A batch is one multi-row `INSERT … ON CONFLICT DO NOTHING`, a transaction by itself.
    Uncontended (the usual case) it runs right on the event loop: handing it to a thread and
    back cost more than it saved, measured (docs/webhook-performance.md). The write lock is
    asked for without waiting; if another connection holds it (a worker's transaction, which
    may itself be waiting for the loop), the batch goes to a thread that waits its turn — the
    loop never blocks on a lock. Checkpoints (which fsync) never run inside these commits: a
    thread checkpoints the WAL every `checkpoint_seconds`.
    """

    concurrency = 1  # one writer at a time in SQLite

    def __init__(self, path: str, *, uri: bool = False, checkpoint_seconds: float = 1.0) -> None:
        self.path = path
        self.uri = uri  # `path` is a `file:` URI with parameters (say, mode=ro)
        self.checkpoint_seconds = checkpoint_seconds
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="inbox-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoint: asyncio.Future[None] | None = None
        self._last_checkpoint = time.monotonic()
        self._sql: dict[int, str] = {}

    def _statement(self, rows: int) -> str:
        sql = self._sql.get(rows)
        if sql is None:
            marks = "(" + ", ".join("?" for _ in COLUMNS) + ")"
            values = ", ".join(marks for _ in range(rows))
            sql = f"INSERT INTO inbox_events ({_NAMES}) VALUES {values} {_CONFLICT}"  # noqa: S608
            self._sql[rows] = sql
        return sql

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(
                self.path,
                uri=self.uri,
                isolation_level=None,
                check_same_thread=False,
                timeout=0,  # the loop never waits for the write lock
                cached_statements=512,  # one statement per batch size seen
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA wal_autocheckpoint=0")
            self._connection = connection
        return self._connection

    def _try_insert(self, sql: str, params: list[Any]) -> bool:
        """False when another connection holds the write lock (nothing written)."""
        try:
            self._open().execute(sql, params)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                return False
            raise
        return True

    def _wait_and_insert(self, sql: str, params: list[Any]) -> None:
        connection = self._open()
        connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        try:
            connection.execute(sql, params)
        finally:
            connection.execute("PRAGMA busy_timeout=0")

    async def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        params = [value for row in rows for value in _sqlite_values(row)]
        sql = self._statement(len(rows))
        if not self._try_insert(sql, params):
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self._wait_and_insert, sql, params
            )
        self._maybe_checkpoint()

    def _maybe_checkpoint(self) -> None:
        due = time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds
        if due and (self._checkpoint is None or self._checkpoint.done()):
            self._last_checkpoint = time.monotonic()
            self._checkpoint = asyncio.get_running_loop().run_in_executor(
                self._executor, self._run_checkpoint
            )

    def _run_checkpoint(self) -> None:
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                self.path,
                uri=self.uri,
                isolation_level=None,
                check_same_thread=False,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            )
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _close(self) -> None:
        for connection in (self._connection, self._checkpointer):
            if connection is not None:
                connection.close()
        self._connection = self._checkpointer = None

    async def close(self) -> None:
        if self._checkpoint is not None:
            await self._checkpoint
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)


# Ways a connection dies under us: network, server shutdown or pg_terminate_backend.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    # A connection killed between statements can surface as a confused protocol state.
    asyncpg.exceptions.InternalClientError,
    OSError,
)


class PostgresSink:
    """Up to `connections` asyncpg connections, one batch on each at a time, one statement per
    batch. The batch goes as one JSON parameter that PostgreSQL unpacks (`json_to_recordset`):
    fourteen array parameters cost asyncpg ~6 µs a row of type checks on the event loop, the
    JSON text ~1 µs. A commit waits for PostgreSQL's WAL flush; with two batches in flight one
    fills while the other flushes."""

    def __init__(self, dsn: str, *, connections: int = 2) -> None:
        self.dsn = dsn
        self.concurrency = connections
        # Idle connections, last used on top; None is a slot not connected yet (or dropped).
        self._idle: list[asyncpg.Connection | None] = [None] * connections
        self._slots = asyncio.Semaphore(connections)
        record = ", ".join(f"{column} {_PG_TYPES[kind]}" for column, kind in COLUMNS)
        self._sql = (
            f"INSERT INTO inbox_events ({_NAMES}) "  # noqa: S608 - constants only
            f"SELECT {_NAMES} FROM json_to_recordset($1::json) AS t({record}) {_CONFLICT}"
        )

    async def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        batch = json.dumps(rows, default=_pg_json, separators=(",", ":"))
        async with self._slots:
            connection = self._idle.pop()
            try:
                for attempt in (1, 2):
                    if connection is None or connection.is_closed():
                        connection = await asyncpg.connect(self.dsn)
                    try:
                        await connection.execute(self._sql, batch)
                        return
                    except _CONNECTION_LOST:
                        # A dropped connection: reconnect once (the insert is idempotent).
                        connection.terminate()
                        connection = None
                        if attempt == 2:
                            raise
            finally:
                self._idle.append(connection)

    async def close(self) -> None:
        idle, self._idle = self._idle, [None] * self.concurrency
        for connection in idle:
            if connection is None:
                continue
            try:
                await connection.close(timeout=5)
            except _CONNECTION_LOST:
                connection.terminate()


_PG_TYPES = {"text": "text", "time": "timestamptz", "json": "json", "int": "int"}


def _pg_json(value: object) -> str:
    """Times in the batch's JSON: ISO text in UTC (naive times refused, as on SQLite)."""
    if isinstance(value, datetime):
        return ensure_aware(value).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def sink_for(url: str) -> InboxSink:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("the inbox needs a file-backed SQLite database")
        # The file exactly as SQLAlchemy's engine opens it: a `file:…?uri=true` URL keeps its
        # parameters (mode=ro), which a plain path would drop, writing where the engine cannot.
        (target,), options = parsed.get_dialect()().create_connect_args(parsed)
        return SqliteSink(str(target), uri=bool(options.get("uri", False)))
    return PostgresSink(parsed.set(drivername="postgresql").render_as_string(hide_password=False))


def model_columns_missing(model_columns: set[str]) -> set[str]:
    """Columns the sink writes that the model does not have (a test keeps this empty)."""
    return {column for column, _ in COLUMNS} - model_columns
