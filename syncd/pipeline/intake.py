"""Taking in an event the CRM pushed: deduplicate by its id, then plan exactly as the change
feed would (same keys, so the feed finding the same change later adds nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from syncd.clock import Clock
from syncd.crm.events import CrmEvent, EventInvalid
from syncd.crm.port import CrmPort
from syncd.domain.ids import CompanyId
from syncd.domain.tasks import TaskSpec, sync_contact
from syncd.pipeline.outbox import enqueue, new_task
from syncd.pipeline.planner import plan
from syncd.store.connections import ConnectionRepository
from syncd.store.db import Database
from syncd.store.mappings import ContactMappingRepository
from syncd.store.models import CrmEventReceipt
from syncd.store.settings import SettingsRepository


@dataclass(frozen=True, slots=True, kw_only=True)
class Intake:
    duplicate: bool = False
    tasks: list[TaskSpec] = field(default_factory=list)
    note: str | None = None


async def take(
    *, db: Database, crm: CrmPort, clock: Clock, event: CrmEvent, webhook_id: str
) -> Intake:
    company = CompanyId(event.company_id)
    request = client = None
    if event.request_id is not None:
        request = await crm.get_request(company=company, request_id=event.request_id)
        if request is None:
            raise EventInvalid(f"request {event.request_id} is not in practice {company}")
        client = await crm.get_client(company=company, client_id=request.client_id)
    elif event.client_id is not None:
        client = await crm.get_client(company=company, client_id=event.client_id)
        if client is None:
            raise EventInvalid(f"client {event.client_id} is not in practice {company}")
    now = clock.now()
    try:
        async with db.transaction() as session:
            session.add(
                CrmEventReceipt(
                    company_id=company,
                    webhook_id=webhook_id[:120],
                    event_type=event.type,
                    received_at=now,
                )
            )
            await session.flush()
            if await ConnectionRepository(session).get_active(company=company) is None:
                return Intake(note="the practice is not connected to Xero: nothing to do")
            practice = await SettingsRepository(session).practice(company=company)
            if request is not None:
                tasks = await plan(
                    session,
                    company=company,
                    request=request,
                    client=client,
                    practice=practice,
                    now=now,
                )
                return Intake(tasks=tasks)
            assert client is not None
            mapped = await ContactMappingRepository(session).for_client(
                company=company, client_id=client.user_id
            )
            if mapped is None or not practice.settings.sync_client_details:
                return Intake(note="the client is not mapped, or details are not synced")
            spec = sync_contact(client.user_id, client.full_name, client.email)
            added = await enqueue(session, new_task(company, spec), now=now)
            return Intake(tasks=[spec] if added is not None else [])
    except IntegrityError:
        return Intake(duplicate=True, note="this event id was already taken in")
