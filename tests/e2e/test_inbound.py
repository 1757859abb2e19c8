"""Inbound, end to end: a status changed in Xero reaches the CRM through the poller (Xero sends
no webhook for jobs); echoes, stale copies and equivalent states change nothing; contacts and
invoices (which Xero does send webhooks for) update syncd's records; any number of repeated and
racing polls change each request as if polled once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from syncd.crm.memory import MemoryCrm
from syncd.domain.ids import CompanyId
from syncd.domain.sync_settings import parse_settings
from syncd.domain.tasks import POLL_COMPANY
from syncd.pipeline.changefeed import ChangeFeed
from syncd.pipeline.poller import Poller
from syncd.scheduler import enqueue_polls
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import ContactMappingRepository
from syncd.store.models import JobInvoice, JobLink, SyncConflict
from syncd.store.settings import SettingsRepository
from syncd.web.auth import Role
from tests.harness import Harness, harness

A = CompanyId("company-a")
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@dataclass
class Linked:
    tenant: str
    request_id: str
    project_id: str
    contact_id: str
    client_id: str


async def linked_job(
    h: Harness,
    crm: MemoryCrm,
    *,
    company: CompanyId = A,
    crm_status: str = "processing",
    xero_status: str = "INPROGRESS",
    tenant: str | None = None,
    number: int = 1,
) -> Linked:
    """A CRM request already synced to a Xero project (as the outbound side leaves it)."""
    if tenant is None:
        tenant = await h.connect(company)
    if company not in crm.companies:
        crm.add_company(name=f"Practice {company}", company_id=company)
    client = crm.add_person(
        company=company,
        role="client",
        email=f"client{number}@example.com",
        first_name="Client",
        last_name=str(number),
    )
    service = crm.add_service(company=company, name="Tax Return", base_price=Decimal("350"))
    request = crm.add_request(
        company=company, client_id=client, service_id=service, now=T0, status=crm_status
    )
    contact = h.sandbox.add_contact(tenant, f"Client {number}", email=f"client{number}@example.com")
    project = h.sandbox.add_project(
        tenant, contact_id=contact.contact_id, name=f"Tax Return - Client {number}"
    )
    if xero_status != "INPROGRESS":
        h.sandbox.set_project_status(tenant, project.project_id, xero_status)
    await h.deliver_webhooks()  # set-up noise (contact and project created) is handled first
    async with h.services.db.transaction() as session:
        link = await JobLinkRepository(session).create_pending(
            company=company, request_id=request, now=T0
        )
        link.state, link.xero_job_id = "linked", project.project_id
        link.xero_job_number = "PRJ-TEST"
        link.xero_contact_id = contact.contact_id
        link.crm_status_seen, link.xero_status_seen = crm_status, xero_status
        link.xero_seen_at = T0
        await ContactMappingRepository(session).save(
            company=company,
            client_id=client,
            contact_id=contact.contact_id,
            contact_name=contact.name,
            auto_created=True,
            now=T0,
        )
    return Linked(tenant, request, project.project_id, contact.contact_id, client)


@pytest.fixture
def crm() -> MemoryCrm:
    return MemoryCrm()


@pytest.fixture
async def h(db: Database, fernet_key: str, crm: MemoryCrm) -> AsyncIterator[Harness]:
    async with harness(db, fernet_key, crm=crm) as ready:
        yield ready


async def status_of(crm: MemoryCrm, job: Linked, company: CompanyId = A) -> str:
    request = await crm.get_request(company=company, request_id=job.request_id)
    assert request is not None
    return request.status


async def link_of(h: Harness, job: Linked, company: CompanyId = A) -> JobLink:
    async with h.services.db.transaction() as session:
        link = await JobLinkRepository(session).for_request(
            company=company, request_id=job.request_id
        )
    assert link is not None
    return link


async def test_a_job_closed_in_xero_completes_the_request_at_the_next_poll(
    h: Harness, crm: MemoryCrm
) -> None:
    """Xero sends no webhook about the job; the poll's listing → inbox → CRM completed, once."""
    job = await linked_job(h, crm)
    sent = len(h.sandbox.webhook_deliveries)
    h.sandbox.set_project_status(job.tenant, job.project_id, "CLOSED")
    await h.deliver_webhooks()
    assert len(h.sandbox.webhook_deliveries) == sent  # nothing to deliver
    assert await status_of(crm, job) == "processing"
    assert (await h.poll(A))["changes"] == 1
    assert await status_of(crm, job) == "completed"
    assert [w.status for w in crm.applied_writes] == ["completed"]
    link = await link_of(h, job)
    assert (link.xero_status_seen, link.crm_status_written) == ("CLOSED", "completed")
    assert (await h.poll(A))["changes"] == 0  # seen: a second poll finds nothing new


