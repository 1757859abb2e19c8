"""Alembic environment: runs on the connection syncd hands over (see syncd.store.migrate).

Run standalone (`alembic -x url=...`) it opens its own async engine on that URL.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from syncd.store.db import create_engine
from syncd.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database with: alembic -x url=sqlite+aiosqlite:///syncd.db ...")
    asyncio.run(_run_standalone(url))
