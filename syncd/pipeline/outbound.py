"""Outbound task handlers: what syncd writes to Xero on the CRM's behalf.

Each handler is idempotent end to end. Job creation writes the link (pending) before calling
Xero, calls with an Idempotency-Key derived from the task, and when resumed after a crash first
looks for the job an earlier attempt may have created (same contact, same name). Writes re-read
the CRM first, so a task that a later change made pointless does nothing. The result, or the
error that killed the task, is written back to the CRM request.
"""

from __future__ import annotations

from typing import Any

from syncd.clock import Clock
from syncd.crm.port import CrmPerson, CrmPort, CrmRequest
from syncd.domain.errors import NotFound, PermanentError, TransientError
from syncd.domain.ids import CompanyId
from syncd.domain.naming import job_name, project_number
from syncd.domain.statuses import StatusClass
from syncd.domain.sync_settings import SyncSettings
from syncd.domain.tasks import CREATE_JOB, SET_JOB_STATE, SYNC_CONTACT, SYNC_REQUEST
from syncd.locks import KeyedLocks
from syncd.logs import get_logger
from syncd.pipeline.inbound import link_view
from syncd.pipeline.outbox import ClaimedTask, TaskRepository
from syncd.pipeline.planner import plan
from syncd.pipeline.worker import TaskContext, TaskHandler
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import ContactMappingRepository
from syncd.store.models import JobLink
from syncd.store.settings import SettingsRepository
from syncd.xero.contacts import Contact, ContactsApi
from syncd.xero.projects import Project, ProjectsApi, ProjectStatus

log = get_logger("syncd.outbound")

PROJECT_STATES: frozenset[str] = frozenset({"INPROGRESS", "CLOSED"})


