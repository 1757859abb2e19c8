"""Fixtures: a CRM database of each kind under test, and the CRM port behind both adapters.

`crm` runs a test against `SqlCrm` on every database in `DATABASES` and against `MemoryCrm`, so
the twin stays faithful; `crm.app` seeds and changes data as the CRM application would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from syncd.crm.memory import MemoryCrm
from syncd.crm.sql import SqlCrm
from syncd.sandbox.crm import crm_app
from tests.conftest import DATABASES, create_pg_database, drop_pg_database
from tests.crm.apps import Crm, MemoryApp, SqlApp


@pytest.fixture(params=DATABASES)
def crm_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind under test (PostgreSQL: a fresh one, dropped after)."""
    yield from _database(request.param, tmp_path)


def _database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}"
    elif kind == "postgresql":
        url = create_pg_database()  # fails the test, loudly, when PostgreSQL is unreachable
        yield url
        drop_pg_database(url)
    else:
        raise pytest.UsageError(f"unknown test database {kind!r}")


MEMORY = "memory"


@pytest.fixture(params=[*DATABASES, MEMORY])
def crm_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """`memory`, or the URL of an empty database of each kind under test."""
    if request.param == MEMORY:
        yield MEMORY
    else:
        yield from _database(request.param, tmp_path)


@pytest.fixture
async def crm(crm_target: str) -> AsyncIterator[Crm]:
    """The CRM port over each database under test (`SqlCrm`) and in memory (`MemoryCrm`)."""
    if crm_target == MEMORY:
        memory = MemoryCrm()
        yield Crm(MEMORY, memory, MemoryApp(memory))
        return
    sql = SqlCrm(crm_target)
    try:
        async with crm_app(sql.engine) as app:
            await app.create_tables()
        yield Crm(sql.engine.dialect.name, sql, SqlApp(sql))
    finally:
        await sql.dispose()
