"""Reconciliation end to end: each kind of drift, injected into the sandbox or the CRM, is found
in one run and healed or reported per the practice's policy; runs are stored and readable as
JSON, CSV and a page; findings can be resolved; Xero list calls stay within ceil(N/500) + c."""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from syncd.crm.memory import MemoryCrm
from syncd.crm.port import CrmRequest
from syncd.domain.ids import CompanyId
from syncd.domain.sync_settings import parse_settings
from syncd.pipeline.changefeed import ChangeFeed
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import ContactMappingRepository, StaffMappingRepository
from syncd.store.models import OutboxTask, ReconciliationRun
from syncd.store.reports import FindingRepository
from syncd.store.settings import SettingsRepository
from syncd.web.auth import Role
from tests.harness import Harness, harness

A = CompanyId("company-a")
API = "/api/integrations/xero"


@dataclass
class World:
    tenant: str
    accountant: str
    clients: list[str]
    requests: list[str]


@pytest.fixture
def crm() -> MemoryCrm:
    return MemoryCrm()


@pytest.fixture
async def h(db: Database, fernet_key: str, crm: MemoryCrm) -> AsyncIterator[Harness]:
    async with harness(db, fernet_key, crm=crm) as ready:
        yield ready


async def world(
    h: Harness, crm: MemoryCrm, *, jobs: int = 2, pending: int = 0, staff_mapped: bool = True
) -> World:
    """A connected, well set-up practice (its accountant mapped to a Xero user) whose first
    `jobs` requests have Xero jobs already."""
    tenant = await h.connect(A, "Harbour & Co")
    crm.add_company(name="Harbour & Co", company_id=A)
    accountant = crm.add_person(
        company=A,
        role="accountant",
        email="ann@harbour.example",
        first_name="Ann",
        last_name="Accountant",
    )
    user = h.sandbox.add_user(tenant, "Ann Accountant", "ann@harbour.example")
    if staff_mapped:
        async with h.services.db.transaction() as session:
            await StaffMappingRepository(session).save(
                company=A,
                user_id=accountant,
                staff_id=user["userId"],
                staff_name="Ann",
                now=datetime.now(UTC),
            )
    service = crm.add_service(company=A, name="Tax Return", base_price=Decimal("350"))
    clients, requests = [], []
    for n in range(jobs + pending):
        client = crm.add_person(
            company=A,
            role="client",
            email=f"c{n}@example.com",
            first_name="Client",
            last_name=str(n),
        )
        clients.append(client)
        requests.append(
            crm.add_request(
                company=A,
                client_id=client,
                service_id=service,
                now=datetime.now(UTC) - timedelta(hours=1),
            )
        )
    for request in requests[:jobs]:
        crm.assign(company=A, request_id=request, accountant_id=accountant, now=datetime.now(UTC))
    await feed(h, crm)
    await h.deliver_webhooks()
    return World(tenant, accountant, clients, requests)


async def feed(h: Harness, crm: MemoryCrm) -> None:
    await ChangeFeed(db=h.services.db, crm=crm, clock=h.services.clock, settle=timedelta(0)).read(A)
    await h.settle()


async def reconcile(h: Harness, *, dry_run: bool = False) -> dict[str, object]:
    """Queue a run through the API, let the worker run it, read it back as JSON."""
    headers = h.auth(Role.PRACTICE_ADMIN, A)
    started = await h.syncd.post(
        f"{API}/reconcile", params={"dry_run": str(dry_run).lower()}, headers=headers
    )
    assert started.status_code == 202, started.text
    await h.settle()
    report = await h.syncd.get(started.json()["url"], headers=headers)
    assert report.status_code == 200
    body: dict[str, object] = report.json()
    assert body["state"] == "finished", body
    return body


def of_kind(report: dict[str, object], kind: str) -> list[dict[str, object]]:
    return [f for f in report["findings"] if f["kind"] == kind]  # type: ignore[union-attr,index]


async def set_policy(h: Harness, **changes: object) -> None:
    async with h.services.db.transaction() as session:
        settings = parse_settings(changes)
        await SettingsRepository(session).save(
            company=A, settings=settings, by="test", now=datetime.now(UTC)
        )


