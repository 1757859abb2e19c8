"""The one tenant filter every repository builds its queries from.

A repository holds a session and a model with a `company_id` column; `scoped(company)` is the
only way it starts a query, so a read for company A cannot see company B's rows. Paths that do
cross practices (the worker listing connections, key rotation) say `across_companies` in their
names and live beside the scoped ones, where a reviewer sees them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from syncd.domain.ids import CompanyId

M = TypeVar("M")


def dialect_insert(session: AsyncSession) -> Any:
    """The INSERT construct with ON CONFLICT support for the session's database."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


class TenantRepository(Generic[M]):
    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def scoped(self, company: CompanyId) -> Select[M]:
        if not company:
            raise ValueError("a company is required for every tenant query")
        return select(self.model).where(self.model.company_id == company)

    async def first(self, statement: Select[M]) -> M | None:
        return (await self.session.execute(statement.limit(1))).scalars().first()

    async def all(self, statement: Select[M]) -> list[M]:
        return list((await self.session.execute(statement)).scalars().all())

    async def upsert(
        self, *, company: CompanyId, key: dict[str, Any], values: dict[str, Any], now: datetime
    ) -> M:
        """Insert the company's row for `key` or update it, in one statement: two writers
        racing to create the same row both succeed (the later values win) instead of one
        failing on the unique constraint."""
        if not company:
            raise ValueError("a company is required for every tenant query")
        insert = dialect_insert(self.session)
        statement = (
            insert(self.model)
            .values(company_id=company, **key, **values, created_at=now, updated_at=now)
            .on_conflict_do_update(
                index_elements=["company_id", *key], set_={**values, "updated_at": now}
            )
        )
        await self.session.execute(statement)
        row = await self.first(
            self.scoped(company)
            .where(*(getattr(self.model, column) == value for column, value in key.items()))
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row
