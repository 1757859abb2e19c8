"""The Xero side of the convergence test, per job backend: how a Xero user changes or deletes a
practice's job, what the job's state is, and which of syncd's calls wrote to it.

Xero Projects (ORGANISATION tenants): two fixed states, jobs addressed by project id, clients
are Accounting contacts, Xero honours Idempotency-Key. Practice Manager (PRACTICEMANAGER
tenants): the practice's job states (the sandbox's defaults; the test moves jobs only between
the four codes syncd's default mapping classes), jobs addressed by number, XPM clients, staff as
job managers, and no Idempotency-Key: a retried write runs again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from syncd.domain.backends import CAPABILITIES, Backend, default_mapping
from syncd.domain.ids import CompanyId
from syncd.domain.statuses import StatusMapping, same_state
from syncd.sandbox.checks import duplicate_jobs, duplicate_projects
from syncd.sandbox.models import LedgerEntry, UnknownEntity
from syncd.sandbox.state import SandboxState
from syncd.store.mappings import ServiceMappingRepository, StaffMappingRepository
from syncd.store.models import JobLink
from syncd.xero import xml
from tests.harness import XPM_SCOPES

TENANT_NAME = "Harbour & Co"


class ProjectsSide:
    """A practice on Xero Projects."""

    backend = Backend.PROJECTS
    tenant_type = "ORGANISATION"
    api = "/projects.xro/"  # where injected faults hit
    states: tuple[str, ...] = ("INPROGRESS", "CLOSED")
    scopes: tuple[str, ...] | None = None  # the harness's default consent
    mapping: StatusMapping = default_mapping(Backend.PROJECTS)
    lists_closed_jobs = CAPABILITIES[Backend.PROJECTS].lists_closed_jobs

    def __init__(self, sandbox: SandboxState) -> None:
        self.sandbox = sandbox
        self.tenant = sandbox.add_tenant(TENANT_NAME, tenant_type=self.tenant_type).tenant_id

    def add_client(self, n: int) -> tuple[str, str]:
        """A client already in Xero: (its id, its name)."""
        contact = self.sandbox.add_contact(
            self.tenant, f"Client {n}", email=f"client{n}@example.com"
        )
        return contact.contact_id, contact.name

    async def map_practice(
        self,
        session: AsyncSession,
        *,
        company: CompanyId,
        accountant: str,
        service: int,
        now: datetime,
    ) -> None:
        """Projects has no staff or templates to map."""

    @staticmethod
    def job_of(link: JobLink) -> str:
        """How the test addresses the link's job in the sandbox."""
        assert link.xero_job_id is not None
        return link.xero_job_id

    def check_new(self, job: str) -> None:
        assert self.state(job) == "INPROGRESS", f"setup: project {job} is {self.state(job)}"

    def state(self, job: str) -> str | None:
        """The job's state; None once deleted."""
        try:
            return self.sandbox.project(self.tenant, job).status
        except UnknownEntity:
            return None

    def set_state(self, job: str, state: str) -> None:
        self.sandbox.set_project_status(self.tenant, job, state)

    def delete(self, job: str) -> None:
        self.sandbox.delete_project(self.tenant, job)

    def created(self, ledger: Sequence[LedgerEntry]) -> list[LedgerEntry]:
        return [e for e in ledger if e.method == "POST" and e.path.lower().endswith("/projects")]

    def duplicates(self) -> list[list[str]]:
        return [
            [p.project_id for p in group] for group in duplicate_projects(self.sandbox, self.tenant)
        ]

    def saw_write(self, request: httpx.Request, status: int | None) -> None:
        """Projects' writes are counted from the ledger (it names the project)."""

    def writes(self, ledger: Sequence[LedgerEntry], job: str) -> int:
        """PATCHes of the project that Xero applied: not answered with an injected failure, not
        an Idempotency-Key replay (an applied write whose answer was lost counts)."""
        return sum(
            1
            for e in ledger
            if e.method == "PATCH"
            and e.path.lower().endswith(job.lower())
            and e.status is not None
            and e.status < 300
            and not e.replayed
            and e.fault != "fail"
        )


