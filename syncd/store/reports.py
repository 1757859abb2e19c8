"""Repository for reconciliation runs and their findings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

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

    async def claim(
        self,
        *,
        company: CompanyId,
        finding_id: int,
        state: str,
        by: str,
        note: str | None,
        now: datetime,
    ) -> bool:
        """Resolve an open finding as `state`, compare-and-set in one statement: of several
        callers racing for one finding exactly one gets True; the rest (and a finding that is
        not open, or not this company's) get False."""
        result = await self.session.execute(
            update(ReconciliationFinding)
            .where(
                ReconciliationFinding.company_id == company,
                ReconciliationFinding.id == finding_id,
                ReconciliationFinding.state == "open",
            )
            .values(state=state, resolved_by=by, resolved_at=now, note=note)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def reopen(
        self, *, company: CompanyId, finding_id: int, state: str, claimed_at: datetime
    ) -> None:
        """Undo this caller's `claim` (its action could not be carried out): open again."""
        await self.session.execute(
            update(ReconciliationFinding)
            .where(
                ReconciliationFinding.company_id == company,
                ReconciliationFinding.id == finding_id,
                ReconciliationFinding.state == state,
                ReconciliationFinding.resolved_at == claimed_at,
            )
            .values(state="open", resolved_by=None, resolved_at=None, note=None)
            .execution_options(synchronize_session=False)
        )