def job_of(h: Harness, w: World, crm: MemoryCrm, index: int) -> str:
    job_id = request_of(crm, w, index).xero_job_id
    assert job_id is not None
    return job_id


def request_of(crm: MemoryCrm, w: World, index: int) -> CrmRequest:
    """The request as the CRM has it now (the twin's own record)."""
    return crm.peek(company=A, request_id=w.requests[index])


async def test_a_synced_practice_has_no_findings(h: Harness, crm: MemoryCrm) -> None:
    """Both systems agree: an empty report, exit state clean, calls counted."""
    await world(h, crm)
    report = await reconcile(h)
    assert report["findings"] == []
    assert report["xero_calls"] == 3  # one page of jobs, one of contacts, one of users


async def test_assigned_without_job_is_healed_by_creating_it(h: Harness, crm: MemoryCrm) -> None:
    """A request assigned before the practice connected has no job: created on reconcile."""
    w = await world(h, crm, jobs=0, pending=1)
    crm.assign(
        company=A,
        request_id=w.requests[0],
        accountant_id=w.accountant,
        now=datetime.now(UTC) - timedelta(days=1),
    )  # before the feed's cursor
    report = await reconcile(h)
    [finding] = of_kind(report, "assigned_without_job")
    assert (finding["state"], finding["action"]) == ("healed", "create_job")
    await h.settle()
    assert request_of(crm, w, 0).xero_job_id is not None
    assert (await reconcile(h))["findings"] == []


async def test_a_deleted_job_is_reported_then_recreated_on_request(
    h: Harness, crm: MemoryCrm
) -> None:
    """Not healed by default (a person decides); "heal now" recreates the job."""
    w = await world(h, crm, jobs=1)
    h.sandbox.delete_project(w.tenant, job_of(h, w, crm, 0))
    report = await reconcile(h)
    [finding] = of_kind(report, "job_missing_in_xero")
    assert (finding["state"], finding["action"]) == ("open", "recreate_job")
    healed = await h.syncd.post(
        f"{API}/findings/{finding['id']}/resolve",
        json={"resolution": "heal"},
        headers=h.auth(Role.PRACTICE_ADMIN, A),
    )
    assert healed.status_code == 200 and healed.json()["state"] == "healed"
    await h.settle()
    assert len(h.sandbox.tenant(w.tenant).projects) == 1
    assert job_of(h, w, crm, 0) in h.sandbox.tenant(w.tenant).projects


