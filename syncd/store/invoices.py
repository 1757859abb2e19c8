"""Repository for invoices tied to a request's job."""

from __future__ import annotations

from syncd.domain.ids import CompanyId
from syncd.store.models import JobInvoice
from syncd.store.scoping import TenantRepository


class JobInvoiceRepository(TenantRepository[JobInvoice]):
    model = JobInvoice

    async def get(self, *, company: CompanyId, invoice_id: str) -> JobInvoice | None:
        return await self.first(self.scoped(company).where(JobInvoice.invoice_id == invoice_id))

    async def for_request(self, *, company: CompanyId, request_id: str) -> list[JobInvoice]:
        return await self.all(
            self.scoped(company).where(JobInvoice.request_id == request_id).order_by(JobInvoice.id)
        )
