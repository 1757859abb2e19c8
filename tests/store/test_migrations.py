"""Migrations: upgrade from nothing, a second run is a no-op, downgrade to base, models match."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from syncd.store.db import Database
from syncd.store.migrate import current_revision, downgrade, head_revision, is_at_head, upgrade
from syncd.store.models import Base


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_twice_then_downgrade_to_base(empty_db_url: str) -> None:
    """Fresh → head creates every table; again changes nothing; base removes them all."""
    db = Database(empty_db_url)
    try:
        assert await current_revision(db) is None
        first = await upgrade(db)
        assert first.before is None and first.after == head_revision() and first.changed
        async with db.engine.connect() as connection:
            assert set(Base.metadata.tables) <= await connection.run_sync(_tables)
        second = await upgrade(db)
        assert not second.changed
        assert await is_at_head(db)
        back = await downgrade(db, "base")
        assert back.after is None
        async with db.engine.connect() as connection:
            assert await connection.run_sync(_tables) <= {"alembic_version"}
        assert not await is_at_head(db)
    finally:
        await db.dispose()


async def test_migrations_produce_exactly_the_models(db: Database) -> None:
    """Autogenerate finds no difference between the migrated schema and the models."""
    async with db.engine.connect() as connection:
        assert await connection.run_sync(_diff) == []
