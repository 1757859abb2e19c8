"""Repository for job links: a CRM request and its Xero job, per company."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from syncd.domain.ids import CompanyId
from syncd.store.models import JobLink
from syncd.store.scoping import TenantRepository


class JobLinkRepository(TenantRepository[JobLink]):
    model = JobLink

    async def for_request(
        self, *, company: CompanyId, request_id: str, lock: bool = False
    ) -> JobLink | None:
        statement = self.scoped(company).where(JobLink.request_id == request_id)
        if lock:
            statement = statement.with_for_update()
        return await self.first(statement)

    async def get(self, *, company: CompanyId, link_id: int, lock: bool = False) -> JobLink | None:
        statement = self.scoped(company).where(JobLink.id == link_id)
        if lock:
            statement = statement.with_for_update()
        return await self.first(statement)

    async def for_job(self, *, company: CompanyId, job_id: str) -> list[JobLink]:
        return await self.all(self.scoped(company).where(JobLink.xero_job_id == job_id))

    async def for_requests(
        self, *, company: CompanyId, request_ids: Sequence[str]
    ) -> list[JobLink]:
        if not request_ids:
            return []
        return await self.all(self.scoped(company).where(JobLink.request_id.in_(request_ids)))

    async def for_contact(self, *, company: CompanyId, contact_id: str) -> list[JobLink]:
        """Links whose job is (or is about to be) for this Xero contact."""
        return await self.all(
            self.scoped(company).where(JobLink.xero_contact_id == contact_id).order_by(JobLink.id)
        )

    async def seen_states(self, *, company: CompanyId) -> set[str]:
        """The distinct job states syncd has seen in Xero for this practice's jobs."""
        statement = (
            select(JobLink.xero_status_seen)
            .where(JobLink.company_id == company, JobLink.xero_status_seen.is_not(None))
            .distinct()
        )
        if not company:
            raise ValueError("a company is required for every tenant query")
        return {str(v) for v in (await self.session.execute(statement)).scalars().all()}

    async def for_manager(self, *, company: CompanyId, accountant_id: str) -> list[JobLink]:
        """Linked jobs whose manager syncd last set (or tried to set) for this accountant."""
        return await self.all(
            self.scoped(company).where(
                JobLink.manager_written == accountant_id, JobLink.xero_job_id.is_not(None)
            )
        )

    async def list(self, *, company: CompanyId) -> list[JobLink]:
        return await self.all(self.scoped(company).order_by(JobLink.id))

    async def create_pending(
        self, *, company: CompanyId, request_id: str, now: datetime
    ) -> JobLink:
        link = JobLink(
            company_id=company,
            request_id=request_id,
            state="pending",
            version=1,
            created_at=now,
            updated_at=now,
        )
        self.session.add(link)
        await self.session.flush()
        return link