async def test_polls_are_scheduled_once_per_practice_per_interval(
    h: Harness, crm: MemoryCrm
) -> None:
    """The scheduler's tick queues one poll per practice per interval; it uses the listing's
    copy of the job instead of fetching it again."""
    job = await linked_job(h, crm)
    h.sandbox.set_project_status(job.tenant, job.project_id, "CLOSED")
    assert await enqueue_polls(h.services) == 1
    assert await enqueue_polls(h.services) == 0  # one poll per practice per interval
    await h.settle()
    assert await status_of(crm, job) == "completed"
    project_gets = [
        e for e in h.sandbox.ledger if e.method == "GET" and e.path.endswith(job.project_id)
    ]
    assert project_gets == []  # the poller's snapshot was used, not fetched again


async def test_a_polled_state_older_than_syncds_own_write_is_fetched_again(
    h: Harness, crm: MemoryCrm
) -> None:
    """The poll lists the job reopened; before its event is applied the CRM user reopens and
    then cancels the request, and syncd closes the job. The poll's copy (INPROGRESS) is older
    than that write: the job is fetched again (CLOSED) and the cancelled request stays so."""
    job = await linked_job(h, crm, crm_status="completed", xero_status="CLOSED")
    h.sandbox.set_project_status(job.tenant, job.project_id, "INPROGRESS")
    worker = h.services.worker

    async def outbox_only() -> None:
        await worker.tick_outbox()
        await worker.settle()

    async def crm_user_sets(status: str) -> None:
        crm.set_status(company=A, request_id=job.request_id, status=status, now=datetime.now(UTC))
        feed = ChangeFeed(db=h.services.db, crm=crm, clock=h.services.clock, settle=timedelta(0))
        await feed.read(A)
        await outbox_only()

    assert await enqueue_polls(h.services) == 1
    await outbox_only()  # the poll's event waits in the inbox with its copy of the job
    await crm_user_sets("processing")
    await crm_user_sets("cancelled")
    assert h.sandbox.project(job.tenant, job.project_id).status == "CLOSED"
    await h.settle()  # now the inbox
    assert await status_of(crm, job) == "cancelled"
    gets = [e for e in h.sandbox.ledger if e.method == "GET" and e.path.endswith(job.project_id)]
    assert len(gets) == 1


async def test_a_reopened_job_reopens_the_request(h: Harness, crm: MemoryCrm) -> None:
    """CLOSED → INPROGRESS in Xero while the CRM is completed sets processing."""
    job = await linked_job(h, crm, crm_status="completed", xero_status="CLOSED")
    h.sandbox.set_project_status(job.tenant, job.project_id, "INPROGRESS")
    await h.poll(A)
    assert await status_of(crm, job) == "processing"


async def test_closed_does_not_turn_cancelled_into_completed(h: Harness, crm: MemoryCrm) -> None:
    """Equivalent states are left alone (and the link records what Xero has)."""
    job = await linked_job(h, crm, crm_status="cancelled", xero_status="INPROGRESS")
    h.sandbox.set_project_status(job.tenant, job.project_id, "CLOSED")
    await h.poll(A)
    assert await status_of(crm, job) == "cancelled"
    assert crm.applied_writes == []
    assert (await link_of(h, job)).xero_status_seen == "CLOSED"


async def test_syncds_own_write_coming_back_is_an_echo(h: Harness, crm: MemoryCrm) -> None:
    """syncd closes the job (outbound); the next poll sees it closed and changes nothing."""
    from syncd.domain.tasks import set_job_state
    from syncd.pipeline.outbox import enqueue, new_task

    job = await linked_job(h, crm, crm_status="processing")
    crm.set_status(
        company=A, request_id=job.request_id, status="completed", now=T0 + timedelta(minutes=1)
    )
    async with h.services.db.transaction() as session:
        await enqueue(session, new_task(A, set_job_state(job.request_id, "CLOSED", "v1")), now=T0)
    await h.settle()
    assert h.sandbox.project(job.tenant, job.project_id).status == "CLOSED"
    assert (await h.poll(A))["changes"] == 0  # the link already holds syncd's write
    assert crm.applied_writes == []
    assert await status_of(crm, job) == "completed"


async def test_a_job_deleted_in_xero_changes_nothing_in_the_crm(h: Harness, crm: MemoryCrm) -> None:
    """The poll notices the linked job is gone: the link is marked missing (reconciliation
    reports it), the CRM request is left as it is, and later polls do not report it again."""
    job = await linked_job(h, crm)
    h.sandbox.delete_project(job.tenant, job.project_id)
    assert (await h.poll(A))["deleted"] == 1
    assert await status_of(crm, job) == "processing"
    assert (await link_of(h, job)).state == "missing"
    assert (await h.poll(A))["changes"] == 0


async def both_sides_move_apart(h: Harness, crm: MemoryCrm, *, policy: str) -> Linked:
    """A job left disagreeing (CRM processing, Xero CLOSED); then the CRM completes the request
    while Xero reopens the job: both changed since the last sync, in opposite directions."""
    async with h.services.db.transaction() as session:
        await SettingsRepository(session).save(
            company=A,
            settings=parse_settings({"conflict_policy": policy}),
            by="test",
            now=datetime.now(UTC),
        )
    job = await linked_job(h, crm, crm_status="processing", xero_status="CLOSED")
    crm.set_status(company=A, request_id=job.request_id, status="completed", now=T0)
    h.sandbox.set_project_status(job.tenant, job.project_id, "INPROGRESS")
    await h.poll(A)
    return job


