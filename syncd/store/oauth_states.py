"""Repository for pending OAuth states (single use, short-lived, bound to company and user)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from syncd.domain.ids import CompanyId
from syncd.store.models import OAuthState
from syncd.store.scoping import TenantRepository


class OAuthStateRepository(TenantRepository[OAuthState]):
    model = OAuthState

    async def add(self, *, company: CompanyId, state: OAuthState) -> None:
        if state.company_id != company:
            raise ValueError("state belongs to another company")
        self.session.add(state)
        await self.session.flush()

    async def get(self, *, company: CompanyId, state_id: str) -> OAuthState | None:
        return await self.first(self.scoped(company).where(OAuthState.id == state_id))

    async def consume(self, *, company: CompanyId, state_id: str, now: datetime) -> bool:
        """Mark the state used; False when it was already used or has expired (single use)."""
        result = await self.session.execute(
            update(OAuthState)
            .where(
                OAuthState.company_id == company,
                OAuthState.id == state_id,
                OAuthState.used_at.is_(None),
                OAuthState.expires_at > now,
            )
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def purge_expired_across_companies(self, *, now: datetime) -> int:
        """Housekeeping: drop states past their expiry, whatever the company."""
        result = await self.session.execute(delete(OAuthState).where(OAuthState.expires_at <= now))
        return int(getattr(result, "rowcount", 0) or 0)

    async def all_across_companies(self) -> list[OAuthState]:
        """Every pending state (key rotation re-encrypts their PKCE verifiers)."""
        statement = select(OAuthState).order_by(OAuthState.id).with_for_update()
        return list((await self.session.execute(statement)).scalars().all())
