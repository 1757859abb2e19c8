"""Repository for the sync log: one row per Xero call (never a token)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from syncd.domain.ids import CompanyId
from syncd.store.models import SyncLogEntry
from syncd.store.scoping import TenantRepository


class SyncLogRepository(TenantRepository[SyncLogEntry]):
    model = SyncLogEntry

    async def add(self, *, company: CompanyId, entry: SyncLogEntry) -> None:
        if entry.company_id != company:
            raise ValueError("sync log entry belongs to another company")
        self.session.add(entry)
        await self.session.flush()

    async def for_task(self, *, company: CompanyId, task_id: int) -> list[SyncLogEntry]:
        return await self.all(
            self.scoped(company).where(SyncLogEntry.task_id == task_id).order_by(SyncLogEntry.id)
        )

    async def recent(self, *, company: CompanyId, limit: int = 100) -> list[SyncLogEntry]:
        return await self.all(self.scoped(company).order_by(SyncLogEntry.id.desc()).limit(limit))

    async def count_since(self, *, company: CompanyId, since: datetime) -> int:
        statement = select(func.count()).where(
            SyncLogEntry.company_id == company, SyncLogEntry.created_at >= since
        )
        return int((await self.session.execute(statement)).scalar_one())
