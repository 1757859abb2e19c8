"""Repositories for Xero connections and the OAuth grants they use.

A grant has no company of its own (one consent may cover several tenants); it is reached through
the company's connection, so a grant is never read without naming the company.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from syncd.domain.ids import CompanyId
from syncd.store.models import OAuthGrant, XeroConnection
from syncd.store.scoping import TenantRepository


class ConnectionRepository(TenantRepository[XeroConnection]):
    model = XeroConnection

    async def get(self, *, company: CompanyId) -> XeroConnection | None:
        return await self.first(self.scoped(company))

    async def get_active(self, *, company: CompanyId) -> XeroConnection | None:
        return await self.first(self.scoped(company).where(XeroConnection.active.is_(True)))

    async def save(self, *, company: CompanyId, connection: XeroConnection) -> XeroConnection:
        if connection.company_id != company:
            raise ValueError("connection belongs to another company")
        self.session.add(connection)
        await self.session.flush()
        return connection

    async def owner_of_tenant_across_companies(self, tenant_id: str) -> XeroConnection | None:
        """The active connection holding `tenant_id`, whatever its company (webhook routing,
        refusing a tenant already connected elsewhere)."""
        statement = select(XeroConnection).where(
            XeroConnection.tenant_id == tenant_id, XeroConnection.active.is_(True)
        )
        return (await self.session.execute(statement)).scalars().first()

    async def uses_xero_connection_across_companies(
        self, connection_id: str, *, besides: CompanyId | None = None
    ) -> bool:
        """Whether an active practice (other than `besides`) links through this Xero
        connection id (removing it at Xero would cut that practice off)."""
        statement = select(XeroConnection.id).where(
            XeroConnection.xero_connection_id == connection_id, XeroConnection.active.is_(True)
        )
        if besides is not None:
            statement = statement.where(XeroConnection.company_id != besides)
        return (await self.session.execute(statement.limit(1))).first() is not None

    async def list_active_across_companies(self) -> list[XeroConnection]:
        statement = (
            select(XeroConnection)
            .where(XeroConnection.active.is_(True))
            .order_by(XeroConnection.company_id)
        )
        return list((await self.session.execute(statement)).scalars().all())

    async def list_across_companies(self) -> list[XeroConnection]:
        """Every connection, for the super admin's overview."""
        statement = select(XeroConnection).order_by(XeroConnection.company_id)
        return list((await self.session.execute(statement)).scalars().all())

    async def mark_needs_reconnect(self, *, company: CompanyId, reason: str, now: datetime) -> None:
        await self.session.execute(
            update(XeroConnection)
            .where(XeroConnection.company_id == company)
            .values(needs_reconnect=True, reconnect_reason=reason, updated_at=now)
        )


class GrantRepository:
    """OAuth grants, always reached through a company's connection."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_company(self, *, company: CompanyId, lock: bool = False) -> OAuthGrant | None:
        """The grant of the company's connection; `lock` takes a row lock on PostgreSQL."""
        statement = (
            select(OAuthGrant)
            .join(XeroConnection, XeroConnection.grant_id == OAuthGrant.id)
            .where(XeroConnection.company_id == company)
        )
        if lock:
            statement = statement.with_for_update(of=OAuthGrant)
        return (await self.session.execute(statement)).scalars().first()

    async def add(self, grant: OAuthGrant) -> OAuthGrant:
        self.session.add(grant)
        await self.session.flush()
        return grant

    async def get_unlinked(self, grant_id: str) -> OAuthGrant | None:
        """A grant no connection uses yet (between consent and the admin's tenant choice).

        Safe without a company: such a grant carries no tenant data until it is linked.
        """
        linked = select(XeroConnection.id).where(XeroConnection.grant_id == grant_id)
        statement = select(OAuthGrant).where(OAuthGrant.id == grant_id, ~linked.exists())
        return (await self.session.execute(statement)).scalars().first()

    async def all_across_companies(self) -> list[OAuthGrant]:
        """Every grant (key rotation re-encrypts them all)."""
        statement = select(OAuthGrant).order_by(OAuthGrant.id).with_for_update()
        return list((await self.session.execute(statement)).scalars().all())
