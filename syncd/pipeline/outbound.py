"""Outbound task handlers: what syncd writes to Xero on the CRM's behalf, on either backend
(syncd.xero.jobs: Projects or Practice Manager, per the practice's connection).

Each handler is idempotent end to end. Job creation writes the link (pending) before calling
Xero and, when resumed after a crash, first looks for the job an earlier attempt may have
created: on Practice Manager by the request reference it put in the job's client order number,
on Projects by contact and name (with an Idempotency-Key, which Projects honours). Writes
re-read the CRM first, so a task that a later change made pointless does nothing. The result,
or the error that killed the task, is written back to the CRM request.
"""

from __future__ import annotations

from typing import Any, NoReturn

from syncd.clock import Clock
from syncd.crm.port import CrmPerson, CrmPort, CrmRequest
from syncd.domain.errors import NotFound, PermanentError, TransientError
from syncd.domain.ids import CompanyId
from syncd.domain.naming import job_name
from syncd.domain.statuses import StatusClass, same_state
from syncd.domain.sync_settings import Practice
from syncd.domain.tasks import (
    CREATE_JOB,
    SET_JOB_MANAGER,
    SET_JOB_STATE,
    SYNC_CONTACT,
    SYNC_REQUEST,
    set_job_manager,
    set_job_state,
)
from syncd.locks import KeyedLocks
from syncd.logs import get_logger
from syncd.pipeline.inbound import link_view
from syncd.pipeline.outbox import ClaimedTask, TaskRepository, enqueue, new_task
from syncd.pipeline.planner import plan
from syncd.pipeline.worker import TaskContext, TaskHandler
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import (
    ContactMappingRepository,
    ServiceMappingRepository,
    StaffMappingRepository,
)
from syncd.store.models import JobLink
from syncd.store.settings import SettingsRepository
from syncd.xero.jobs import Backends, Job, JobBackend, JobSpec, NewClient

log = get_logger("syncd.outbound")


def request_reference(request_id: str) -> str:
    """What syncd puts in a Practice Manager job's client order number to find it again."""
    return f"syncd:{request_id}"


