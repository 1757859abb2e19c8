"""Repositories for the three mapping tables: CRM client → Xero contact, accountant → staff,
service → job template. Unique per company; saving replaces the company's row for that CRM id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from syncd.domain.ids import CompanyId
from syncd.store.models import ContactMapping, ServiceTemplateMapping, StaffMapping
from syncd.store.scoping import TenantRepository


class ContactMappingRepository(TenantRepository[ContactMapping]):
    model = ContactMapping

    async def for_client(self, *, company: CompanyId, client_id: str) -> ContactMapping | None:
        return await self.first(
            self.scoped(company).where(ContactMapping.crm_client_id == client_id)
        )

    async def for_contact(self, *, company: CompanyId, contact_id: str) -> list[ContactMapping]:
        return await self.all(
            self.scoped(company).where(ContactMapping.xero_contact_id == contact_id)
        )

    async def list(self, *, company: CompanyId) -> list[ContactMapping]:
        return await self.all(self.scoped(company).order_by(ContactMapping.crm_client_id))

    async def save(
        self,
        *,
        company: CompanyId,
        client_id: str,
        contact_id: str,
        contact_name: str | None,
        auto_created: bool,
        now: datetime,
    ) -> ContactMapping:
        return await self.upsert(
            company=company,
            key={"crm_client_id": client_id},
            values={
                "xero_contact_id": contact_id,
                "xero_contact_name": contact_name,
                "auto_created": auto_created,
                "archived": False,
            },
            now=now,
        )

    async def remove(self, *, company: CompanyId, client_id: str) -> bool:
        result = await self.session.execute(
            delete(ContactMapping).where(
                ContactMapping.company_id == company, ContactMapping.crm_client_id == client_id
            )
        )
        return bool(getattr(result, "rowcount", 0))


class StaffMappingRepository(TenantRepository[StaffMapping]):
    model = StaffMapping

    async def for_user(self, *, company: CompanyId, user_id: str) -> StaffMapping | None:
        return await self.first(self.scoped(company).where(StaffMapping.crm_user_id == user_id))

    async def list(self, *, company: CompanyId) -> list[StaffMapping]:
        return await self.all(self.scoped(company).order_by(StaffMapping.crm_user_id))

    async def save(
        self,
        *,
        company: CompanyId,
        user_id: str,
        staff_id: str,
        staff_name: str | None,
        now: datetime,
    ) -> StaffMapping:
        return await self.upsert(
            company=company,
            key={"crm_user_id": user_id},
            values={"xero_staff_id": staff_id, "xero_staff_name": staff_name},
            now=now,
        )

    async def remove(self, *, company: CompanyId, user_id: str) -> bool:
        result = await self.session.execute(
            delete(StaffMapping).where(
                StaffMapping.company_id == company, StaffMapping.crm_user_id == user_id
            )
        )
        return bool(getattr(result, "rowcount", 0))


class ServiceMappingRepository(TenantRepository[ServiceTemplateMapping]):
    model = ServiceTemplateMapping

    async def for_service(
        self, *, company: CompanyId, service_id: int
    ) -> ServiceTemplateMapping | None:
        return await self.first(
            self.scoped(company).where(ServiceTemplateMapping.crm_service_id == service_id)
        )

    async def list(self, *, company: CompanyId) -> list[ServiceTemplateMapping]:
        return await self.all(self.scoped(company).order_by(ServiceTemplateMapping.crm_service_id))

    async def save(
        self,
        *,
        company: CompanyId,
        service_id: int,
        template_id: str,
        template_name: str | None,
        now: datetime,
    ) -> ServiceTemplateMapping:
        return await self.upsert(
            company=company,
            key={"crm_service_id": service_id},
            values={"xero_template_id": template_id, "xero_template_name": template_name},
            now=now,
        )

    async def remove(self, *, company: CompanyId, service_id: int) -> bool:
        result = await self.session.execute(
            delete(ServiceTemplateMapping).where(
                ServiceTemplateMapping.company_id == company,
                ServiceTemplateMapping.crm_service_id == service_id,
            )
        )
        return bool(getattr(result, "rowcount", 0))
