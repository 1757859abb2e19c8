"""Practice Manager end to end, against the sandbox's XPM on both databases: clients found or
created, jobs made from the mapped template with the accountant as manager, the practice's own
states both ways, changes made in XPM reaching the CRM by polling (state, due date, manager,
deletion), idempotent creation without Idempotency-Key, reconciliation with templates, and the
Xero calls each job costs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from syncd.crm.memory import MemoryCrm
from syncd.domain.ids import CompanyId
from syncd.pipeline.changefeed import ChangeFeed
from syncd.sandbox.checks import duplicate_jobs
from syncd.sandbox.models import Job, JobState
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import ContactMappingRepository
from syncd.store.models import JobLink, OutboxTask
from syncd.web.auth import Role
from tests.harness import XPM_SCOPES, Harness, harness

A = CompanyId("company-xpm")
API = "/api/integrations/xero"
XPM = "/practicemanager/3.1/"
DUE = date(2026, 12, 31)


@dataclass
class World:
    tenant: str
    ann: str  # accountant, mapped to staff Ann
    bob: str  # accountant, mapped to staff Bob
    client: str
    service: int
    staff: dict[str, str]  # staff name -> UUID
    template: str
    category: str
    requests: list[str]


@pytest.fixture
def crm() -> MemoryCrm:
    return MemoryCrm()


@pytest.fixture
async def h(db: Database, fernet_key: str, crm: MemoryCrm) -> AsyncIterator[Harness]:
    async with harness(db, fernet_key, crm=crm, xero_scopes=tuple(XPM_SCOPES)) as ready:
        yield ready


def admin(h: Harness) -> dict[str, str]:
    return h.auth(Role.PRACTICE_ADMIN, A)


async def world(
    h: Harness,
    crm: MemoryCrm,
    *,
    requests: int = 2,
    map_staff: bool = True,
    map_service: bool = True,
) -> World:
    """A practice on Practice Manager: two accountants with staff in XPM, one client not yet in
    XPM, a service with a template, a job category; mappings and the category saved through
    the admin API."""
    tenant = await h.connect(A, "Harbour Practice", tenant_type="PRACTICEMANAGER")
    crm.add_company(name="Harbour Practice", company_id=A)
    ann = crm.add_person(
        company=A, role="accountant", email="ann@harbour.example", first_name="Ann", last_name="Lee"
    )
    bob = crm.add_person(
        company=A, role="accountant", email="bob@harbour.example", first_name="Bob", last_name="Ng"
    )
    client = crm.add_person(
        company=A, role="client", email="olivia@example.com", first_name="Olivia", last_name="Chen"
    )
    service = crm.add_service(company=A, name="Individual Tax Return", base_price=Decimal("350"))
    staff = {
        "Ann": h.sandbox.add_staff(tenant, "Ann Lee", "ann@harbour.example")["UUID"],
        "Bob": h.sandbox.add_staff(tenant, "Bob Ng", "bob@harbour.example")["UUID"],
    }
    template = h.sandbox.add_template(tenant, "Individual Tax Return")["UUID"]
    category = h.sandbox.add_category(tenant, "Tax").uuid
    past = datetime.now(UTC) - timedelta(hours=1)
    made = [
        crm.add_request(
            company=A,
            client_id=client,
            service_id=service,
            now=past,
            due_date=DUE,
            description=f"FY26 return {n}",
        )
        for n in range(requests)
    ]
    if map_staff:
        await put(
            h,
            "mappings/staff",
            {
                "mappings": [
                    {"accountant_id": ann, "staff_id": staff["Ann"]},
                    {"accountant_id": bob, "staff_id": staff["Bob"]},
                ]
            },
        )
    if map_service:
        await put(
            h, "mappings/services", {"mappings": [{"service_id": service, "template_id": template}]}
        )
    await put(h, "settings", {"job_category_id": category})
    return World(tenant, ann, bob, client, service, staff, template, category, made)


async def put(h: Harness, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await h.syncd.put(f"{API}/{path}", json=body, headers=admin(h))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def feed(h: Harness, crm: MemoryCrm) -> None:
    await ChangeFeed(db=h.services.db, crm=crm, clock=h.services.clock, settle=timedelta(0)).read(A)
    await h.settle()


async def assign(h: Harness, crm: MemoryCrm, w: World, index: int, who: str | None = None) -> None:
    crm.assign(
        company=A, request_id=w.requests[index], accountant_id=who or w.ann, now=datetime.now(UTC)
    )
    await feed(h, crm)


def jobs(h: Harness, w: World) -> list[Job]:
    return list(h.sandbox.tenant(w.tenant).jobs.values())


def xpm_calls(h: Harness, since: int = 0) -> list[tuple[str, str]]:
    """The XPM calls made since ledger entry `since`, ids cut off: ("GET", "job.api/get/")."""
    calls = []
    for entry in h.sandbox.ledger[since:]:
        if entry.path.startswith(XPM):
            parts = entry.path.removeprefix(XPM).split("/")
            calls.append((entry.method, "/".join(parts[:2]) + ("/" if len(parts) > 2 else "")))
    return calls


async def link_of(h: Harness, request_id: str) -> JobLink:
    async with h.services.db.transaction() as session:
        link = await JobLinkRepository(session).for_request(company=A, request_id=request_id)
    assert link is not None
    return link


async def results(h: Harness, kind: str) -> list[dict[str, Any]]:
    async with h.services.db.transaction() as session:
        rows = (
            (await session.execute(select(OutboxTask).where(OutboxTask.kind == kind)))
            .scalars()
            .all()
        )
    return [row.result or {} for row in rows]


async def test_an_assignment_becomes_a_job_from_the_template_with_its_manager(
    h: Harness, crm: MemoryCrm
) -> None:
    """Assigned → XPM client created (name, email, primary contact) and mapped; job.api/add
    with the name, description, client, dates, budget, template, category and syncd's
    reference; Ann made manager; number and UUID written back; Planned in the link."""
    w = await world(h, crm, requests=1)
    await assign(h, crm, w, 0)
    [job] = jobs(h, w)
    [client] = h.sandbox.tenant(w.tenant).clients.values()
    assert (client.name, client.email) == ("Olivia Chen", "olivia@example.com")
    assert [(c.name, c.is_primary) for c in client.contacts] == [("Olivia Chen", True)]
    assert (job.name, job.description) == ("Individual Tax Return - Olivia Chen", "FY26 return 0")
    assert (job.client_uuid, job.due_date, job.budget) == (client.uuid, DUE, Decimal("350.00"))
    assert job.start_date == datetime.now(UTC).date()
    assert (job.template_uuid, job.category_uuid) == (w.template, w.category)
    assert job.client_order_number == f"syncd:{w.requests[0]}"
    assert (job.state, job.manager_uuid) == ("Planned", w.staff["Ann"])
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None
    assert (request.xero_job_number, request.xero_job_id) == ("J000001", job.uuid)
    assert request.xero_sync_error is None
    link = await link_of(h, w.requests[0])
    assert (link.state, link.xero_status_seen, link.xero_manager_seen) == (
        "linked",
        "Planned",
        w.staff["Ann"],
    )
    async with h.services.db.transaction() as session:
        mapping = await ContactMappingRepository(session).for_client(company=A, client_id=w.client)
    assert mapping is not None and (mapping.xero_contact_id, mapping.auto_created) == (
        client.uuid,
        True,
    )


async def test_xero_calls_per_job(h: Harness, crm: MemoryCrm) -> None:
    """A new client's first job: search, add client, add job, assign (4); a later job of the
    same client: add job, assign (2)."""
    w = await world(h, crm, requests=2)
    before = len(h.sandbox.ledger)
    await assign(h, crm, w, 0)
    first = xpm_calls(h, before)
    assert first == [
        ("GET", "client.api/search"),
        ("POST", "client.api/add"),
        ("POST", "job.api/add"),
        ("PUT", "job.api/assign"),
    ]
    before = len(h.sandbox.ledger)
    await assign(h, crm, w, 1)
    assert xpm_calls(h, before) == [("POST", "job.api/add"), ("PUT", "job.api/assign")]


async def test_a_client_already_in_xpm_is_found_by_exact_email(h: Harness, crm: MemoryCrm) -> None:
    """A client in XPM with the CRM client's email (another name) is used, not duplicated; a
    near miss (the email inside another address) is not taken for it."""
    w = await world(h, crm, requests=1)
    h.sandbox.add_client(w.tenant, "Chen Family Trust", "trust.olivia@example.com")
    existing = h.sandbox.add_client(w.tenant, "O. Chen", "Olivia@Example.com")
    await assign(h, crm, w, 0)
    assert [j.client_uuid for j in jobs(h, w)] == [existing.uuid]
    assert len(h.sandbox.tenant(w.tenant).clients) == 2
    async with h.services.db.transaction() as session:
        mapping = await ContactMappingRepository(session).for_client(company=A, client_id=w.client)
    assert mapping is not None and not mapping.auto_created


async def test_without_auto_create_an_unknown_client_is_a_clear_dead_task(
    h: Harness, crm: MemoryCrm
) -> None:
    """The practice does not create clients: no job, and the request says to map the client."""
    w = await world(h, crm, requests=1)
    await put(h, "settings", {"auto_create_contacts": False})
    await assign(h, crm, w, 0)
    assert jobs(h, w) == []
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None and "map the client first" in (request.xero_sync_error or "")


async def test_unmapped_service_and_accountant_say_why(h: Harness, crm: MemoryCrm) -> None:
    """No template and no manager: the job is made without them and the task results say
    why; reconciliation reports service_not_mapped and staff_not_mapped; mapping Ann later
    makes her the manager."""
    w = await world(h, crm, requests=1, map_staff=False, map_service=False)
    await assign(h, crm, w, 0)
    [job] = jobs(h, w)
    assert (job.template_uuid, job.manager_uuid) == (None, None)
    [created] = await results(h, "create_job")
    assert created["notes"] == [
        "no job template: the service 'Individual Tax Return' is not mapped to one"
    ]
    [manager] = await results(h, "set_job_manager")
    assert "is not mapped to a Xero Practice Manager staff member" in manager["manager"]
    assert not [c for c in xpm_calls(h) if c[1] == "job.api/assign"]
    report = await reconcile(h)
    kinds = {f["kind"] for f in report["findings"]}
    assert {"service_not_mapped", "staff_not_mapped"} <= kinds
    await put(
        h, "mappings/staff", {"mappings": [{"accountant_id": w.ann, "staff_id": w.staff["Ann"]}]}
    )
    await h.settle()
    assert jobs(h, w)[0].manager_uuid == w.staff["Ann"]


async def test_a_lost_answer_never_makes_a_second_job(h: Harness, crm: MemoryCrm) -> None:
    """XPM creates the job but the answer is lost (XPM honours no Idempotency-Key): the retry
    lists the client's jobs, adopts the one carrying its reference, and makes no second one."""
    w = await world(h, crm, requests=1)
    h.sandbox.faults.path_prefix = f"{XPM}job.api/add"
    h.sandbox.faults.drop_next = 1
    crm.assign(company=A, request_id=w.requests[0], accountant_id=w.ann, now=datetime.now(UTC))
    await feed(h, crm)
    assert len(jobs(h, w)) == 1  # created, answer lost
    h.sandbox.faults.path_prefix = None
    await make_due(h)
    await h.settle()
    assert len(jobs(h, w)) == 1
    assert duplicate_jobs(h.sandbox, w.tenant) == []
    assert ("GET", "job.api/client/") in xpm_calls(h)
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None and request.xero_job_number == "J000001"
    assert jobs(h, w)[0].manager_uuid == w.staff["Ann"]