class PracticeManagerSide(ProjectsSide):
    """A practice on Xero Practice Manager, its accountant mapped to a staff member and its
    service to a job template."""

    backend = Backend.PRACTICE_MANAGER
    tenant_type = "PRACTICEMANAGER"
    api = "/practicemanager/3.1/"
    # The codes syncd's default mapping classes: two open, two closed.
    states = ("Planned", "In Progress", "Completed", "Cancelled")
    scopes = tuple(XPM_SCOPES)
    mapping = default_mapping(Backend.PRACTICE_MANAGER)
    lists_closed_jobs = CAPABILITIES[Backend.PRACTICE_MANAGER].lists_closed_jobs

    def __init__(self, sandbox: SandboxState) -> None:
        super().__init__(sandbox)
        self.staff = sandbox.add_staff(self.tenant, "Ann Accountant", "ann@harbour.example")
        self.template = sandbox.add_template(self.tenant, "Tax Return")
        # (job number, Idempotency-Key) of every state write Xero applied, in order.
        self.applied: list[tuple[str, str]] = []

    def add_client(self, n: int) -> tuple[str, str]:
        client = self.sandbox.add_client(self.tenant, f"Client {n}", f"client{n}@example.com")
        return client.uuid, client.name

    async def map_practice(
        self,
        session: AsyncSession,
        *,
        company: CompanyId,
        accountant: str,
        service: int,
        now: datetime,
    ) -> None:
        """The accountant manages the jobs; the service has its template (as an admin maps
        them on the Staff and Services pages)."""
        await StaffMappingRepository(session).save(
            company=company,
            user_id=accountant,
            staff_id=self.staff["UUID"],
            staff_name=self.staff["Name"],
            now=now,
        )
        await ServiceMappingRepository(session).save(
            company=company,
            service_id=service,
            template_id=self.template["UUID"],
            template_name=self.template["Name"],
            now=now,
        )

    @staticmethod
    def job_of(link: JobLink) -> str:
        assert link.xero_job_number is not None
        return link.xero_job_number

    def check_new(self, job: str) -> None:
        found = self.sandbox.job(self.tenant, job)
        assert (found.state, found.manager_uuid, found.template_uuid) == (
            "Planned",
            self.staff["UUID"],
            self.template["UUID"],
        ), f"setup: job {job} is {found}"

    def state(self, job: str) -> str | None:
        try:
            return self.sandbox.job(self.tenant, job).state
        except UnknownEntity:
            return None

    def set_state(self, job: str, state: str) -> None:
        self.sandbox.update_job(self.tenant, job, state=state)

    def delete(self, job: str) -> None:
        self.sandbox.delete_job(self.tenant, job)

    def created(self, ledger: Sequence[LedgerEntry]) -> list[LedgerEntry]:
        return [e for e in ledger if e.method == "POST" and e.path.lower().endswith("/job.api/add")]

    def duplicates(self) -> list[list[str]]:
        return [[j.number for j in group] for group in duplicate_jobs(self.sandbox, self.tenant)]

    def saw_write(self, request: httpx.Request, status: int | None) -> None:
        """Called by the worker's transport right after each write reached the sandbox
        (`status` None: its answer was lost). The path of `PUT job.api/state` does not name the
        job, its body does; Xero applied the write if it was not refused and the job now has
        the state asked for (calls are one at a time, so nothing else moved it meanwhile)."""
        path = request.url.path.lower()
        if request.method != "PUT" or not path.endswith("/job.api/state"):
            return
        if status is not None and status >= 300:
            return
        body = xml.read(request.content)
        number, state = xml.text(body, "ID"), xml.text(body, "State")
        if same_state(self.state(number), state):
            self.applied.append((number.upper(), request.headers.get("idempotency-key", "")))

    def writes(self, ledger: Sequence[LedgerEntry], job: str) -> int:
        """State writes Xero applied to the job, once per task: XPM ignores Idempotency-Key,
        so a task retried after a lost answer or a kill writes again, the same write (what
        Projects answers as a replay)."""
        per_job = Counter(number for number, _ in dict.fromkeys(self.applied))
        return per_job[job.upper()]


SIDES: dict[Backend, type[ProjectsSide]] = {
    Backend.PROJECTS: ProjectsSide,
    Backend.PRACTICE_MANAGER: PracticeManagerSide,
}
