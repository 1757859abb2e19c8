"""The Practice Manager part of the sandbox's world: job templates, staff, categories, job states,
clients and jobs of PRACTICEMANAGER tenants, changed as an XPM user or the API would.

A mixin of `SandboxState`, which provides `tenant`, `new_id` and `clock`. Xero sends no webhooks
for Practice Manager (xero-facts 5.1), so nothing here queues one. Imports only the sandbox's
models and the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import Enum

from syncd.clock import Clock
from syncd.sandbox.models import (
    Category,
    ClientContact,
    Job,
    JobState,
    PracticeClient,
    SandboxError,
    Tenant,
    UnknownEntity,
)


class Unset(Enum):
    """Leave as is, where None already means clear."""

    UNSET = "unset"


UNSET = Unset.UNSET


class PracticeWorld:
    """Practice Manager methods of `SandboxState`. Refusals are `SandboxError`s worded so the
    API can answer them as XPM's ErrorDescription; unknown jobs and clients `UnknownEntity`s
    saying "… not found"."""

    clock: Clock
    # The last job number handed out, per tenant: deleted jobs' numbers are never reused.
    job_sequence: dict[str, int]

    def tenant(self, tenant_id: str) -> Tenant:
        raise NotImplementedError

    def new_id(self) -> str:
        raise NotImplementedError

    def practice(self, tenant_id: str) -> Tenant:
        """The tenant, which must be a PRACTICEMANAGER one."""
        tenant = self.tenant(tenant_id)
        if tenant.tenant_type != "PRACTICEMANAGER":
            raise SandboxError(
                f"tenant {tenant.tenant_id} is {tenant.tenant_type}, not PRACTICEMANAGER"
            )
        return tenant

    # -- lists ----------------------------------------------------------------------------

    def add_template(self, tenant_id: str, name: str) -> dict[str, str]:
        """A Practice Manager job template (`UUID`, `Name`) of a PRACTICEMANAGER tenant."""
        tenant = self.practice(tenant_id)
        if not name.strip():
            raise SandboxError("template name must not be empty")
        template = {"UUID": self.new_id(), "Name": name.strip()}
        tenant.templates.append(template)
        return template

    def add_staff(self, tenant_id: str, name: str, email: str) -> dict[str, str]:
        """A Practice Manager staff member (`UUID`, `Name`, `Email`) of a PRACTICEMANAGER tenant
        (Projects users are `add_user`)."""
        tenant = self.practice(tenant_id)
        if not name.strip() or not email.strip():
            raise SandboxError("staff name and email must not be empty")
        if "@" not in email:
            raise SandboxError(f"staff email must be an email address, not {email!r}")
        member = {"UUID": self.new_id(), "Name": name.strip(), "Email": email.strip()}
        tenant.staff.append(member)
        return member

    def add_category(self, tenant_id: str, name: str) -> Category:
        """A job category of the practice."""
        tenant = self.practice(tenant_id)
        if not name.strip():
            raise SandboxError("category name must not be empty")
        category = Category(uuid=self.new_id(), name=name.strip())
        tenant.categories.append(category)
        return category

    def set_job_states(self, tenant_id: str, states: Sequence[JobState]) -> list[JobState]:
        """Replace the practice's job states, as its admin would. New jobs take the first, so
        it must be open; a code a job is in cannot go (XPM's admin keeps states in use)."""
        tenant = self.practice(tenant_id)
        if not states:
            raise SandboxError("a practice needs at least one job state")
        codes = [state.code for state in states]
        if any(not code.strip() or code != code.strip() for code in codes):
            raise SandboxError("job state codes must be non-empty, without surrounding spaces")
        if len(set(codes)) != len(codes):
            raise SandboxError("job state codes must be unique")
        if states[0].completed:
            raise SandboxError(f"the first job state ({codes[0]}) is new jobs' and must be open")
        for job in tenant.jobs.values():
            if job.state not in codes:
                raise SandboxError(f"job {job.number} is in state {job.state!r}: keep that state")
        tenant.job_states[:] = list(states)
        return list(tenant.job_states)

    # -- clients --------------------------------------------------------------------------

    def add_client(
        self,
        tenant_id: str,
        name: str,
        email: str | None = None,
        *,
        phone: str | None = None,
        contacts: Sequence[ClientContact] = (),
    ) -> PracticeClient:
        """A client, as `client.api/add` or an XPM user makes one; each contact gets a UUID
        here (whatever `contact_uuid` it came with)."""
        tenant = self.practice(tenant_id)
        if not name.strip():
            raise SandboxError("Client Name is required")
        client = PracticeClient(
            uuid=self.new_id(),
            name=name.strip(),
            email=_blank_none(email),
            phone=_blank_none(phone),
            contacts=tuple(replace(c, contact_uuid=self.new_id()) for c in contacts),
        )
        tenant.clients[client.uuid] = client
        return client

    def client(self, tenant_id: str, client_uuid: str) -> PracticeClient:
        """A client that is not deleted."""
        found = self.practice(tenant_id).clients.get(client_uuid.strip().lower())
        if found is None or found.deleted:
            raise UnknownEntity(f"Client {client_uuid} not found")
        return found

    def update_client(
        self, tenant_id: str, client_uuid: str, *, name: str, email: str | Unset | None = UNSET
    ) -> PracticeClient:
        """`client.api/update`: a new name and, when given, email (None or "": none)."""
        current = self.client(tenant_id, client_uuid)
        if not name.strip():
            raise SandboxError("Client Name is required")
        changed = replace(
            current,
            name=name.strip(),
            email=current.email if isinstance(email, Unset) else _blank_none(email),
        )
        self.practice(tenant_id).clients[changed.uuid] = changed
        return changed

    def archive_client(self, tenant_id: str, client_uuid: str) -> PracticeClient:
        """Archive a client as an XPM user would: still listed and found, flagged IsArchived."""
        archived = replace(self.client(tenant_id, client_uuid), archived=True)
        self.practice(tenant_id).clients[archived.uuid] = archived
        return archived

    def delete_client(self, tenant_id: str, client_uuid: str) -> PracticeClient:
        """Delete a client as an XPM user would: no client call finds it any more."""
        deleted = replace(self.client(tenant_id, client_uuid), deleted=True)
        self.practice(tenant_id).clients[deleted.uuid] = deleted
        return deleted

    def search_clients(self, tenant_id: str, query: str) -> list[PracticeClient]:
        """`client.api/search`: clients (archived too, not deleted) whose name, email or a
        contact's email contains `query`, in any letter case."""
        wanted = query.strip().casefold()
        if not wanted:
            raise SandboxError("query is required")

        def matches(client: PracticeClient) -> bool:
            emails = [client.email, *(contact.email for contact in client.contacts)]
            texts = [client.name, *(e for e in emails if e)]
            return any(wanted in text.casefold() for text in texts)

        return [
            c for c in self.practice(tenant_id).clients.values() if not c.deleted and matches(c)
        ]

    # -- jobs -----------------------------------------------------------------------------

    def add_job(
        self,
        tenant_id: str,
        *,
        client_uuid: str,
        name: str,
        description: str,
        start_date: date,
        due_date: date,
        client_order_number: str | None = None,
        template_uuid: str | None = None,
        category_uuid: str | None = None,
        budget: Decimal | None = None,
    ) -> Job:
        """Create a job as `job.api/add` would: numbered J000001, J000002, … per practice, in
        the practice's first job state."""
        tenant = self.practice(tenant_id)
        if not name.strip():
            raise SandboxError("Job Name is required")
        if not description.strip():
            raise SandboxError("Job Description is required")
        client = tenant.clients.get(client_uuid.strip().lower())
        if client is None or client.deleted:
            raise SandboxError(f"Invalid ClientUUID {client_uuid}: no such client")
        if due_date < start_date:
            raise SandboxError("DueDate must not be before StartDate")
        template = _known(template_uuid, {t["UUID"] for t in tenant.templates}, "TemplateUUID")
        category = _known(category_uuid, {c.uuid for c in tenant.categories}, "CategoryUUID")
        number = self.job_sequence.get(tenant.tenant_id, 0) + 1
        job = Job(
            number=f"J{number:06d}",
            uuid=self.new_id(),
            name=name.strip(),
            description=description.strip(),
            client_uuid=client.uuid,
            client_order_number=_blank_none(client_order_number),
            state=tenant.job_states[0].code,
            start_date=start_date,
            due_date=due_date,
            budget=_budget(budget),
            template_uuid=template,
            category_uuid=category,
            created_at=self.clock.now(),
        )
        self.job_sequence[tenant.tenant_id] = number
        tenant.jobs[job.number] = job
        return job

    def job(self, tenant_id: str, number: str) -> Job:
        """A job by its number (any letter case); deleted jobs are not found."""
        found = self.practice(tenant_id).jobs.get(number.strip().upper())
        if found is None:
            raise UnknownEntity(f"Job {number} not found")
        return found

    def update_job(
        self,
        tenant_id: str,
        number: str,
        *,
        state: str | Unset = UNSET,
        due_date: date | Unset = UNSET,
        manager_uuid: str | Unset | None = UNSET,
    ) -> Job:
        """Change a job's state, due date or manager (None: no manager) as an XPM user or the
        API would. The state must be one of the practice's codes, exactly; entering a completed
        state sets CompletedDate (today), leaving one clears it."""
        tenant = self.practice(tenant_id)
        job = self.job(tenant_id, number)
        if not isinstance(state, Unset):
            job = _moved(tenant, job, state, self.clock.now().date())
        if not isinstance(due_date, Unset):
            if due_date < job.start_date:
                raise SandboxError("DueDate must not be before StartDate")
            job = replace(job, due_date=due_date)
        if not isinstance(manager_uuid, Unset):
            if manager_uuid is not None:
                manager_uuid = manager_uuid.strip().lower()
                if manager_uuid not in {s["UUID"] for s in tenant.staff}:
                    raise SandboxError(f"Invalid staff UUID {manager_uuid}: no such staff member")
            job = replace(job, manager_uuid=manager_uuid)
        tenant.jobs[job.number] = job
        return job

    def delete_job(self, tenant_id: str, number: str) -> None:
        """Delete a job as an XPM user would: no call finds it any more."""
        job = self.job(tenant_id, number)
        del self.practice(tenant_id).jobs[job.number]

    def current_jobs(self, tenant_id: str) -> list[Job]:
        """`job.api/current`: jobs not in a completed state."""
        tenant = self.practice(tenant_id)
        completed = {s.code for s in tenant.job_states if s.completed}
        return [job for job in tenant.jobs.values() if job.state not in completed]

    def client_jobs(self, tenant_id: str, client_uuid: str) -> list[Job]:
        """`job.api/client/{uuid}`: every job of a (not deleted) client."""
        client = self.client(tenant_id, client_uuid)
        return [j for j in self.practice(tenant_id).jobs.values() if j.client_uuid == client.uuid]


def _moved(tenant: Tenant, job: Job, code: str, today: date) -> Job:
    states = {s.code: s for s in tenant.job_states}
    target = states.get(code)
    if target is None:
        raise SandboxError(
            f"Invalid state {code!r}: the practice's job states are {', '.join(states)}"
        )
    was_completed = states[job.state].completed if job.state in states else False
    if target.completed and not was_completed:
        return replace(job, state=code, completed_date=today)
    if not target.completed:
        return replace(job, state=code, completed_date=None)
    return replace(job, state=code)


def _known(value: str | None, known: set[str], element: str) -> str | None:
    wanted = _blank_none(value)
    if wanted is None:
        return None
    if wanted.lower() not in known:
        kind = element.removesuffix("UUID").lower()
        raise SandboxError(f"Invalid {element} {wanted}: no such {kind}")
    return wanted.lower()


def _budget(value: Decimal | None) -> Decimal:
    if value is None:
        return Decimal("0.00")
    try:
        if not isinstance(value, Decimal) or not value.is_finite():
            raise InvalidOperation
        return value.quantize(Decimal("0.01"))
    except InvalidOperation:
        raise SandboxError(f"Budget must be a number, not {value!r}") from None


def _blank_none(value: str | None) -> str | None:
    return value.strip() if value is not None and value.strip() else None
