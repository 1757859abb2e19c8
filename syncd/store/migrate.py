"""Alembic, driven from syncd: upgrade, downgrade, and "are we at head?" for /readyz.

Migrations run on a connection syncd opens (env.py picks it up from the Alembic config), so the
same code serves `syncd migrate`, tests and the readiness check, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection

from syncd.store.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def known_revision(revision: str) -> bool:
    """Whether this code's migrations include `revision` (a database migrated by a newer
    release has one they do not)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


@dataclass(frozen=True, slots=True)
class MigrationResult:
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(db: Database) -> str | None:
    async with db.engine.connect() as connection:
        return await connection.run_sync(_current)


async def upgrade(db: Database, revision: str = "head") -> MigrationResult:
    def run(connection: Connection) -> MigrationResult:
        before = _current(connection)
        command.upgrade(alembic_config(connection), revision)
        return MigrationResult(before, _current(connection))

    async with db.engine.begin() as connection:
        return await connection.run_sync(run)


async def downgrade(db: Database, revision: str) -> MigrationResult:
    def run(connection: Connection) -> MigrationResult:
        before = _current(connection)
        command.downgrade(alembic_config(connection), revision)
        return MigrationResult(before, _current(connection))

    async with db.engine.begin() as connection:
        return await connection.run_sync(run)


async def is_at_head(db: Database) -> bool:
    return await current_revision(db) == head_revision()
