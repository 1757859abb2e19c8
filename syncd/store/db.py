"""The async engine and the unit of work (the caller owns the transaction, never a repository).

SQLite is opened in WAL mode and every transaction starts with BEGIN IMMEDIATE: a writer takes
the lock up front instead of failing when it upgrades a read lock, and waits up to the busy
timeout for another process. PostgreSQL needs nothing special.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for a syncd-normalised URL (see settings.database_url)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        # Above a worker's 20 tasks in flight: a task holding an advisory lock's connection
        # (see Database.exclusive) must still find one for its transactions. Connections past
        # the first five are opened on demand and closed when returned.
        kwargs.setdefault("max_overflow", 25)
        return create_async_engine(url, **kwargs)

    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        is_memory = parsed.database in (None, "", ":memory:")
        if not is_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _sqlite_on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """syncd's own database: one engine, sessions, and the unit of work."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block ends, rolls back if it raises."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """Hold `key` against every other process for the block (a PostgreSQL session advisory
        lock on a connection of its own: a killed holder's lock dies with its connection). On
        SQLite, syncd runs as one process, and an in-process lock is the caller's part."""
        if self.dialect != "postgresql":
            yield
            return
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
        lock_id = int.from_bytes(digest, "big", signed=True)
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            await connection.commit()
            try:
                yield
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
                await connection.commit()

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