async def conflicts(h: Harness) -> list[tuple[str, str, str, str]]:
    async with h.services.db.transaction() as session:
        rows = (await session.execute(select(SyncConflict))).scalars().all()
    return [(r.crm_status, r.xero_state, r.policy, r.resolution) for r in rows]


async def test_a_conflict_under_crm_wins_sets_xero_back(h: Harness, crm: MemoryCrm) -> None:
    """Both sides moved apart; crm_wins records the conflict and sets Xero back."""
    job = await both_sides_move_apart(h, crm, policy="crm_wins")
    assert await conflicts(h) == [
        ("completed", "INPROGRESS", "crm_wins", "crm_wins: CRM completed kept")
    ]
    assert await status_of(crm, job) == "completed"
    assert h.sandbox.project(job.tenant, job.project_id).status == "CLOSED"


async def test_a_conflict_under_manual_waits_for_an_admin(h: Harness, crm: MemoryCrm) -> None:
    """Both sides moved apart; manual records the conflict and writes nothing."""
    job = await both_sides_move_apart(h, crm, policy="manual")
    assert await conflicts(h) == [
        ("completed", "INPROGRESS", "manual", "manual: left for an admin")
    ]
    assert await status_of(crm, job) == "completed"
    assert h.sandbox.project(job.tenant, job.project_id).status == "INPROGRESS"


async def test_contact_events_refresh_the_client_mapping(h: Harness, crm: MemoryCrm) -> None:
    """A contact renamed and archived in Xero shows in the mapping."""
    job = await linked_job(h, crm)
    h.sandbox.update_contact(job.tenant, job.contact_id, name="Client One Pty Ltd")
    h.sandbox.archive_contact(job.tenant, job.contact_id)
    await h.deliver_webhooks()
    async with h.services.db.transaction() as session:
        mapping = await ContactMappingRepository(session).for_client(
            company=A, client_id=job.client_id
        )
    assert mapping is not None
    assert (mapping.xero_contact_name, mapping.archived) == ("Client One Pty Ltd", True)


async def test_invoice_events_are_recorded_against_the_request(h: Harness, crm: MemoryCrm) -> None:
    """An invoice whose reference names the job is tied to the request."""
    job = await linked_job(h, crm)
    h.sandbox.add_invoice(
        job.tenant,
        contact_id=job.contact_id,
        total=Decimal("385.00"),
        reference="PRJ-TEST tax return",
    )
    await h.deliver_webhooks()
    async with h.services.db.transaction() as session:
        rows = (await session.execute(select(JobInvoice))).scalars().all()
    assert [(r.request_id, r.total, r.linked_by) for r in rows] == [
        (job.request_id, "385.00", "reference")
    ]


async def test_events_for_an_unconnected_tenant_are_ignored(h: Harness, crm: MemoryCrm) -> None:
    """A practice that disconnected is not polled: nothing is applied."""
    job = await linked_job(h, crm)
    await h.syncd.post("/api/integrations/xero/disconnect", headers=h.auth(Role.PRACTICE_ADMIN, A))
    h.sandbox.set_project_status(job.tenant, job.project_id, "CLOSED")
    assert await h.poll(A) == {"skipped": "no active connection"}
    assert await status_of(crm, job) == "processing"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["CLOSED", "INPROGRESS"])),
        min_size=1,
        max_size=8,
    ),
    racing=st.integers(1, 4),
)
async def test_repeated_racing_polls_change_each_request_as_once(
    db: Database, fernet_key: str, changes: list[tuple[int, str]], racing: int
) -> None:
    """After any run of changes in Xero, several polls at once (and more after them): each
    request is written at most once (exactly when its class changed) and ends in Xero's
    class."""
    from syncd.sandbox.state import SandboxState

    crm = MemoryCrm()
    # Each example is a new world on the same database: new tenant ids (seeded), new practice.
    world = SandboxState(seed=uuid.uuid4().int % 2**32)
    async with harness(db, fernet_key, crm=crm, sandbox=world) as h:
        company = CompanyId(str(uuid.uuid4()))
        jobs = []
        tenant = None
        for n in range(3):
            job = await linked_job(h, crm, company=company, tenant=tenant, number=n)
            tenant = job.tenant
            jobs.append(job)
        for index, state in changes:
            h.sandbox.set_project_status(jobs[index].tenant, jobs[index].project_id, state)
        poller = h.services.worker.handlers[POLL_COMPANY]
        assert isinstance(poller, Poller)
        await asyncio.gather(*(poller.poll(company) for _ in range(racing)))
        await h.settle()
        await h.poll(company)
        for job in jobs:
            final_xero = h.sandbox.project(job.tenant, job.project_id).status
            final_crm = await status_of(crm, job, company)
            expected = "completed" if final_xero == "CLOSED" else "processing"
            assert final_crm == expected
            writes = [w for w in crm.applied_writes if w.request_id == job.request_id]
            assert len(writes) == (0 if final_xero == "INPROGRESS" else 1)