async def test_concurrent_heals_of_one_finding_carry_it_out_once(
    h: Harness, crm: MemoryCrm
) -> None:
    """Six admins press "heal" on one finding at once: one 200, five 409 "already healed", and
    the job is recreated once (the link is reset once, one project appears)."""
    w = await world(h, crm, jobs=1)
    h.sandbox.delete_project(w.tenant, job_of(h, w, crm, 0))
    [finding] = of_kind(await reconcile(h), "job_missing_in_xero")

    async def link_version() -> int:
        async with h.services.db.transaction() as session:
            link = await JobLinkRepository(session).for_request(company=A, request_id=w.requests[0])
        assert link is not None
        return link.version

    before = await link_version()
    answers = await asyncio.gather(
        *(
            h.syncd.post(
                f"{API}/findings/{finding['id']}/resolve",
                json={"resolution": "heal"},
                headers=h.auth(Role.PRACTICE_ADMIN, A, user=f"admin-{n}"),
            )
            for n in range(6)
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409, 409]
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {
        "this finding is already healed"
    }
    assert await link_version() == before + 1
    await h.settle()
    assert len(h.sandbox.tenant(w.tenant).projects) == 1


async def test_a_heal_that_cannot_be_done_leaves_the_finding_open(
    h: Harness, crm: MemoryCrm
) -> None:
    """A finding only a person can settle: "heal" is a 409 saying why, and the finding stays
    open (the claim is undone), so it can still be ignored."""
    w = await world(h, crm, jobs=1)
    original = h.sandbox.project(w.tenant, job_of(h, w, crm, 0))
    h.sandbox.add_project(w.tenant, contact_id=original.contact_id, name=original.name)
    [finding] = of_kind(await reconcile(h), "duplicate_jobs")
    url, headers = f"{API}/findings/{finding['id']}/resolve", h.auth(Role.PRACTICE_ADMIN, A)
    refused = await h.syncd.post(url, json={"resolution": "heal"}, headers=headers)
    assert refused.status_code == 409
    assert "cannot be done automatically" in refused.json()["error"]
    ignored = await h.syncd.post(url, json={"resolution": "ignore"}, headers=headers)
    assert (ignored.status_code, ignored.json()["state"]) == (200, "ignored")


async def test_status_drift_before_a_poll_applies_xeros_change(h: Harness, crm: MemoryCrm) -> None:
    """Xero closed the job and no poll has seen it yet: Xero moved last, so the CRM
    completes."""
    w = await world(h, crm, jobs=1)
    h.sandbox.set_project_status(w.tenant, job_of(h, w, crm, 0), "CLOSED")
    assert request_of(crm, w, 0).status == "assigned"
    report = await reconcile(h)
    [finding] = of_kind(report, "status_drift")
    assert (finding["state"], finding["action"]) == ("healed", "apply_xero_status")
    assert "Xero changed last" in finding["detail"]
    assert request_of(crm, w, 0).status == "completed"


async def test_status_drift_under_manual_policy_waits_for_an_admin(
    h: Harness, crm: MemoryCrm
) -> None:
    """With the manual conflict policy drift is reported, not healed; "accept" carries out the
    other side of the proposal (here: keep the CRM's status and reopen the job in Xero)."""
    w = await world(h, crm, jobs=1)
    await set_policy(h, conflict_policy="manual")
    h.sandbox.set_project_status(w.tenant, job_of(h, w, crm, 0), "CLOSED")
    [finding] = of_kind(await reconcile(h), "status_drift")
    assert finding["state"] == "open"
    accepted = await h.syncd.post(
        f"{API}/findings/{finding['id']}/resolve",
        json={"resolution": "accept", "note": "client confirmed"},
        headers=h.auth(Role.PRACTICE_ADMIN, A),
    )
    assert accepted.json()["state"] == "accepted"
    assert (finding["action"], finding["alternative"]) == ("apply_xero_status", "push_crm_status")
    await h.settle()
    assert request_of(crm, w, 0).status == "assigned"
    assert h.sandbox.project(w.tenant, job_of(h, w, crm, 0)).status == "INPROGRESS"


async def test_a_job_no_request_knows_is_reported(h: Harness, crm: MemoryCrm) -> None:
    """A job made in Xero for a mapped client, linked to no request: review."""
    w = await world(h, crm, jobs=1)
    async with h.services.db.transaction() as session:
        mapping = await ContactMappingRepository(session).for_client(
            company=A, client_id=w.clients[0]
        )
    assert mapping is not None
    h.sandbox.add_project(w.tenant, contact_id=mapping.xero_contact_id, name="Advice - Client 0")
    [finding] = of_kind(await reconcile(h), "job_for_unknown_request")
    assert (finding["state"], finding["action"]) == ("open", "review")


async def test_duplicate_jobs_are_reported(h: Harness, crm: MemoryCrm) -> None:
    """A second job with the same contact and name as a linked one: review."""
    w = await world(h, crm, jobs=1)
    original = h.sandbox.project(w.tenant, job_of(h, w, crm, 0))
    h.sandbox.add_project(w.tenant, contact_id=original.contact_id, name=original.name)
    report = await reconcile(h)
    [finding] = of_kind(report, "duplicate_jobs")
    assert finding["state"] == "open"
    assert len(finding["xero"]["job_ids"]) == 2  # type: ignore[index]


async def test_an_archived_contact_mapping_is_dropped(h: Harness, crm: MemoryCrm) -> None:
    """The mapped contact was archived in Xero while the client has open work: the mapping
    goes (the next job finds or creates an active contact)."""
    w = await world(h, crm, jobs=1)
    async with h.services.db.transaction() as session:
        mapping = await ContactMappingRepository(session).for_client(
            company=A, client_id=w.clients[0]
        )
    assert mapping is not None
    h.sandbox.faults.lose_webhooks_next = 10
    h.sandbox.archive_contact(w.tenant, mapping.xero_contact_id)
    await h.deliver_webhooks()
    [finding] = of_kind(await reconcile(h), "contact_archived")
    assert (finding["state"], finding["action"]) == ("healed", "remap_contact")
    async with h.services.db.transaction() as session:
        assert (
            await ContactMappingRepository(session).for_client(company=A, client_id=w.clients[0])
            is None
        )


async def test_unmapped_client_is_reported_when_contacts_are_not_auto_created(
    h: Harness, crm: MemoryCrm
) -> None:
    """With auto-creation off the job cannot be made: the client shows as not mapped."""
    w = await world(h, crm, jobs=0, pending=1)
    await set_policy(h, auto_create_contacts=False)
    crm.assign(
        company=A, request_id=w.requests[0], accountant_id=w.accountant, now=datetime.now(UTC)
    )
    await feed(h, crm)
    report = await reconcile(h, dry_run=True)
    [finding] = of_kind(report, "client_not_mapped")
    assert (finding["state"], finding["action"]) == ("open", "map")
    assert of_kind(report, "assigned_without_job")[0]["state"] == "open"  # dry run: proposals


async def test_unmapped_staff_is_mapped_by_email_when_policy_allows(
    h: Harness, crm: MemoryCrm
) -> None:
    """An accountant with open work and a Xero user of the same email: reported by default,
    mapped automatically when the practice lets staff_not_mapped heal."""
    w = await world(h, crm, jobs=1, staff_mapped=False)
    user = h.sandbox.tenant(w.tenant).users[0]
    [finding] = of_kind(await reconcile(h), "staff_not_mapped")
    assert (finding["state"], finding["action"]) == ("open", "map_staff_by_email")
    await set_policy(h, auto_heal=["staff_not_mapped"])
    [healed] = of_kind(await reconcile(h), "staff_not_mapped")
    assert healed["state"] == "healed"
    async with h.services.db.transaction() as session:
        [mapping] = await StaffMappingRepository(session).list(company=A)
    assert mapping.xero_staff_id == user["userId"]


async def test_services_are_not_checked_against_templates_on_projects(
    h: Harness, crm: MemoryCrm
) -> None:
    """Xero Projects has no job templates, so service_not_mapped never fires there."""
    await world(h, crm, jobs=2)
    report = await reconcile(h)
    assert report["counts"]["service_not_mapped"] == 0  # type: ignore[index]


async def test_reports_read_as_csv_and_a_page_and_ignore_works(h: Harness, crm: MemoryCrm) -> None:
    """CSV has a row per finding; the page groups findings by kind; ignore hides one."""
    w = await world(h, crm, jobs=1)
    h.sandbox.delete_project(w.tenant, job_of(h, w, crm, 0))
    report = await reconcile(h)
    headers = h.auth(Role.PRACTICE_ADMIN, A)
    exported = await h.syncd.get(report["csv_url"], headers=headers)  # type: ignore[arg-type]
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["kind"] for r in rows] == ["job_missing_in_xero"]
    page = await h.syncd.get(report["html_url"], headers=headers)  # type: ignore[arg-type]
    assert page.status_code == 200 and "Job missing in xero" in page.text
    finding = of_kind(report, "job_missing_in_xero")[0]
    ignored = await h.syncd.post(
        f"{API}/findings/{finding['id']}/resolve", json={"resolution": "ignore"}, headers=headers
    )
    assert ignored.json()["state"] == "ignored"
    again = await h.syncd.post(
        f"{API}/findings/{finding['id']}/resolve", json={"resolution": "heal"}, headers=headers
    )
    assert again.status_code == 409
    listed = (await h.syncd.get(f"{API}/reconciliations", headers=headers)).json()
    assert [run["run_id"] for run in listed["items"]] == [report["run_id"]]
    other = await h.syncd.get(report["url"], headers=h.auth(Role.PRACTICE_ADMIN, "company-b"))  # type: ignore[arg-type]
    assert other.status_code == 404


