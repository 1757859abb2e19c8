"""The job backends behind one small interface: what the pipeline asks of "Xero" for a practice,
whether its connection is Xero Projects (JSON, Accounting contacts as clients) or Practice
Manager (XML, XPM clients, templates, managers, practice-defined states).

`Backends.of(backend)` picks the adapter; the pipeline reads the practice's backend from its
connection (syncd.domain.backends). The adapters only translate: retries, limits and the sync
log belong to XeroHttp and the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Protocol

from syncd.domain.backends import Backend
from syncd.domain.errors import PermanentError
from syncd.domain.ids import CompanyId
from syncd.domain.naming import project_number
from syncd.domain.statuses import state_key
from syncd.xero.contacts import Contact, ContactsApi
from syncd.xero.practice_manager import NewJob, PracticeManagerApi, XpmClient, XpmJob
from syncd.xero.projects import Project, ProjectsApi, ProjectStatus

# XPM requires a due date; a request without one gets this long from the job's start.
UNDATED_JOB_DUE = timedelta(days=30)


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A job as syncd follows it, on either backend."""

    job_id: str  # Projects: projectId; XPM: the job's UUID
    number: str  # XPM: its job number (J000309); Projects: syncd's stand-in (PRJ-…)
    client_id: str | None  # the Accounting contact (Projects) or XPM client
    name: str
    state: str
    due: date | None = None
    manager_id: str | None = None  # XPM staff UUID
    reference: str | None = None  # XPM client order number (syncd's request reference)

    def as_json(self) -> dict[str, str | None]:
        """The job as an inbox event carries it (what `job_from_json` reads back)."""
        return {
            "job_id": self.job_id,
            "number": self.number,
            "client_id": self.client_id,
            "name": self.name,
            "state": self.state,
            "due": self.due.isoformat() if self.due else None,
            "manager_id": self.manager_id,
            "reference": self.reference,
        }