async def test_reassignment_moves_the_manager(h: Harness, crm: MemoryCrm) -> None:
    """Reassigned to Bob in the CRM: one assign call replaces Ann with Bob."""
    w = await world(h, crm, requests=1)
    await assign(h, crm, w, 0)
    before = len(h.sandbox.ledger)
    await assign(h, crm, w, 0, who=w.bob)
    assert jobs(h, w)[0].manager_uuid == w.staff["Bob"]
    assigns = [e for e in h.sandbox.ledger[before:] if e.path.endswith("job.api/assign")]
    assert len(assigns) == 1
    link = await link_of(h, w.requests[0])
    assert (link.manager_written, link.xero_manager_seen) == (w.bob, w.staff["Bob"])


async def test_crm_statuses_set_the_practices_states(h: Harness, crm: MemoryCrm) -> None:
    """processing → In Progress, completed → Completed, cancelled → Cancelled (XPM has a code
    for each); a practice's own mapping (processing → On Hold) is used once declared."""
    w = await world(h, crm, requests=2)
    await assign(h, crm, w, 0)
    for status, state in (
        ("processing", "In Progress"),
        ("completed", "Completed"),
        ("cancelled", "Cancelled"),
    ):
        crm.set_status(company=A, request_id=w.requests[0], status=status, now=datetime.now(UTC))
        await feed(h, crm)
        assert jobs(h, w)[0].state == state
    h.sandbox.set_job_states(
        w.tenant,
        [
            JobState(code="Planned", completed=False),
            JobState(code="On Hold", completed=False),
            JobState(code="Completed", completed=True),
            JobState(code="Cancelled", completed=True),
        ],
    )
    await put(
        h,
        "settings",
        {"xero_state_classes": {"On Hold": "open"}, "status_overrides": {"processing": "On Hold"}},
    )
    await assign(h, crm, w, 1)
    crm.set_status(company=A, request_id=w.requests[1], status="processing", now=datetime.now(UTC))
    await feed(h, crm)
    assert jobs(h, w)[1].state == "On Hold"