async def test_list_calls_grow_with_jobs_by_pages_of_500(h: Harness, crm: MemoryCrm) -> None:
    """With N jobs in Xero, a run spends ceil(N/500) job-list calls plus a constant (contacts
    and users): counted at the sandbox."""
    w = await world(h, crm, jobs=1)
    contact = h.sandbox.project(w.tenant, job_of(h, w, crm, 0)).contact_id
    for n in range(1199):
        h.sandbox.add_project(w.tenant, contact_id=contact, name=f"Xero-only job {n}")
    before = len(h.sandbox.ledger)
    report = await reconcile(h, dry_run=True)
    calls = h.sandbox.ledger[before:]
    job_lists = [c for c in calls if c.path.endswith("/Projects") and c.method == "GET"]
    assert len(job_lists) == math.ceil(1200 / 500)
    assert report["xero_calls"] == len(calls) == len(job_lists) + 2


async def test_a_run_after_a_poll_reuses_its_listing_until_syncd_writes(
    h: Harness, crm: MemoryCrm
) -> None:
    """Right after a poll the run lists no jobs itself; once syncd has written to a job since
    the poll asked for its listing, the listing may be out of date and the run lists again."""
    from syncd.scheduler import enqueue_polls

    w = await world(h, crm)

    def job_lists() -> int:
        return sum(
            1 for c in h.sandbox.ledger if c.path.endswith("/Projects") and c.method == "GET"
        )

    assert await enqueue_polls(h.services) == 1
    await h.settle()
    before = job_lists()
    assert (await reconcile(h))["findings"] == []
    assert job_lists() == before
    crm.set_status(company=A, request_id=w.requests[0], status="completed", now=datetime.now(UTC))
    await feed(h, crm)  # syncd closes the job
    assert h.sandbox.project(w.tenant, job_of(h, w, crm, 0)).status == "CLOSED"
    assert (await reconcile(h))["findings"] == []
    assert job_lists() == before + 1