class Outbound:
    def __init__(
        self,
        *,
        db: Database,
        crm: CrmPort,
        backends: Backends,
        clock: Clock,
    ) -> None:
        self.db = db
        self.crm = crm
        self.backends = backends
        self.clock = clock
        # One client resolution per CRM client at a time: a client's second job, started while
        # the first is still finding or creating the client in Xero, waits and reads the
        # mapping instead of spending its own look-up and create calls.
        self._client_locks: KeyedLocks[tuple[CompanyId, str]] = KeyedLocks()

    def handlers(self) -> dict[str, TaskHandler]:
        return {
            CREATE_JOB: self.create_job,
            SET_JOB_STATE: self.set_job_state,
            SET_JOB_MANAGER: self.set_job_manager,
            SYNC_CONTACT: self.sync_contact,
            SYNC_REQUEST: self.sync_request,
        }

    # -- job creation ------------------------------------------------------------------------

    async def create_job(self, context: TaskContext) -> dict[str, Any]:
        task = context.task
        company = task.company
        request = await self._request(company, str(task.payload["request_id"]))
        async with self.db.transaction() as session:
            practice = await SettingsRepository(session).practice(company=company)
            link = await self._link(session, company, request.request_id)
            # The client an earlier attempt created the job for, if one got that far.
            earlier_client = link.xero_contact_id
            if link.xero_job_id is not None:
                job_id, number = link.xero_job_id, link.xero_job_number
            template = None
            if practice.capabilities.templates:
                template = await ServiceMappingRepository(session).for_service(
                    company=company, service_id=request.service_id
                )
        if link.xero_job_id is not None:
            await self._write_back(company, request.request_id, job_id, number, None)
            return {"skipped": "the job exists", "job_id": job_id}
        if practice.mapping.crm_class(request.status) is not StatusClass.OPEN:
            return {"skipped": f"the request is {request.status} now: no job needed"}
        client = await self.crm.get_client(company=company, client_id=request.client_id)
        service = await self.crm.get_service(company=company, service_id=request.service_id)
        if client is None or service is None:
            raise PermanentError("the request's client or service no longer exists in the CRM")
        backend = self.backends.of(practice.backend)
        client_id = await self._client_for(
            company, backend, client, auto_create=practice.settings.auto_create_contacts
        )
        name = job_name(service.name, client.full_name)
        notes: list[str] = []
        if practice.capabilities.templates and template is None:
            notes.append(f"no job template: the service {service.name!r} is not mapped to one")
        spec = JobSpec(
            name=name,
            description=" ".join((request.description or name).split()) or name,
            client_id=client_id,
            # XPM refuses a due date before the start: a request already overdue starts then.
            start=min(filter(None, [self.clock.now().date(), request.due_date])),
            due=request.due_date,
            budget=service.base_price,
            template_id=template.xero_template_id if template else None,
            category_id=(
                practice.settings.job_category_id if practice.capabilities.categories else None
            ),
            reference=(
                request_reference(request.request_id) if practice.capabilities.references else None
            ),
        )
        async with self.db.transaction() as session:
            # Recorded before the call, so a retry of another request for this client knows
            # this one may have created a job too (see _existing_job).
            link = await self._link(session, company, request.request_id, lock=True)
            link.xero_contact_id = client_id
        # Only a task that was claimed before can have created the job already (its answer
        # lost, or its worker killed); a first attempt skips the lookup and its call.
        job = None
        if task.attempts > 1:
            job = await self._existing_job(
                company, backend, spec, request.request_id, earlier_client
            )
        if job is None:
            job = await backend.create_job(company, spec, key=task.key)
        now = self.clock.now()
        async with self.db.transaction() as session:
            link = await self._link(session, company, request.request_id, lock=True)
            link.state = "linked"
            link.xero_job_id = job.job_id
            link.xero_job_number = job.number
            link.xero_contact_id = job.client_id or client_id
            link.xero_status_seen = job.state
            link.xero_status_written = job.state
            link.xero_seen_at = now
            link.xero_due_seen = job.due
            link.xero_manager_seen = job.manager_id
            link.crm_status_seen = request.status
            link.crm_seen_at = request.updated_at
            link.synced_at = now
            link.last_error = None
            link.version += 1
            link.updated_at = now
            # Follow-ups in the link's transaction: a job is never left without them.
            if practice.capabilities.managers and request.accountant_id is not None:
                follow = set_job_manager(
                    request.request_id, request.accountant_id, f"created-{job.job_id}"
                )
                await enqueue(session, new_task(company, follow), now=now)
            else:
                link.manager_written = request.accountant_id
            wanted = practice.mapping.xero_state_for(request.status)
            if wanted is not None and not same_state(wanted, job.state):
                # XPM starts every job in its first state; "processing" wants In Progress.
                follow = set_job_state(request.request_id, wanted, f"created-{job.job_id}")
                await enqueue(session, new_task(company, follow), now=now)
        await self._write_back(company, request.request_id, job.job_id, job.number, None)
        await self._catch_up(company, request, practice)
        log.info(
            "outbound.job_created",
            company=company,
            request=request.request_id,
            job=job.job_id,
            number=job.number,
            name=name,
        )
        result: dict[str, Any] = {
            "job_id": job.job_id,
            "job_number": job.number,
            "contact_id": client_id,
        }
        if notes:
            result["notes"] = notes
        return result

    async def _catch_up(self, company: CompanyId, before: CrmRequest, practice: Practice) -> None:
        """Plan again if the CRM moved on while the job was being created (say, the request
        was completed): the change feed saw that change before there was a job to close."""
        latest = await self.crm.get_request(company=company, request_id=before.request_id)
        if latest is None or latest.status == before.status:
            return
        async with self.db.transaction() as session:
            await plan(
                session,
                company=company,
                request=latest,
                client=None,
                practice=practice,
                now=self.clock.now(),
            )

    async def _existing_job(
        self,
        company: CompanyId,
        backend: JobBackend,
        spec: JobSpec,
        request_id: str,
        earlier_client: str | None,
    ) -> Job | None:
        """A job an earlier attempt created (answer lost, worker killed).

        With a reference (Practice Manager's client order number) the match is exact, among
        the jobs of the client that attempt used (recorded on the link before its call) and of
        today's client. Without
        one (Projects), a job of the same client and name not linked to another request; when
        another unlinked request would give its job the same name (one client, one service,
        twice), a match could be that request's job: then nothing is adopted and the caller
        re-sends its own creation under its Idempotency-Key, which Projects answers with the
        job that key created, if any.
        """
        if spec.reference is not None:
            for client_id in dict.fromkeys(filter(None, [earlier_client, spec.client_id])):
                for job in await backend.jobs_of_client(company, client_id):
                    if job.reference == spec.reference:
                        return job
            return None
        async with self.db.transaction() as session:
            links = await JobLinkRepository(session).for_contact(
                company=company, contact_id=spec.client_id
            )
        taken = {link.xero_job_id for link in links if link.xero_job_id}
        rivals = [
            link.request_id
            for link in links
            if link.xero_job_id is None and link.request_id != request_id
        ]
        for rival in rivals:
            if await self._job_name_for(company, rival) == spec.name:
                log.info("outbound.adoption_ambiguous", company=company, request=request_id)
                return None
        for job in await backend.jobs_of_client(company, spec.client_id):
            if job.name == spec.name and job.job_id not in taken:
                return job
        return None

    async def _job_name_for(self, company: CompanyId, request_id: str) -> str | None:
        request = await self.crm.get_request(company=company, request_id=request_id)
        if request is None:
            return None
        client = await self.crm.get_client(company=company, client_id=request.client_id)
        service = await self.crm.get_service(company=company, service_id=request.service_id)
        if client is None or service is None:
            return None
        return job_name(service.name, client.full_name)

    async def _client_for(
        self, company: CompanyId, backend: JobBackend, client: CrmPerson, *, auto_create: bool
    ) -> str:
        """The CRM client's Xero client (an Accounting contact, or an XPM client): the
        mapping, else the one found by an exact match, else a new one."""
        async with self.db.transaction() as session:
            mapping = await ContactMappingRepository(session).for_client(
                company=company, client_id=client.user_id
            )
        if mapping is not None:
            return mapping.xero_contact_id
        # One resolution per client at a time, in this process and (PostgreSQL) across
        # workers: XPM honours no Idempotency-Key, so two workers would make two clients.
        async with (
            self._client_locks((company, client.user_id)),
            self.db.exclusive(f"client:{company}:{client.user_id}"),
        ):
            async with self.db.transaction() as session:
                mapping = await ContactMappingRepository(session).for_client(
                    company=company, client_id=client.user_id
                )
            if mapping is not None:
                return mapping.xero_contact_id
            found = await backend.find_client(company, name=client.full_name, email=client.email)
            auto_created = False
            if found is None:
                if not auto_create:
                    raise PermanentError(
                        f"client {client.full_name} has no Xero client and this practice does "
                        "not create them automatically: map the client first"
                    )
                found = await backend.create_client(
                    company,
                    NewClient(
                        name=client.full_name,
                        email=client.email,
                        first_name=client.first_name,
                        last_name=client.last_name,
                        phone=client.phone,
                        reference=client.user_id,
                    ),
                )
                auto_created = True
            async with self.db.transaction() as session:
                await ContactMappingRepository(session).save(
                    company=company,
                    client_id=client.user_id,
                    contact_id=found.client_id,
                    contact_name=found.name,
                    auto_created=auto_created,
                    now=self.clock.now(),
                )
            return found.client_id

    # -- status --------------------------------------------------------------------------------

    async def set_job_state(self, context: TaskContext) -> dict[str, Any]:
        task = context.task
        company = task.company
        request_id = str(task.payload["request_id"])
        state = str(task.payload["state"])
        request = await self._request(company, request_id)
        async with self.db.transaction() as session:
            practice = await SettingsRepository(session).practice(company=company)
            link = await self._linked(session, company, request_id)
            job_id, number, known = link.xero_job_id, link.xero_job_number, link_view(link)
        assert job_id is not None
        mapping = practice.mapping
        if mapping.crm_class(request.status) is not mapping.xero_class(state):
            # The CRM moved on since this task was planned; its own task carries the new state.
            return {"skipped": f"the request is {request.status} now"}
        if known.xero_known(state):
            await self._mark_synced(company, request, state, job_id, number)
            return {"skipped": f"Xero already has {state}"}
        async with self.db.transaction() as session:
            # Written before the call: if its answer is lost, Xero may have it all the same
            # (see syncd.domain.statuses), and seeing it later must read as an echo.
            link = await self._link(session, company, request_id, lock=True)
            link.xero_status_written = state
            link.version += 1
            link.updated_at = self.clock.now()
        backend = self.backends.of(practice.backend)
        try:
            await backend.set_state(
                company, job_id=job_id, number=number, state=state, key=task.key
            )
        except NotFound:
            await self._gone(company, request_id)
        await self._mark_synced(company, request, state, job_id, number)
        log.info("outbound.job_state_set", company=company, request=request_id, state=state)
        return {"job_id": job_id, "state": state}

    async def _mark_synced(
        self,
        company: CompanyId,
        request: CrmRequest,
        state: str,
        job_id: str,
        number: str | None,
    ) -> None:
        now = self.clock.now()
        async with self.db.transaction() as session:
            link = await self._link(session, company, request.request_id, lock=True)
            link.xero_status_written = state
            link.xero_status_seen = state
            link.xero_seen_at = now
            link.crm_status_seen = request.status
            link.crm_seen_at = request.updated_at
            link.synced_at = now
            link.last_error = None
            link.version += 1
            link.updated_at = now
        await self._write_back(company, request.request_id, job_id, number, None)

    # -- manager (Practice Manager) --------------------------------------------------------------

    async def set_job_manager(self, context: TaskContext) -> dict[str, Any]:
        """The request's accountant's staff member becomes the job's manager: after creation
        and after a reassignment. An accountant not mapped to staff leaves the job without one
        (the result says why; reconciliation reports `staff_not_mapped`)."""
        task = context.task
        company = task.company
        request = await self._request(company, str(task.payload["request_id"]))
        accountant = request.accountant_id
        async with self.db.transaction() as session:
            practice = await SettingsRepository(session).practice(company=company)
            link = await self._linked(session, company, request.request_id)
            mapped = (
                await StaffMappingRepository(session).for_user(company=company, user_id=accountant)
                if accountant
                else None
            )
            job_id, number, seen = link.xero_job_id, link.xero_job_number, link.xero_manager_seen
        assert job_id is not None
        if not practice.capabilities.managers:
            return {"skipped": f"{practice.backend.label} jobs have no manager"}
        if accountant is None:
            return {"skipped": "the request has no accountant"}
        if mapped is None:
            await self._record_manager(company, request.request_id, accountant)
            return {
                "job_id": job_id,
                "manager": f"not assigned: accountant {accountant} is not mapped to a "
                f"{practice.backend.label} staff member (map them under Staff)",
            }
        staff_id = mapped.xero_staff_id
        if seen == staff_id:
            await self._record_manager(
                company, request.request_id, accountant, asked=staff_id, confirmed=True
            )
            return {"skipped": f"{mapped.xero_staff_name or staff_id} is already the manager"}
        # Recorded before the call, like a state write: a lost answer then reads as an echo.
        await self._record_manager(company, request.request_id, accountant, asked=staff_id)
        backend = self.backends.of(practice.backend)
        try:
            await backend.set_manager(
                company,
                job_id=job_id,
                number=number,
                staff_id=staff_id,
                replace=seen is not None,
                key=task.key,
            )
        except NotFound:
            await self._gone(company, request.request_id)
        await self._record_manager(
            company, request.request_id, accountant, asked=staff_id, confirmed=True
        )
        log.info(
            "outbound.job_manager_set", company=company, request=request.request_id, staff=staff_id
        )
        return {"job_id": job_id, "manager": mapped.xero_staff_name or staff_id}

    async def _record_manager(
        self,
        company: CompanyId,
        request_id: str,
        accountant: str,
        *,
        asked: str | None = None,
        confirmed: bool = False,
    ) -> None:
        """The accountant is handled; `asked`: the staff member syncd asked XPM for;
        `confirmed`: XPM has them now."""
        async with self.db.transaction() as session:
            link = await self._link(session, company, request_id, lock=True)
            link.manager_written = accountant
            if asked is not None:
                link.xero_manager_written = asked
                if confirmed:
                    link.xero_manager_seen = asked
            link.version += 1
            link.updated_at = self.clock.now()

    # -- contacts ------------------------------------------------------------------------------

    async def sync_contact(self, context: TaskContext) -> dict[str, Any]:
        company = context.task.company
        client_id = str(context.task.payload["client_id"])
        client = await self.crm.get_client(company=company, client_id=client_id)
        async with self.db.transaction() as session:
            practice = await SettingsRepository(session).practice(company=company)
            mapping = await ContactMappingRepository(session).for_client(
                company=company, client_id=client_id
            )
        if client is None or mapping is None:
            return {"skipped": "the client is gone or not mapped"}
        backend = self.backends.of(practice.backend)
        try:
            current = await backend.get_client(company, mapping.xero_contact_id)
        except NotFound:
            raise PermanentError("the mapped Xero client no longer exists") from None
        if current.name == client.full_name and (current.email or "") == (client.email or ""):
            updated = current
        else:
            updated = await backend.update_client(
                company,
                current.client_id,
                name=client.full_name,
                email=client.email,
                key=context.task.key,
            )
        async with self.db.transaction() as session:
            mapping = await ContactMappingRepository(session).for_client(
                company=company, client_id=client_id
            )
            if mapping is not None:
                mapping.xero_contact_name = updated.name
                mapping.updated_at = self.clock.now()
        return {"contact_id": updated.client_id, "name": updated.name}

    # -- manual sync ---------------------------------------------------------------------------

    async def sync_request(self, context: TaskContext) -> dict[str, Any]:
        """ "Sync now": make Xero match the request, checking Xero's actual job, not the link."""
        company = context.task.company
        request = await self._request(company, str(context.task.payload["request_id"]))
        async with self.db.transaction() as session:
            practice = await SettingsRepository(session).practice(company=company)
            link = await JobLinkRepository(session).for_request(
                company=company, request_id=request.request_id
            )
            job_id = link.xero_job_id if link else None
            number = link.xero_job_number if link else None
        mapping = practice.mapping
        if job_id is None:
            if mapping.crm_class(request.status) is not StatusClass.OPEN:
                return {"skipped": f"the request is {request.status}: no job needed"}
            return {"created": await self.create_job(context)}
        backend = self.backends.of(practice.backend)
        try:
            job = await backend.job(company, job_id=job_id, number=number)
        except NotFound:
            await self._gone(company, request.request_id)
        target = mapping.xero_state_for(request.status)
        in_class = mapping.xero_class(job.state) is mapping.crm_class(request.status)
        if target is None or in_class or same_state(job.state, target):
            await self._mark_synced(company, request, job.state, job_id, job.number)
            return {"in_sync": True, "job_id": job_id, "state": job.state}
        await backend.set_state(
            company, job_id=job_id, number=job.number, state=target, key=context.task.key
        )
        await self._mark_synced(company, request, target, job_id, job.number)
        return {"job_id": job_id, "state": target}

    # -- shared --------------------------------------------------------------------------------

    async def _request(self, company: CompanyId, request_id: str) -> CrmRequest:
        request = await self.crm.get_request(company=company, request_id=request_id)
        if request is None:
            raise PermanentError(f"request {request_id} is not in the CRM (for this practice)")
        return request

    async def _link(
        self, session: Any, company: CompanyId, request_id: str, *, lock: bool = False
    ) -> JobLink:
        """The request's link, created pending if it does not exist yet (before any call)."""
        links = JobLinkRepository(session)
        link = await links.for_request(company=company, request_id=request_id, lock=lock)
        if link is None:
            link = await links.create_pending(
                company=company, request_id=request_id, now=self.clock.now()
            )
        return link

    async def _linked(self, session: Any, company: CompanyId, request_id: str) -> JobLink:
        """The request's link with a job; a job still being created is waited for."""
        link = await JobLinkRepository(session).for_request(company=company, request_id=request_id)
        if link is None or link.xero_job_id is None:
            creating = await TaskRepository(session).unfinished(
                company=company, order_key=f"request:{request_id}", kind=CREATE_JOB
            )
            if creating:
                raise TransientError("the job is still being created")
            raise PermanentError("the request has no Xero job to update")
        return link

    async def _gone(self, company: CompanyId, request_id: str) -> NoReturn:
        """Xero says the linked job no longer exists: the link says so (reconciliation then
        reports `job_missing_in_xero` and offers to recreate it) and the task ends."""
        async with self.db.transaction() as session:
            link = await self._link(session, company, request_id, lock=True)
            link.state = "missing"
            link.version += 1
            link.updated_at = self.clock.now()
        raise PermanentError(
            "the linked job no longer exists in Xero; reconcile to recreate it or relink"
        )

    async def _write_back(
        self,
        company: CompanyId,
        request_id: str,
        job_id: str | None,
        number: str | None,
        error: str | None,
    ) -> None:
        await self.crm.write_back(
            company=company,
            request_id=request_id,
            job_id=job_id,
            job_number=number,
            synced_at=self.clock.now() if error is None else None,
            error=error,
        )

    async def record_dead(self, task: ClaimedTask, reason: str) -> None:
        """A task died: say so on the request (xero_sync_error) and on its link."""
        request_id = task.payload.get("request_id")
        if not isinstance(request_id, str):
            return
        async with self.db.transaction() as session:
            link = await JobLinkRepository(session).for_request(
                company=task.company, request_id=request_id
            )
            if link is not None:
                link.last_error = reason[:2000]
                link.updated_at = self.clock.now()
            job_id = link.xero_job_id if link else None
            number = link.xero_job_number if link else None
        await self._write_back(task.company, request_id, job_id, number, reason[:2000])
