"""Applying inbound events (webhooks and the poller's findings) to the CRM.

One code path for every job event, on either backend. An event is never trusted for state: the
job is fetched from Xero by id (through the practice's backend, never an event's resourceUrl),
unless the poller already fetched it and the job's link has not changed since (a write of
syncd's that landed meanwhile makes the poller's copy stale). The pure rules in
syncd.domain.statuses (and, for an XPM job's due date and manager, syncd.domain.details)
decide; the CRM is written with a compare-and-set; the link remembers what syncd saw and wrote
so echoes and stale events are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from syncd.clock import Clock
from syncd.crm.port import CrmPort, CrmRequest
from syncd.domain.details import (
    Record,
    SetAccountant,
    SetDueDate,
    Unchanged,
    decide_due,
    decide_manager,
)
from syncd.domain.errors import NotFound, TransientError
from syncd.domain.ids import CompanyId
from syncd.domain.statuses import (
    Conflict,
    Ignore,
    LinkView,
    SetCrmStatus,
    SetXeroState,
    decide_inbound,
    same_state,
)
from syncd.domain.sync_settings import Practice
from syncd.domain.tasks import set_job_state
from syncd.logs import get_logger
from syncd.pipeline.inbox import ClaimedEvent
from syncd.pipeline.outbox import NewTask, enqueue, new_task
from syncd.store.connections import ConnectionRepository
from syncd.store.db import Database
from syncd.store.invoices import JobInvoiceRepository
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import ContactMappingRepository, StaffMappingRepository
from syncd.store.models import JobInvoice, JobLink, SyncConflict
from syncd.store.settings import SettingsRepository
from syncd.xero.contacts import ContactsApi
from syncd.xero.invoices import Invoice, InvoicesApi
from syncd.xero.jobs import Backends, Job, job_from_json

log = get_logger("syncd.inbound")

# Job events come from syncd's poller (Xero sends none for jobs); PROJECT is what earlier
# versions of the poller queued, still in the inbox of a database upgraded mid-flight.
JOB = "JOB"
JOB_CHANGED = "JOB.CHANGED"
JOB_DELETED = "JOB.DELETED"
JOB_CATEGORIES = frozenset({JOB, "PROJECT"})


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str  # done | ignored
    result: str
    company: CompanyId | None = None


def link_view(link: JobLink) -> LinkView:
    return LinkView(
        crm_seen=link.crm_status_seen,
        crm_written=link.crm_status_written,
        crm_seen_at=link.crm_seen_at,
        xero_seen=link.xero_status_seen,
        xero_written=link.xero_status_written,
        xero_seen_at=link.xero_seen_at,
        manager_written=link.manager_written,
    )


class InboundHandler:
    def __init__(
        self,
        *,
        db: Database,
        crm: CrmPort,
        backends: Backends,
        contacts: ContactsApi,
        invoices: InvoicesApi,
        clock: Clock,
    ) -> None:
        self.db = db
        self.crm = crm
        self.backends = backends
        self.contacts = contacts
        self.invoices = invoices
        self.clock = clock

    async def handle(self, event: ClaimedEvent) -> Outcome:
        """Apply one event; raises a SyncError when it should be tried again later."""
        async with self.db.transaction() as session:
            owner = await ConnectionRepository(session).owner_of_tenant_across_companies(
                event.tenant_id
            )
        if owner is None:
            log.info("inbound.unknown_tenant", tenant=event.tenant_id, category=event.category)
            return Outcome("ignored", f"no practice has connected tenant {event.tenant_id}")
        company = CompanyId(owner.company_id)
        if event.category in JOB_CATEGORIES:
            outcome = await self._job(company, event)
        elif event.category == "CONTACT":
            outcome = await self._contact(company, event)
        elif event.category == "INVOICE":
            outcome = await self._invoice(company, event)
        else:
            outcome = Outcome("ignored", f"{event.category} events are not used by syncd")
        return Outcome(outcome.state, outcome.result, company)

    # -- jobs --------------------------------------------------------------------------------

    async def _job(self, company: CompanyId, event: ClaimedEvent) -> Outcome:
        async with self.db.transaction() as session:
            links = await JobLinkRepository(session).for_job(
                company=company, job_id=event.resource_id
            )
            practice = await SettingsRepository(session).practice(company=company)
        if not links:
            return Outcome("ignored", "the job is not linked to a CRM request")
        link = links[0]
        if event.event_type == JOB_DELETED:
            return await self._deleted(company, link)
        try:
            job = await self._current_job(company, event, link, practice)
        except NotFound:
            return await self._deleted(company, link)
        request = await self.crm.get_request(company=company, request_id=link.request_id)
        if request is None:
            return Outcome("ignored", "the linked CRM request no longer exists")
        notes = []
        if practice.capabilities.follows_details:
            notes = await self._details(company, link, job, request)
        outcome = await self._state(company, event, link, job, request, practice)
        if notes:
            return Outcome(outcome.state, "; ".join([outcome.result, *notes]))
        return outcome

    async def _state(
        self,
        company: CompanyId,
        event: ClaimedEvent,
        link: JobLink,
        job: Job,
        request: CrmRequest,
        practice: Practice,
    ) -> Outcome:
        settings = practice.settings
        decision = decide_inbound(
            mapping=practice.mapping,
            link=link_view(link),
            crm_status=request.status,
            xero_state=job.state,
            policy=settings.conflict_policy,
            crm_changed_at=request.updated_at,
            xero_changed_at=event.event_at,
        )
        now = self.clock.now()
        seen_at = max(filter(None, [event.event_at, link.xero_seen_at]), default=now)
        if isinstance(decision, SetCrmStatus):
            write = await self.crm.apply_status(
                company=company,
                request_id=request.request_id,
                status=decision.status.value,
                expected=request.status,
                now=now,
            )
            if not write.applied:
                raise TransientError("the CRM request changed meanwhile; the event is re-applied")
            await update_link(
                self.db,
                company,
                link.id,
                xero_seen=job.state,
                xero_seen_at=seen_at,
                crm_status=decision.status.value,
                crm_seen_at=write.updated_at,
                now=now,
                conflict=(
                    request.status,
                    job.state,
                    settings.conflict_policy.value,
                    decision.conflict,
                )
                if decision.conflict
                else None,
            )
            log.info(
                "inbound.crm_status_set",
                company=company,
                request=request.request_id,
                status=decision.status.value,
                xero=job.state,
            )
            return Outcome("done", f"CRM status set to {decision.status.value}")
        if isinstance(decision, SetXeroState | Conflict):
            resolution, result, follow_up = "manual: left for an admin", None, None
            if isinstance(decision, SetXeroState):  # the CRM wins: Xero is set back
                resolution = decision.conflict or "crm kept"
                result = f"conflict: CRM kept; Xero will be set to {decision.state}"
                follow_up = new_task(
                    company,
                    set_job_state(request.request_id, decision.state, f"conflict-{link.version}"),
                )
            await update_link(
                self.db,
                company,
                link.id,
                xero_seen=job.state,
                xero_seen_at=seen_at,
                now=now,
                conflict=(
                    request.status,
                    job.state,
                    settings.conflict_policy.value,
                    resolution,
                ),
                follow_up=follow_up,
            )
            return Outcome("done", result or "conflict recorded for an admin (manual policy)")
        assert isinstance(decision, Ignore)
        await update_link(
            self.db, company, link.id, xero_seen=job.state, xero_seen_at=seen_at, now=now
        )
        if not practice.mapping.knows(job.state):
            log.warning(
                "inbound.unknown_state",
                company=company,
                request=request.request_id,
                state=job.state,
            )
        return Outcome("ignored", decision.reason)

    async def _details(
        self, company: CompanyId, link: JobLink, job: Job, request: CrmRequest
    ) -> list[str]:
        """Carry a due date or manager changed in Xero to the CRM (compare-and-set); returns
        what was done, for the event's result."""
        notes: list[str] = []
        now = self.clock.now()
        due = decide_due(seen=link.xero_due_seen, xero=job.due, crm=request.due_date)
        if isinstance(due, SetDueDate):
            applied = await self.crm.apply_due_date(
                company=company,
                request_id=request.request_id,
                due_date=due.due_date,
                expected=request.due_date,
                now=now,
            )
            if not applied:
                raise TransientError("the CRM request changed meanwhile; the event is re-applied")
            notes.append(f"CRM due date set to {due.due_date}")
        async with self.db.transaction() as session:
            accountants = [
                m.crm_user_id
                for m in await StaffMappingRepository(session).list(company=company)
                if job.manager_id is not None and m.xero_staff_id == job.manager_id
            ]
        manager = decide_manager(
            seen=link.xero_manager_seen,
            written=link.xero_manager_written,
            xero=job.manager_id,
            crm_accountant=request.accountant_id,
            accountants_of_xero=accountants,
        )
        accountant = request.accountant_id
        if isinstance(manager, SetAccountant):
            applied = await self.crm.apply_accountant(
                company=company,
                request_id=request.request_id,
                accountant_id=manager.accountant_id,
                expected=request.accountant_id,
                now=now,
            )
            if not applied:
                raise TransientError("the CRM request changed meanwhile; the event is re-applied")
            accountant = manager.accountant_id
            notes.append(f"CRM request reassigned to {manager.accountant_id}")
        elif isinstance(manager, Record) and manager.note:
            notes.append(manager.note)
        if isinstance(due, Unchanged) and isinstance(manager, Unchanged):
            return notes
        async with self.db.transaction() as session:
            current = await JobLinkRepository(session).get(
                company=company, link_id=link.id, lock=True
            )
            if current is not None:
                current.xero_due_seen = job.due
                current.xero_manager_seen = job.manager_id
                if isinstance(manager, SetAccountant):
                    # The CRM now has the accountant of Xero's manager: nothing to send back.
                    current.manager_written = accountant
                    current.xero_manager_written = job.manager_id
                current.version += 1
                current.updated_at = now
        return notes

    async def _deleted(self, company: CompanyId, link: JobLink) -> Outcome:
        """A job deleted in Xero changes nothing in the CRM: the link says so and
        reconciliation reports it (`job_missing_in_xero`)."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            current = await JobLinkRepository(session).get(
                company=company, link_id=link.id, lock=True
            )
            if current is not None and current.state != "missing":
                current.state = "missing"
                current.version += 1
                current.updated_at = now
        log.info("inbound.job_deleted", company=company, request=link.request_id)
        return Outcome("ignored", "the job was deleted in Xero (a reconcile finding)")

    async def _current_job(
        self, company: CompanyId, event: ClaimedEvent, link: JobLink, practice: Practice
    ) -> Job:
        snapshot = event.payload.get("snapshot")
        unchanged = event.payload.get("link_version") == link.version
        # A snapshot without job_id is an earlier version's project: it is fetched again.
        usable = isinstance(snapshot, dict) and "job_id" in snapshot
        if event.source == "poller" and usable and unchanged:
            assert isinstance(snapshot, dict)
            return job_from_json(snapshot)
        backend = self.backends.of(practice.backend)
        return await backend.job(company, job_id=event.resource_id, number=link.xero_job_number)

    # -- contacts and invoices ---------------------------------------------------------------

    async def _contact(self, company: CompanyId, event: ClaimedEvent) -> Outcome:
        async with self.db.transaction() as session:
            mapped = await ContactMappingRepository(session).for_contact(
                company=company, contact_id=event.resource_id
            )
        if not mapped:
            return Outcome("ignored", "the contact is not mapped to a CRM client")
        try:
            contact = await self.contacts.get(company, event.resource_id)
        except NotFound:
            name, archived = None, True
        else:
            name, archived = contact.name, contact.archived
        now = self.clock.now()
        async with self.db.transaction() as session:
            for mapping in await ContactMappingRepository(session).for_contact(
                company=company, contact_id=event.resource_id
            ):
                if name is not None:
                    mapping.xero_contact_name = name
                mapping.archived = archived
                mapping.updated_at = now
        state = "archived" if archived else "active"
        return Outcome("done", f"contact mapping refreshed ({len(mapped)} client(s), {state})")

    async def _invoice(self, company: CompanyId, event: ClaimedEvent) -> Outcome:
        try:
            invoice = await self.invoices.get(company, event.resource_id)
        except NotFound:
            return Outcome("ignored", "the invoice no longer exists in Xero")
        async with self.db.transaction() as session:
            links = await JobLinkRepository(session).list(company=company)
            request_id, how = _match_invoice(invoice, links)
            if request_id is None:
                return Outcome("ignored", "the invoice could not be tied to a request's job")
            existing = await JobInvoiceRepository(session).get(
                company=company, invoice_id=invoice.invoice_id
            )
            row = existing or JobInvoice(
                company_id=company,
                invoice_id=invoice.invoice_id,
                request_id=request_id,
                linked_by=how,
            )
            row.invoice_number = invoice.number
            row.status = invoice.status
            row.total = str(invoice.total) if invoice.total is not None else None
            row.currency = invoice.currency
            row.request_id = request_id
            row.linked_by = how
            row.updated_at = self.clock.now()
            session.add(row)
        return Outcome("done", f"invoice {invoice.number or invoice.invoice_id} recorded")


def _match_invoice(invoice: Invoice, links: list[JobLink]) -> tuple[str | None, str]:
    """By the job number in the invoice's reference, else by the only job of its contact."""
    reference = (invoice.reference or "").upper()
    for link in links:
        if link.xero_job_number and link.xero_job_number.upper() in reference:
            return link.request_id, "reference"
    of_contact = [
        link for link in links if invoice.contact_id and link.xero_contact_id == invoice.contact_id
    ]
    if len(of_contact) == 1:
        return of_contact[0].request_id, "contact"
    return None, ""


