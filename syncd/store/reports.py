"""Repository for reconciliation runs and their findings."""

from __future__ import annotations

from syncd.domain.ids import CompanyId
from syncd.store.models import ReconciliationFinding, ReconciliationRun
from syncd.store.scoping import TenantRepository


class RunRepository(TenantRepository[ReconciliationRun]):
    model = ReconciliationRun

    async def add(self, *, company: CompanyId, run: ReconciliationRun) -> ReconciliationRun:
        if run.company_id != company:
            raise ValueError("run belongs to another company")
        self.session.add(run)
        await self.session.flush()
        return run

    async def get(self, *, company: CompanyId, run_id: str) -> ReconciliationRun | None:
        return await self.first(self.scoped(company).where(ReconciliationRun.id == run_id))

    async def list(
        self, *, company: CompanyId, limit: int = 50, offset: int = 0
    ) -> list[ReconciliationRun]:
        return await self.all(
            self.scoped(company)
            .order_by(ReconciliationRun.started_at.desc(), ReconciliationRun.id)
            .limit(limit)
            .offset(offset)
        )


class FindingRepository(TenantRepository[ReconciliationFinding]):
    model = ReconciliationFinding

    async def add_all(self, *, company: CompanyId, findings: list[ReconciliationFinding]) -> None:
        if any(f.company_id != company for f in findings):
            raise ValueError("finding belongs to another company")
        self.session.add_all(findings)
        await self.session.flush()

    async def get(self, *, company: CompanyId, finding_id: int) -> ReconciliationFinding | None:
        return await self.first(self.scoped(company).where(ReconciliationFinding.id == finding_id))

    async def for_run(self, *, company: CompanyId, run_id: str) -> list[ReconciliationFinding]:
        return await self.all(
            self.scoped(company)
            .where(ReconciliationFinding.run_id == run_id)
            .order_by(ReconciliationFinding.kind, ReconciliationFinding.id)
        )

    async def open(self, *, company: CompanyId) -> list[ReconciliationFinding]:
        return await self.all(
            self.scoped(company)
            .where(ReconciliationFinding.state == "open")
            .order_by(ReconciliationFinding.id)
        )
