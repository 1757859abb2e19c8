"""What reconciliation reads from syncd's own tables, as plain rows streamed in batches: job
links, mappings and the requests with unfinished tasks, for one company.

A practice has 100,000 links: ORM objects (with their identity map and change tracking) cost
several times the rows they hold, and a fetched list holds every row while the caller builds
its snapshot from it. Here each batch is a list of plain rows, fetched through a server-side
cursor (`yield_per`), so the caller can turn one batch into its own values before the next is
read (docs/reconcile-performance.md). Imports only the store's models.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from syncd.domain.ids import CompanyId
from syncd.store.models import (
    ContactMapping,
    JobLink,
    OutboxTask,
    ServiceTemplateMapping,
    StaffMapping,
)

BATCH = 5_000
BUSY_PREFIX = "request:"  # a task's order key names the request it works on

# A link row's attributes are the JobLink attributes of the same names.
LINK_COLUMNS = (
    JobLink.request_id,
    JobLink.state,
    JobLink.xero_job_id,
    JobLink.xero_job_number,
    JobLink.crm_status_seen,
    JobLink.xero_status_seen,
    JobLink.xero_status_written,
    JobLink.updated_at,
)


async def link_batches(
    session: AsyncSession, *, company: CompanyId, batch: int = BATCH
) -> AsyncIterator[Sequence[Row[Any]]]:
    """The company's job links in link order (by id), `batch` rows at a time."""
    statement = _scoped(JobLink, company, *LINK_COLUMNS).order_by(JobLink.id)
    async for rows in _batches(session, statement, batch):
        yield rows


async def contact_map(session: AsyncSession, *, company: CompanyId) -> dict[str, str]:
    """CRM client id -> Xero contact id."""
    statement = _scoped(
        ContactMapping, company, ContactMapping.crm_client_id, ContactMapping.xero_contact_id
    )
    return await _pairs(session, statement.order_by(ContactMapping.crm_client_id))


async def staff_map(session: AsyncSession, *, company: CompanyId) -> dict[str, str]:
    """CRM accountant id -> Xero staff id."""
    statement = _scoped(StaffMapping, company, StaffMapping.crm_user_id, StaffMapping.xero_staff_id)
    return await _pairs(session, statement.order_by(StaffMapping.crm_user_id))


async def service_map(session: AsyncSession, *, company: CompanyId) -> dict[int, str]:
    """CRM service id -> Xero job template id."""
    statement = _scoped(
        ServiceTemplateMapping,
        company,
        ServiceTemplateMapping.crm_service_id,
        ServiceTemplateMapping.xero_template_id,
    )
    return await _pairs(session, statement.order_by(ServiceTemplateMapping.crm_service_id))


async def busy_requests(session: AsyncSession, *, company: CompanyId) -> set[str]:
    """Requests with a pending or running task: work in motion."""
    statement = _scoped(OutboxTask, company, OutboxTask.order_key).where(
        OutboxTask.state.in_(("pending", "running")),
        OutboxTask.order_key.startswith(BUSY_PREFIX, autoescape=True),
    )
    busy: set[str] = set()
    async for rows in _batches(session, statement, BATCH):
        busy.update(key.removeprefix(BUSY_PREFIX) for (key,) in rows)
    return busy


def _scoped(model: type[Any], company: CompanyId, *columns: Any) -> Select[Any]:
    """The tenant filter of `TenantRepository.scoped`, for a select of columns."""
    if not company:
        raise ValueError("a company is required for every tenant query")
    return select(*columns).where(model.company_id == company)


async def _pairs(session: AsyncSession, statement: Select[Any]) -> dict[Any, Any]:
    pairs: dict[Any, Any] = {}
    async for rows in _batches(session, statement, BATCH):
        pairs.update(rows)  # type: ignore[arg-type]  # rows of two columns
    return pairs


async def _batches(
    session: AsyncSession, statement: Select[Any], batch: int
) -> AsyncIterator[Sequence[Row[Any]]]:
    result = await session.stream(statement.execution_options(yield_per=batch))
    async for rows in result.partitions():
        yield rows