async def test_a_request_already_in_progress_gets_its_state_after_creation(
    h: Harness, crm: MemoryCrm
) -> None:
    """XPM starts every job in its first state (Planned); a request already processing when its
    job is made is then set to In Progress."""
    w = await world(h, crm, requests=1)
    crm.assign(company=A, request_id=w.requests[0], accountant_id=w.ann, now=datetime.now(UTC))
    crm.set_status(company=A, request_id=w.requests[0], status="processing", now=datetime.now(UTC))
    await feed(h, crm)
    assert [j.state for j in jobs(h, w)] == ["In Progress"]


async def test_a_state_changed_in_xpm_reaches_the_crm_by_poll(h: Harness, crm: MemoryCrm) -> None:
    """No webhook: the poll's current list shows In Progress (CRM untouched: same class);
    after Cancelled the job leaves the list, is fetched by number, and the CRM is cancelled."""
    w = await world(h, crm, requests=1)
    await assign(h, crm, w, 0)
    number = jobs(h, w)[0].number
    sent = len(h.sandbox.webhook_deliveries)
    h.sandbox.update_job(w.tenant, number, state="In Progress")
    await h.poll(A)
    assert (await crm.get_request(company=A, request_id=w.requests[0])).status == "assigned"  # type: ignore[union-attr]
    h.sandbox.update_job(w.tenant, number, state="Cancelled")
    before = len(h.sandbox.ledger)
    assert (await h.poll(A))["changes"] == 1
    assert xpm_calls(h, before) == [("GET", "job.api/current"), ("GET", "job.api/get/")]
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None and request.status == "cancelled"
    assert len(h.sandbox.webhook_deliveries) == sent
    before = len(h.sandbox.ledger)
    await h.poll(A)  # seen closed: not fetched again
    assert xpm_calls(h, before) == [("GET", "job.api/current")]


