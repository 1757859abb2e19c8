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
        mapping = await self.for_client(company=company, client_id=client_id)
        if mapping is None:
            mapping = ContactMapping(
                company_id=company, crm_client_id=client_id, created_at=now, archived=False
            )
            self.session.add(mapping)
        mapping.xero_contact_id = contact_id
        mapping.xero_contact_name = contact_name
        mapping.auto_created = auto_created
        mapping.updated_at = now
        await self.session.flush()
        return mapping

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
        mapping = await self.for_user(company=company, user_id=user_id)
        if mapping is None:
            mapping = StaffMapping(company_id=company, crm_user_id=user_id, created_at=now)
            self.session.add(mapping)
        mapping.xero_staff_id = staff_id
        mapping.xero_staff_name = staff_name
        mapping.updated_at = now
        await self.session.flush()
        return mapping

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
        mapping = await self.for_service(company=company, service_id=service_id)
        if mapping is None:
            mapping = ServiceTemplateMapping(
                company_id=company, crm_service_id=service_id, created_at=now
            )
            self.session.add(mapping)
        mapping.xero_template_id = template_id
        mapping.xero_template_name = template_name
        mapping.updated_at = now
        await self.session.flush()
        return mapping

    async def remove(self, *, company: CompanyId, service_id: int) -> bool:
        result = await self.session.execute(
            delete(ServiceTemplateMapping).where(
                ServiceTemplateMapping.company_id == company,
                ServiceTemplateMapping.crm_service_id == service_id,
            )
        )
        return bool(getattr(result, "rowcount", 0))