class Outbound:
    def __init__(
        self,
        *,
        db: Database,
        crm: CrmPort,
        projects: ProjectsApi,
        contacts: ContactsApi,
        clock: Clock,
    ) -> None:
        self.db = db
        self.crm = crm
        self.projects = projects
        self.contacts = contacts
        self.clock = clock
        # One contact resolution per client at a time: a client's second job, started while
        # the first is still finding or creating the contact, waits and reads the mapping
        # instead of spending its own look-up and create calls.
        self._client_locks: KeyedLocks[tuple[CompanyId, str]] = KeyedLocks()

    def handlers(self) -> dict[str, TaskHandler]:
        return {
            CREATE_JOB: self.create_job,
            SET_JOB_STATE: self.set_job_state,
            SYNC_CONTACT: self.sync_contact,
            SYNC_REQUEST: self.sync_request,
        }

    # -- job creation ------------------------------------------------------------------------

    async def create_job(self, context: TaskContext) -> dict[str, Any]:
        task = context.task
        company = task.company
        request = await self._request(company, str(task.payload["request_id"]))
        async with self.db.transaction() as session:
            practice = await SettingsRepository(session).current(company=company)
            link = await self._link(session, company, request.request_id)
            if link.xero_job_id is not None:
                job_id, number = link.xero_job_id, link.xero_job_number
        if link.xero_job_id is not None:
            await self._write_back(company, request.request_id, job_id, number, None)
            return {"skipped": "the job exists", "job_id": job_id}
        if practice.status_mapping().crm_class(request.status) is not StatusClass.OPEN:
            return {"skipped": f"the request is {request.status} now: no job needed"}
        client = await self.crm.get_client(company=company, client_id=request.client_id)
        service = await self.crm.get_service(company=company, service_id=request.service_id)
        if client is None or service is None:
            raise PermanentError("the request's client or service no longer exists in the CRM")
        contact_id = await self._contact_for(
            company, client, auto_create=practice.auto_create_contacts
        )
        name = job_name(service.name, client.full_name)
        async with self.db.transaction() as session:
            # Recorded before the call, so a retry of another request for this contact knows
            # this one may have created a job too (see _existing_project).
            link = await self._link(session, company, request.request_id, lock=True)
            link.xero_contact_id = contact_id
        # Only a task that was claimed before can have created the job already (its answer
        # lost, or its worker killed); a first attempt skips the lookup and its call.
        project = None
        if task.attempts > 1:
            project = await self._existing_project(company, contact_id, name, request.request_id)
        if project is None:
            project = await self.projects.create(
                company,
                contact_id=contact_id,
                name=name,
                deadline=request.due_date,
                estimate=service.base_price,
                idempotency_key=task.key,
            )
        number = project_number(project.project_id)
        now = self.clock.now()
        async with self.db.transaction() as session:
            link = await self._link(session, company, request.request_id, lock=True)
            link.state = "linked"
            link.xero_job_id = project.project_id
            link.xero_job_number = number
            link.xero_contact_id = contact_id
            link.xero_status_seen = project.status
            link.xero_status_written = project.status
            link.xero_seen_at = now
            link.crm_status_seen = request.status
            link.crm_seen_at = request.updated_at
            link.manager_written = request.accountant_id
            link.synced_at = now
            link.last_error = None
            link.version += 1
            link.updated_at = now
        await self._write_back(company, request.request_id, project.project_id, number, None)
        await self._catch_up(company, request, practice)
        log.info(
            "outbound.job_created",
            company=company,
            request=request.request_id,
            job=project.project_id,
            name=name,
        )
        return {"job_id": project.project_id, "job_number": number, "contact_id": contact_id}

    async def _catch_up(
        self, company: CompanyId, before: CrmRequest, practice: SyncSettings
    ) -> None:
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
                settings=practice,
                now=self.clock.now(),
            )

    async def _existing_project(
        self, company: CompanyId, contact_id: str, name: str, request_id: str
    ) -> Project | None:
        """A project an earlier attempt created (answer lost, worker killed): same contact and
        name, and not linked to another request.

        When another unlinked request would give its job the same name (one client, one
        service, twice), a match could be that request's job: then nothing is adopted and the
        caller re-sends its own creation under its Idempotency-Key, which Xero answers with the
        job that key created, if any.
        """
        async with self.db.transaction() as session:
            links = await JobLinkRepository(session).for_contact(
                company=company, contact_id=contact_id
            )
        taken = {link.xero_job_id for link in links if link.xero_job_id}
        rivals = [
            link.request_id
            for link in links
            if link.xero_job_id is None and link.request_id != request_id
        ]
        for rival in rivals:
            if await self._job_name_for(company, rival) == name:
                log.info("outbound.adoption_ambiguous", company=company, request=request_id)
                return None
        async for project in self.projects.list_all(company, contact_id=contact_id):
            if project.name == name and project.project_id not in taken:
                return project
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

    async def _contact_for(
        self, company: CompanyId, client: CrmPerson, *, auto_create: bool
    ) -> str:
        """The client's Xero contact: the mapping, else one found by email, else a new one."""
        async with self._client_locks((company, client.user_id)):
            return await self._resolve_contact(company, client, auto_create=auto_create)

    async def _resolve_contact(
        self, company: CompanyId, client: CrmPerson, *, auto_create: bool
    ) -> str:
        async with self.db.transaction() as session:
            mapping = await ContactMappingRepository(session).for_client(
                company=company, client_id=client.user_id
            )
        if mapping is not None:
            return mapping.xero_contact_id
        found = await self.contacts.find_by_email(company, client.email) if client.email else None
        auto_created = False
        if found is None:
            if not auto_create:
                raise PermanentError(
                    f"client {client.full_name} has no Xero contact and this practice does not "
                    "create contacts automatically: map the client first"
                )
            found = await self._create_contact(company, client)
            auto_created = True
        async with self.db.transaction() as session:
            await ContactMappingRepository(session).save(
                company=company,
                client_id=client.user_id,
                contact_id=found.contact_id,
                contact_name=found.name,
                auto_created=auto_created,
                now=self.clock.now(),
            )
        return found.contact_id

    async def _create_contact(self, company: CompanyId, client: CrmPerson) -> Contact:
        # One key per client: two jobs for the same new client create one contact.
        try:
            return await self.contacts.create(
                company,
                name=client.full_name,
                email=client.email,
                first_name=client.first_name,
                last_name=client.last_name,
                contact_number=client.user_id[:50],
                idempotency_key=f"contact:{client.user_id}",
            )
        except PermanentError as exc:
            if "already" not in str(exc).lower():
                raise
        # Xero refuses a second active contact with the same name: use that one.
        existing = await self.contacts.find_by_name(company, client.full_name)
        if existing is None:
            raise PermanentError(f"Xero refused the contact {client.full_name!r}")
        return existing

    # -- status --------------------------------------------------------------------------------

    async def set_job_state(self, context: TaskContext) -> dict[str, Any]:
        task = context.task
        company = task.company
        request_id = str(task.payload["request_id"])
        state = str(task.payload["state"]).upper()
        if state not in PROJECT_STATES:
            raise PermanentError(f"Xero Projects has no state {state!r}")
        request = await self._request(company, request_id)
        async with self.db.transaction() as session:
            practice = await SettingsRepository(session).current(company=company)
            link = await JobLinkRepository(session).for_request(
                company=company, request_id=request_id
            )
            if link is None or link.xero_job_id is None:
                creating = await TaskRepository(session).unfinished(
                    company=company, order_key=f"request:{request_id}", kind=CREATE_JOB
                )
                if creating:
                    raise TransientError("the job is still being created")
                raise PermanentError("the request has no Xero job to update")
            job_id, number, known = link.xero_job_id, link.xero_job_number, link_view(link)
        mapping = practice.status_mapping()
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
        status: ProjectStatus = "CLOSED" if state == "CLOSED" else "INPROGRESS"
        await self.projects.set_status(company, job_id, status, idempotency_key=task.key)
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

    # -- contacts ------------------------------------------------------------------------------

    async def sync_contact(self, context: TaskContext) -> dict[str, Any]:
        company = context.task.company
        client_id = str(context.task.payload["client_id"])
        client = await self.crm.get_client(company=company, client_id=client_id)
        async with self.db.transaction() as session:
            mapping = await ContactMappingRepository(session).for_client(
                company=company, client_id=client_id
            )
        if client is None or mapping is None:
            return {"skipped": "the client is gone or not mapped"}
        try:
            contact = await self.contacts.get(company, mapping.xero_contact_id)
        except NotFound:
            raise PermanentError("the mapped Xero contact no longer exists") from None
        if contact.name == client.full_name and (contact.email or "") == (client.email or ""):
            updated = contact
        else:
            updated = await self.contacts.update(
                company,
                contact.contact_id,
                name=client.full_name,
                email=client.email,
                idempotency_key=context.task.key,
            )
        async with self.db.transaction() as session:
            mapping = await ContactMappingRepository(session).for_client(
                company=company, client_id=client_id
            )
            if mapping is not None:
                mapping.xero_contact_name = updated.name
                mapping.updated_at = self.clock.now()
        return {"contact_id": updated.contact_id, "name": updated.name}

    # -- manual sync ---------------------------------------------------------------------------

    async def sync_request(self, context: TaskContext) -> dict[str, Any]:
        """ "Sync now": make Xero match the request, checking Xero's actual job, not the link."""
        company = context.task.company
        request = await self._request(company, str(context.task.payload["request_id"]))
        async with self.db.transaction() as session:
            practice = await SettingsRepository(session).current(company=company)
            link = await JobLinkRepository(session).for_request(
                company=company, request_id=request.request_id
            )
            job_id = link.xero_job_id if link else None
        mapping = practice.status_mapping()
        if job_id is None:
            if mapping.crm_class(request.status) is not StatusClass.OPEN:
                return {"skipped": f"the request is {request.status}: no job needed"}
            return {"created": await self.create_job(context)}
        try:
            project = await self.projects.get(company, job_id)
        except NotFound:
            raise PermanentError(
                "the linked job no longer exists in Xero; reconcile to relink or recreate it"
            ) from None
        target = mapping.xero_state_for(request.status)
        if target is None or mapping.xero_class(project.status) is mapping.crm_class(
            request.status
        ):
            await self._mark_synced(
                company, request, project.status, job_id, project_number(job_id)
            )
            return {"in_sync": True, "job_id": job_id, "state": project.status}
        status: ProjectStatus = "CLOSED" if target == "CLOSED" else "INPROGRESS"
        await self.projects.set_status(company, job_id, status, idempotency_key=context.task.key)
        await self._mark_synced(company, request, target, job_id, project_number(job_id))
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