async def test_an_unknown_xpm_state_is_recorded_and_shown_never_guessed(
    h: Harness, crm: MemoryCrm
) -> None:
    """A practice state syncd has no class for: the CRM is left alone, the settings show it,
    reconciliation reports unknown_xero_state; once declared closed, it completes the request."""
    w = await world(h, crm, requests=1)
    await assign(h, crm, w, 0)
    h.sandbox.set_job_states(
        w.tenant,
        [
            JobState(code="Planned", completed=False),
            JobState(code="Waiting on client", completed=False),
            JobState(code="Lodged", completed=True),
        ],
    )
    h.sandbox.update_job(w.tenant, jobs(h, w)[0].number, state="Waiting on client")
    await h.poll(A)
    assert (await link_of(h, w.requests[0])).xero_status_seen == "Waiting on client"
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None and request.status == "assigned"
    shown = (await h.syncd.get(f"{API}/settings", headers=admin(h))).json()
    assert shown["states"]["unclassed_seen"] == ["Waiting on client"]
    report = await reconcile(h)
    [finding] = [f for f in report["findings"] if f["kind"] == "unknown_xero_state"]
    assert finding["xero"]["status"] == "Waiting on client"
    await put(
        h, "settings", {"xero_state_classes": {"Waiting on client": "open", "Lodged": "closed"}}
    )
    h.sandbox.update_job(w.tenant, jobs(h, w)[0].number, state="Lodged")
    await h.poll(A)
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None and request.status == "completed"


async def test_due_date_and_manager_changed_in_xpm_reach_the_crm(
    h: Harness, crm: MemoryCrm
) -> None:
    """A user moves the due date and makes Bob the manager in XPM: the poll moves the CRM's due
    date and reassigns the request to Bob, and nothing is sent back to XPM; a manager mapped to
    no accountant is only recorded."""
    w = await world(h, crm, requests=1)
    await assign(h, crm, w, 0)
    number = jobs(h, w)[0].number
    h.sandbox.update_job(w.tenant, number, due_date=date(2027, 1, 15), manager_uuid=w.staff["Bob"])
    before = len(h.sandbox.ledger)
    await h.poll(A)
    await feed(h, crm)  # the CRM's change comes back through the feed: nothing to do
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None
    assert (request.due_date, request.accountant_id) == (date(2027, 1, 15), w.bob)
    assert [c for c in xpm_calls(h, before) if c[0] != "GET"] == []
    stranger = h.sandbox.add_staff(w.tenant, "Casey Temp", "casey@agency.example")["UUID"]
    h.sandbox.update_job(w.tenant, number, manager_uuid=stranger)
    await h.poll(A)
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None and request.accountant_id == w.bob
    assert (await link_of(h, w.requests[0])).xero_manager_seen == stranger


