"""Turning a CRM request's current state into outbox tasks, inside the caller's transaction.

The change feed, the CRM's pushed events and reconciliation healing all come through here, so a
fact reported three ways is one task (the keys in syncd.domain.tasks).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from syncd.crm.port import CrmPerson, CrmRequest
from syncd.domain.ids import CompanyId
from syncd.domain.sync_settings import Practice
from syncd.domain.tasks import TaskSpec, plan_request, sync_contact
from syncd.pipeline.inbound import link_view
from syncd.pipeline.outbox import enqueue, new_task
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import ContactMappingRepository


async def plan(
    session: AsyncSession,
    *,
    company: CompanyId,
    request: CrmRequest,
    client: CrmPerson | None,
    practice: Practice,
    now: datetime,
) -> list[TaskSpec]:
    """Enqueue what `request` calls for; returns the specs that became new tasks."""
    link = await JobLinkRepository(session).for_request(
        company=company, request_id=request.request_id
    )
    specs = plan_request(
        mapping=practice.mapping,
        request_id=request.request_id,
        status=request.status,
        version=request.updated_at.isoformat(),
        link=link_view(link) if link is not None else None,
        has_job=link is not None and link.xero_job_id is not None,
        accountant_id=request.accountant_id,
        managed=practice.capabilities.managers,
    )
    if client is not None and practice.settings.sync_client_details:
        mapping = await ContactMappingRepository(session).for_client(
            company=company, client_id=client.user_id
        )
        if mapping is not None and mapping.xero_contact_name not in (None, client.full_name):
            specs.append(sync_contact(client.user_id, client.full_name, client.email))
    added = []
    for spec in specs:
        if await enqueue(session, new_task(company, spec), now=now) is not None:
            added.append(spec)
    return added