def job_from_json(data: dict[str, object]) -> Job:
    def text(key: str) -> str | None:
        value = data.get(key)
        return str(value) if value is not None else None

    due = text("due")
    return Job(
        job_id=str(data["job_id"]),
        number=str(data["number"]),
        client_id=text("client_id"),
        name=str(data.get("name") or ""),
        state=str(data["state"]),
        due=date.fromisoformat(due) if due else None,
        manager_id=text("manager_id"),
        reference=text("reference"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Client:
    client_id: str
    name: str
    email: str | None
    archived: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """Someone a job can be managed by (XPM staff; Projects users stand in)."""

    staff_id: str
    name: str
    email: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """A template or category: an id and a name."""

    choice_id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """What syncd asks a backend to create."""

    name: str
    description: str
    client_id: str
    start: date
    due: date | None
    budget: Decimal | None
    template_id: str | None = None
    category_id: str | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewClient:
    name: str
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    reference: str  # the CRM client's id


class JobBackend(Protocol):
    backend: Backend

    async def find_client(
        self, company: CompanyId, *, name: str, email: str | None
    ) -> Client | None:
        """The one active client matching exactly (by email, else by name), in one call."""
        ...

    async def create_client(self, company: CompanyId, client: NewClient) -> Client: ...

    async def get_client(self, company: CompanyId, client_id: str) -> Client:
        """NotFound when it no longer exists."""
        ...

    async def update_client(
        self, company: CompanyId, client_id: str, *, name: str, email: str | None, key: str
    ) -> Client: ...

    async def clients(self, company: CompanyId, *, include_archived: bool) -> list[Client]: ...

    async def create_job(self, company: CompanyId, spec: JobSpec, *, key: str) -> Job: ...

    async def jobs_of_client(self, company: CompanyId, client_id: str) -> list[Job]: ...

    async def job(self, company: CompanyId, *, job_id: str, number: str | None) -> Job:
        """One job; NotFound when it was deleted."""
        ...

    async def listing(self, company: CompanyId) -> list[Job]:
        """The poll's listing: every job (Projects) or the current ones (XPM)."""
        ...

    async def set_state(
        self, company: CompanyId, *, job_id: str, number: str | None, state: str, key: str
    ) -> None: ...

    async def set_manager(
        self,
        company: CompanyId,
        *,
        job_id: str,
        number: str | None,
        staff_id: str,
        replace: bool,
        key: str,
    ) -> None: ...

    async def staff(self, company: CompanyId) -> list[Person]: ...

    async def templates(self, company: CompanyId) -> list[Choice] | None:
        """None: the backend has no job templates."""
        ...

    async def categories(self, company: CompanyId) -> list[Choice] | None:
        """None: the backend has no job categories."""
        ...


# -- Xero Projects ------------------------------------------------------------------------------


def _project_job(project: Project) -> Job:
    return Job(
        job_id=project.project_id,
        number=project_number(project.project_id),
        client_id=project.contact_id,
        name=project.name,
        state=project.status,
        due=project.deadline.date() if project.deadline else None,
    )


def _contact_client(contact: Contact) -> Client:
    return Client(
        client_id=contact.contact_id,
        name=contact.name,
        email=contact.email,
        archived=contact.archived,
    )


class ProjectsBackend:
    """Projects for jobs, Accounting contacts for clients, Projects users for staff."""

    backend = Backend.PROJECTS

    def __init__(self, projects: ProjectsApi, contacts: ContactsApi) -> None:
        self.projects = projects
        self.contacts = contacts

    async def find_client(
        self, company: CompanyId, *, name: str, email: str | None
    ) -> Client | None:
        found = await self.contacts.find_by_email(company, email) if email else None
        return _contact_client(found) if found else None

    async def create_client(self, company: CompanyId, client: NewClient) -> Client:
        try:
            created = await self.contacts.create(
                company,
                name=client.name,
                email=client.email,
                first_name=client.first_name,
                last_name=client.last_name,
                contact_number=client.reference[:50],
                # One key per client: two jobs for the same new client create one contact.
                idempotency_key=f"contact:{client.reference}",
            )
            return _contact_client(created)
        except PermanentError as exc:
            if "already" not in str(exc).lower():
                raise
        # Xero refuses a second active contact with the same name: use that one.
        existing = await self.contacts.find_by_name(company, client.name)
        if existing is None:
            raise PermanentError(f"Xero refused the contact {client.name!r}")
        return _contact_client(existing)

    async def get_client(self, company: CompanyId, client_id: str) -> Client:
        return _contact_client(await self.contacts.get(company, client_id))

    async def update_client(
        self, company: CompanyId, client_id: str, *, name: str, email: str | None, key: str
    ) -> Client:
        updated = await self.contacts.update(
            company, client_id, name=name, email=email, idempotency_key=key
        )
        return _contact_client(updated)

    async def clients(self, company: CompanyId, *, include_archived: bool) -> list[Client]:
        listing = self.contacts.list_all(company, include_archived=include_archived)
        return [_contact_client(c) async for c in listing]

    async def create_job(self, company: CompanyId, spec: JobSpec, *, key: str) -> Job:
        project = await self.projects.create(
            company,
            contact_id=spec.client_id,
            name=spec.name,
            deadline=spec.due,
            estimate=spec.budget,
            idempotency_key=key,
        )
        return _project_job(project)

    async def jobs_of_client(self, company: CompanyId, client_id: str) -> list[Job]:
        return [
            _project_job(p) async for p in self.projects.list_all(company, contact_id=client_id)
        ]

    async def job(self, company: CompanyId, *, job_id: str, number: str | None) -> Job:
        return _project_job(await self.projects.get(company, job_id))

    async def listing(self, company: CompanyId) -> list[Job]:
        return [_project_job(p) async for p in self.projects.list_all(company)]

    async def set_state(
        self, company: CompanyId, *, job_id: str, number: str | None, state: str, key: str
    ) -> None:
        status: ProjectStatus
        if state_key(state) == "closed":
            status = "CLOSED"
        elif state_key(state) == "inprogress":
            status = "INPROGRESS"
        else:
            raise PermanentError(f"Xero Projects has no state {state!r}")
        await self.projects.set_status(company, job_id, status, idempotency_key=key)

    async def set_manager(
        self,
        company: CompanyId,
        *,
        job_id: str,
        number: str | None,
        staff_id: str,
        replace: bool,
        key: str,
    ) -> None:
        raise PermanentError("Xero Projects jobs have no manager")

    async def staff(self, company: CompanyId) -> list[Person]:
        users = await self.projects.users(company)
        return [Person(staff_id=u.user_id, name=u.name, email=u.email) for u in users]

    async def templates(self, company: CompanyId) -> list[Choice] | None:
        return None

    async def categories(self, company: CompanyId) -> list[Choice] | None:
        return None


# -- Xero Practice Manager ----------------------------------------------------------------------


def _xpm_job(job: XpmJob) -> Job:
    return Job(
        job_id=job.job_id,
        number=job.number,
        client_id=job.client_id,
        name=job.name,
        state=job.state,
        due=job.due,
        manager_id=job.manager_id,
        reference=job.client_order_number,
    )


def _xpm_client(client: XpmClient) -> Client:
    return Client(
        client_id=client.client_id, name=client.name, email=client.email, archived=client.archived
    )


def _same(a: str | None, b: str | None) -> bool:
    return (
        bool(a and b) and " ".join(str(a).split()).casefold() == " ".join(str(b).split()).casefold()
    )


class PracticeManagerBackend:
    """Practice Manager v3.1: XPM clients, jobs from templates, managers, practice states."""

    backend = Backend.PRACTICE_MANAGER

    def __init__(self, api: PracticeManagerApi) -> None:
        self.api = api

    async def find_client(
        self, company: CompanyId, *, name: str, email: str | None
    ) -> Client | None:
        found = [c for c in await self.api.search_clients(company, email or name) if not c.archived]
        exact = [c for c in found if _same(c.email, email)] if email else []
        if not exact:
            exact = [c for c in found if _same(c.name, name)]
        if len(exact) > 1:
            raise PermanentError(
                f"{len(exact)} Practice Manager clients match {name!r}: map the client by hand"
            )
        return _xpm_client(exact[0]) if exact else None

    async def create_client(self, company: CompanyId, client: NewClient) -> Client:
        created = await self.api.add_client(
            company,
            name=client.name,
            email=client.email,
            phone=client.phone,
            idempotency_key=f"client:{client.reference}",
        )
        return _xpm_client(created)

    async def get_client(self, company: CompanyId, client_id: str) -> Client:
        return _xpm_client(await self.api.client(company, client_id))

    async def update_client(
        self, company: CompanyId, client_id: str, *, name: str, email: str | None, key: str
    ) -> Client:
        updated = await self.api.update_client(
            company, client_id, name=name, email=email, idempotency_key=key
        )
        return _xpm_client(updated)

    async def clients(self, company: CompanyId, *, include_archived: bool) -> list[Client]:
        return [
            _xpm_client(c)
            for c in await self.api.clients(company)
            if include_archived or not c.archived
        ]

    async def create_job(self, company: CompanyId, spec: JobSpec, *, key: str) -> Job:
        job = await self.api.add_job(
            company,
            NewJob(
                name=spec.name,
                description=spec.description,
                client_id=spec.client_id,
                start=spec.start,
                due=spec.due or spec.start + UNDATED_JOB_DUE,
                reference=spec.reference,
                template_id=spec.template_id,
                category_id=spec.category_id,
                budget=spec.budget,
            ),
            idempotency_key=key,
        )
        return _xpm_job(job)

    async def jobs_of_client(self, company: CompanyId, client_id: str) -> list[Job]:
        return [_xpm_job(j) for j in await self.api.client_jobs(company, client_id)]

    async def job(self, company: CompanyId, *, job_id: str, number: str | None) -> Job:
        if not number:
            raise PermanentError(f"the Practice Manager job {job_id} has no job number on record")
        return _xpm_job(await self.api.job(company, number))

    async def listing(self, company: CompanyId) -> list[Job]:
        return [_xpm_job(j) for j in await self.api.current_jobs(company)]

    async def set_state(
        self, company: CompanyId, *, job_id: str, number: str | None, state: str, key: str
    ) -> None:
        if not number:
            raise PermanentError(f"the Practice Manager job {job_id} has no job number on record")
        await self.api.set_state(
            company, number=number, job_id=job_id, state=state, idempotency_key=key
        )

    async def set_manager(
        self,
        company: CompanyId,
        *,
        job_id: str,
        number: str | None,
        staff_id: str,
        replace: bool,
        key: str,
    ) -> None:
        if not number:
            raise PermanentError(f"the Practice Manager job {job_id} has no job number on record")
        await self.api.assign_manager(
            company,
            number=number,
            job_id=job_id,
            manager_id=staff_id,
            replace=replace,
            idempotency_key=key,
        )

    async def staff(self, company: CompanyId) -> list[Person]:
        return [
            Person(staff_id=s.staff_id, name=s.name, email=s.email)
            for s in await self.api.staff(company)
        ]

    async def templates(self, company: CompanyId) -> list[Choice] | None:
        return [
            Choice(choice_id=t.template_id, name=t.name) for t in await self.api.templates(company)
        ]

    async def categories(self, company: CompanyId) -> list[Choice] | None:
        return [
            Choice(choice_id=c.category_id, name=c.name) for c in await self.api.categories(company)
        ]


@dataclass(frozen=True, slots=True)
class Backends:
    projects: ProjectsBackend
    practice_manager: PracticeManagerBackend

    def of(self, backend: Backend) -> JobBackend:
        if backend is Backend.PRACTICE_MANAGER:
            return self.practice_manager
        return self.projects