async def test_a_job_deleted_in_xpm_is_a_finding(h: Harness, crm: MemoryCrm) -> None:
    """Deleted in XPM: the poll marks the link missing, the CRM is unchanged, reconciliation
    reports job_missing_in_xero."""
    w = await world(h, crm, requests=1)
    await assign(h, crm, w, 0)
    h.sandbox.delete_job(w.tenant, jobs(h, w)[0].number)
    assert (await h.poll(A))["deleted"] == 1
    assert (await link_of(h, w.requests[0])).state == "missing"
    report = await reconcile(h, dry_run=True)
    assert [f["kind"] for f in report["findings"] if f["request_id"] == w.requests[0]] == [
        "job_missing_in_xero"
    ]


async def test_reconciliation_on_practice_manager(h: Harness, crm: MemoryCrm) -> None:
    """The listing is the current jobs; a request assigned while syncd was away gets its job;
    drift made in XPM is healed by the side that moved."""
    w = await world(h, crm, requests=2)
    await assign(h, crm, w, 0)
    crm.assign(
        company=A,
        request_id=w.requests[1],
        accountant_id=w.bob,
        now=datetime.now(UTC) - timedelta(days=1),
    )
    h.sandbox.update_job(w.tenant, jobs(h, w)[0].number, state="Completed")
    report = await reconcile(h)
    healed = {f["kind"]: f["state"] for f in report["findings"]}
    assert healed.get("assigned_without_job") == "healed"
    assert healed.get("status_drift") == "healed"
    await h.settle()
    assert len(jobs(h, w)) == 2
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None and request.status == "completed"


async def test_client_details_changed_in_the_crm_update_the_xpm_client(
    h: Harness, crm: MemoryCrm
) -> None:
    """A renamed CRM client's XPM client is updated (client.api/update)."""
    w = await world(h, crm, requests=1)
    await assign(h, crm, w, 0)
    crm.update_person(company=A, user_id=w.client, last_name="Chen-Wright")
    crm.set_status(company=A, request_id=w.requests[0], status="processing", now=datetime.now(UTC))
    await feed(h, crm)
    [client] = h.sandbox.tenant(w.tenant).clients.values()
    assert client.name == "Olivia Chen-Wright"


async def test_job_category_setting_is_checked_against_xpm(h: Harness, crm: MemoryCrm) -> None:
    """An unknown category is refused with 422 and nothing saved; the settings list XPM's
    categories; status and console name the backend."""
    w = await world(h, crm, requests=0)
    bad = await h.syncd.put(f"{API}/settings", json={"job_category_id": "nope"}, headers=admin(h))
    assert bad.status_code == 422 and "job_category_id" in bad.json()["errors"]
    shown = (await h.syncd.get(f"{API}/settings", headers=admin(h))).json()
    assert shown["settings"]["job_category_id"] == w.category
    assert shown["categories"] == [{"id": w.category, "name": "Tax"}]
    assert shown["backend"] == "practicemanager"
    status = (await h.syncd.get(f"{API}/status", headers=admin(h))).json()
    assert (status["backend"], status["backend_name"], status["missing_scopes"]) == (
        "practicemanager",
        "Xero Practice Manager",
        [],
    )


async def reconcile(h: Harness, *, dry_run: bool = False) -> dict[str, Any]:
    started = await h.syncd.post(
        f"{API}/reconcile?dry_run={'true' if dry_run else 'false'}", headers=admin(h)
    )
    assert started.status_code == 202, started.text
    await h.settle()
    report = await h.syncd.get(
        f"{API}/reconciliations/{started.json()['run_id']}?format=json", headers=admin(h)
    )
    result: dict[str, Any] = report.json()
    return result


async def make_due(h: Harness) -> None:
    from sqlalchemy import update

    async with h.services.db.transaction() as session:
        await session.execute(
            update(OutboxTask)
            .where(OutboxTask.state == "pending")
            .values(run_after=datetime.now(UTC) - timedelta(seconds=1))
        )
