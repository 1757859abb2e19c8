"""Repository for change-feed and poller cursors (one value per company and name)."""

from __future__ import annotations

from datetime import datetime

from syncd.domain.ids import CompanyId
from syncd.store.models import SyncCursor
from syncd.store.scoping import TenantRepository


class CursorRepository(TenantRepository[SyncCursor]):
    model = SyncCursor

    async def get(self, *, company: CompanyId, name: str) -> str | None:
        cursor = await self.first(self.scoped(company).where(SyncCursor.name == name))
        return None if cursor is None else cursor.value

    async def set(self, *, company: CompanyId, name: str, value: str, now: datetime) -> None:
        cursor = await self.first(self.scoped(company).where(SyncCursor.name == name))
        if cursor is None:
            self.session.add(SyncCursor(company_id=company, name=name, value=value, updated_at=now))
        else:
            cursor.value = value
            cursor.updated_at = now
        await self.session.flush()