async def test_two_schedulers_racing_for_one_interval_leave_one_run_and_one_task(
    h: Harness, crm: MemoryCrm
) -> None:
    """Schedulers in two processes may both see no task for the interval and both queue: the
    loser writes nothing (no run left queued without a task to carry it out)."""
    from syncd.pipeline.reconcile import RECONCILE, queue_scheduled_run, scheduled_key

    await world(h, crm, jobs=1)
    now = h.services.clock.now()
    key = scheduled_key(A, now, 60)
    assert await queue_scheduled_run(h.services.db, A, now=now, key=key) is True
    assert await queue_scheduled_run(h.services.db, A, now=now, key=key) is False
    async with h.services.db.transaction() as session:
        runs = (await session.execute(select(ReconciliationRun))).scalars().all()
        tasks = await session.execute(select(OutboxTask).where(OutboxTask.kind == RECONCILE))
        keys = [task.idempotency_key for task in tasks.scalars()]
    assert [(run.trigger, run.state) for run in runs] == [("schedule", "queued")]
    assert keys == [key]


async def test_scheduled_runs_are_one_per_interval(h: Harness, crm: MemoryCrm) -> None:
    """Two scheduler ticks in one interval queue one run; the worker runs it."""
    from syncd.scheduler import enqueue_reconciles

    await world(h, crm, jobs=1)
    assert await enqueue_reconciles(h.services) == 1
    assert await enqueue_reconciles(h.services) == 0
    await h.settle()
    listed = (
        await h.syncd.get(f"{API}/reconciliations", headers=h.auth(Role.PRACTICE_ADMIN, A))
    ).json()
    assert [(r["trigger"], r["state"]) for r in listed["items"]] == [("schedule", "finished")]
    async with h.services.db.transaction() as session:
        run_id = listed["items"][0]["run_id"]
        assert await FindingRepository(session).for_run(company=A, run_id=run_id) == []