async def update_link(
    db: Database,
    company: CompanyId,
    link_id: int,
    *,
    xero_seen: str,
    xero_seen_at: datetime,
    now: datetime,
    crm_status: str | None = None,
    crm_seen_at: datetime | None = None,
    conflict: tuple[str, str, str, str] | None = None,
    follow_up: NewTask | None = None,
) -> None:
    """Record what was seen (and written) in one transaction with any follow-up task."""
    async with db.transaction() as session:
        link = await JobLinkRepository(session).get(company=company, link_id=link_id, lock=True)
        if link is None:
            return
        if not (
            same_state(xero_seen, link.xero_status_seen)
            or same_state(xero_seen, link.xero_status_written)
        ):
            # Xero moved somewhere syncd did not send it: what syncd wrote is history now, and
            # Xero returning to that state later is a change, not an echo.
            link.xero_status_written = None
        link.xero_status_seen = xero_seen
        link.xero_seen_at = xero_seen_at
        if crm_status is not None:
            link.crm_status_written = crm_status
            link.crm_status_seen = crm_status
            link.crm_seen_at = crm_seen_at
        link.synced_at = now
        link.version += 1
        link.updated_at = now
        if conflict is not None:
            crm_status_then, xero_state, policy, resolution = conflict
            session.add(
                SyncConflict(
                    company_id=company,
                    request_id=link.request_id,
                    crm_status=crm_status_then,
                    xero_state=xero_state,
                    policy=policy,
                    resolution=resolution[:200],
                    created_at=now,
                )
            )
            log.info(
                "inbound.conflict",
                company=company,
                request=link.request_id,
                crm=crm_status_then,
                xero=xero_state,
                resolution=resolution,
            )
        if follow_up is not None:
            await enqueue(session, follow_up, now=now)


