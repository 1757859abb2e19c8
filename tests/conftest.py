"""Shared fixtures: real databases (SQLite and PostgreSQL, both by default), settings, keys.

`SYNCD_TEST_DATABASES` narrows the databases (e.g. `sqlite`); PostgreSQL is otherwise required:
if it is unreachable the PostgreSQL tests fail with a message saying how to start it, they are
never skipped silently. `SYNCD_TEST_POSTGRES_URL` points at the cluster (a fresh database is
created in it for the session and dropped afterwards).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.engine import make_url

from syncd.settings import Secret, Settings, database_url
from syncd.store.db import Database
from syncd.store.migrate import upgrade
from syncd.store.models import Base

DATABASES = [
    d.strip()
    for d in os.environ.get("SYNCD_TEST_DATABASES", "sqlite,postgresql").split(",")
    if d.strip()
]
POSTGRES_URL = os.environ.get(
    "SYNCD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PG_HINT = (
    "PostgreSQL is not reachable at {url}: start it with "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
    "(or run with SYNCD_TEST_DATABASES=sqlite to test SQLite only)"
)


# The long scenario runs (more chaos cases, the multi-replica deployment, more convergence
# examples): CI sets this (.ci/run); `make test` alone stays within its 15-minute budget.
LONG = os.environ.get("SYNCD_TEST_LONG", "") not in ("", "0")


def pytest_report_header(config: pytest.Config) -> str:
    runs = (
        "all scenario runs" if LONG else "long scenario runs skipped (SYNCD_TEST_LONG=1 runs them)"
    )
    return f"syncd test databases: {', '.join(DATABASES)}; {runs}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LONG:
        return
    skip = pytest.mark.skip(reason="a long scenario run: SYNCD_TEST_LONG=1 runs it (CI does)")
    for item in items:
        if item.get_closest_marker("long") is not None:
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_admin(statement: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(POSTGRES_URL), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_pg_database() -> str:
    """A new, empty PostgreSQL database; returns its syncd URL."""
    name = f"syncd_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(PG_HINT.format(url=POSTGRES_URL) + f" [{exc}]", pytrace=False)
    return database_url(
        make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    )


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "syncd.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_migrated_url() -> Iterator[str]:
    url = create_pg_database()
    asyncio.run(_migrate(url))
    yield url
    drop_pg_database(url)


async def truncate_all(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a migrated, empty syncd database of each kind under test."""
    if request.param == "sqlite":
        path = tmp_path / "syncd.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_migrated_url")
        asyncio.run(_truncate_url(url))
        return url
    raise pytest.UsageError(f"unknown test database {request.param!r}")


async def _truncate_url(url: str) -> None:
    db = Database(url)
    try:
        await truncate_all(db)
    finally:
        await db.dispose()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture(params=DATABASES)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all (migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def fernet_key() -> str:
    return Fernet.generate_key().decode()


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "encryption_keys": (Secret(Fernet.generate_key().decode()),),
        "jwt_secret": Secret("test-jwt-secret-0123456789abcdef"),
        "xero_client_id": "test-client-id",
        "xero_client_secret": Secret("test-client-secret-value"),
        "xero_webhook_key": Secret("test-only-webhook-key-not-a-real-secret"),
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def settings(db_url: str, fernet_key: str) -> Settings:
    return make_settings(database_url=db_url, encryption_keys=(Secret(fernet_key),))


@pytest.fixture
async def sqlite_db(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database, for behaviour only SQLite has."""
    path = tmp_path / "sqlite-only.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    yield database
    await database.dispose()


@pytest.fixture
async def postgres_db(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """The migrated PostgreSQL database, for behaviour only PostgreSQL has."""
    if "postgresql" not in DATABASES:
        pytest.skip("PostgreSQL excluded by SYNCD_TEST_DATABASES")
    url: str = request.getfixturevalue("pg_migrated_url")
    database = Database(url)
    await truncate_all(database)
    yield database
    await database.dispose()


@pytest.fixture
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """syncd's database and the CRM's, both empty: two SQLite files, or two new PostgreSQL
    databases (dropped afterwards). Parametrised indirectly with "sqlite" or "postgresql" (chaos
    and multi-replica tests)."""
    if request.param == "sqlite":
        yield (
            database_url(f"sqlite:///{tmp_path / 'syncd.db'}"),
            database_url(f"sqlite:///{tmp_path / 'crm.db'}"),
        )
        return
    urls = (create_pg_database(), create_pg_database())
    try:
        yield urls
    finally:
        for url in urls:
            drop_pg_database(url)
