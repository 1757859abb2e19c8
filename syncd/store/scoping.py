"""The one tenant filter every repository builds its queries from.

A repository holds a session and a model with a `company_id` column; `scoped(company)` is the
only way it starts a query, so a read for company A cannot see company B's rows. Paths that do
cross practices (the worker listing connections, key rotation) say `across_companies` in their
names and live beside the scoped ones, where a reviewer sees them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from syncd.domain.ids import CompanyId

M = TypeVar("M")


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