async def apply_crm_status(
    *,
    db: Database,
    crm: CrmPort,
    backends: Backends,
    clock: Clock,
    company: CompanyId,
    request_id: str,
) -> bool:
    """Set the CRM request to the class of its Xero job's current state (reconciliation's
    "accept Xero's side"); compare-and-set, like every inbound write. False if it could not
    (among others: a state of unknown class, which is never guessed)."""
    async with db.transaction() as session:
        link = await JobLinkRepository(session).for_request(company=company, request_id=request_id)
        practice = await SettingsRepository(session).practice(company=company)
    if link is None or link.xero_job_id is None:
        return False
    try:
        job = await backends.of(practice.backend).job(
            company, job_id=link.xero_job_id, number=link.xero_job_number
        )
    except NotFound:
        return False
    request = await crm.get_request(company=company, request_id=request_id)
    mapping = practice.mapping
    if request is None or not mapping.knows(job.state):
        return False
    xero_class = mapping.xero_class(job.state)
    now = clock.now()
    if mapping.crm_class(request.status) is xero_class:
        await update_link(db, company, link.id, xero_seen=job.state, xero_seen_at=now, now=now)
        return True
    target = mapping.crm_status_for(job.state).value
    write = await crm.apply_status(
        company=company, request_id=request_id, status=target, expected=request.status, now=now
    )
    if not write.applied:
        return False
    await update_link(
        db,
        company,
        link.id,
        xero_seen=job.state,
        xero_seen_at=now,
        now=now,
        crm_status=target,
        crm_seen_at=write.updated_at,
    )
    return True
