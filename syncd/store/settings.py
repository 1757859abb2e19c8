"""Repository for versioned sync settings: the latest version per company, and history."""

from __future__ import annotations

from datetime import datetime

from syncd.domain.backends import Backend
from syncd.domain.ids import CompanyId
from syncd.domain.sync_settings import Practice, SyncSettings, parse_settings
from syncd.store.connections import ConnectionRepository
from syncd.store.models import SyncSettingsVersion
from syncd.store.scoping import TenantRepository


class SettingsRepository(TenantRepository[SyncSettingsVersion]):
    model = SyncSettingsVersion

    async def latest_row(self, *, company: CompanyId) -> SyncSettingsVersion | None:
        return await self.first(self.scoped(company).order_by(SyncSettingsVersion.version.desc()))

    async def current(self, *, company: CompanyId) -> SyncSettings:
        """The practice's settings (defaults until an admin saves some)."""
        row = await self.latest_row(company=company)
        return SyncSettings() if row is None else parse_settings(row.settings)

    async def practice(self, *, company: CompanyId) -> Practice:
        """The settings and the backend of the practice's connection (Projects until it has
        one)."""
        connection = await ConnectionRepository(self.session).get(company=company)
        return Practice(
            settings=await self.current(company=company),
            backend=Backend(connection.backend) if connection else Backend.PROJECTS,
        )

    async def history(self, *, company: CompanyId, limit: int = 50) -> list[SyncSettingsVersion]:
        return await self.all(
            self.scoped(company).order_by(SyncSettingsVersion.version.desc()).limit(limit)
        )

    async def save(
        self, *, company: CompanyId, settings: SyncSettings, by: str | None, now: datetime
    ) -> SyncSettingsVersion:
        latest = await self.latest_row(company=company)
        row = SyncSettingsVersion(
            company_id=company,
            version=(latest.version + 1) if latest else 1,
            settings=settings.to_json(),
            changed_by=by,
            changed_at=now,
        )
        self.session.add(row)
        await self.session.flush()
        return row
