"""Outbound, end to end against the sandbox: an assignment in the CRM becomes a Xero job through
the change feed or a pushed CRM event; status transitions follow; every step is idempotent;
failures end dead, visible and retryable; the sync log shows each task's Xero calls."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from syncd.crm.events import sign
from syncd.crm.memory import MemoryCrm
from syncd.domain.ids import CompanyId
from syncd.pipeline.changefeed import ChangeFeed
from syncd.sandbox.checks import duplicate_projects
from syncd.scheduler import enqueue_polls
from syncd.settings import Secret
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import ContactMappingRepository
from syncd.web.auth import Role
from tests.harness import Harness, harness

A = CompanyId("company-a")
CRM_SECRET = "whsec_" + "c3luY2QtY3JtLXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3"


@dataclass
class World:
    tenant: str
    accountant: str
    clients: list[str]
    service: int
    requests: list[str]


@pytest.fixture
def crm() -> MemoryCrm:
    return MemoryCrm()


@pytest.fixture
async def h(db: Database, fernet_key: str, crm: MemoryCrm) -> AsyncIterator[Harness]:
    async with harness(db, fernet_key, crm=crm, crm_webhook_secret=Secret(CRM_SECRET)) as ready:
        yield ready


async def world(h: Harness, crm: MemoryCrm, *, requests: int = 2, clients: int = 1) -> World:
    tenant = await h.connect(A, "Harbour & Co")
    crm.add_company(name="Harbour & Co", company_id=A)
    accountant = crm.add_person(
        company=A,
        role="accountant",
        email="ann@harbour.example",
        first_name="Ann",
        last_name="Accountant",
    )
    people = [
        crm.add_person(
            company=A,
            role="client",
            email=f"olivia{n}@example.com",
            first_name="Olivia",
            last_name=f"Chen{n}",
        )
        for n in range(clients)
    ]
    service = crm.add_service(company=A, name="Individual Tax Return", base_price=Decimal("350.00"))
    past = datetime.now(UTC) - timedelta(hours=1)
    made = [
        crm.add_request(
            company=A,
            client_id=people[n % clients],
            service_id=service,
            now=past,
            due_date=date(2026, 12, 31),
            description=f"FY26 return {n}",
        )
        for n in range(requests)
    ]
    return World(tenant, accountant, people, service, made)


def assign(crm: MemoryCrm, w: World, index: int) -> None:
    """What the CRM app does when an admin assigns (the change feed's fact)."""
    crm.assign(
        company=A,
        request_id=w.requests[index],
        accountant_id=w.accountant,
        now=datetime.now(UTC),
    )


def set_status(crm: MemoryCrm, w: World, index: int, status: str) -> None:
    crm.set_status(
        company=A,
        request_id=w.requests[index],
        status=status,
        now=datetime.now(UTC),
    )


async def feed(h: Harness, crm: MemoryCrm) -> int:
    """One change-feed pass (no settle window: the test's CRM has no transactions in flight)."""
    feed = ChangeFeed(db=h.services.db, crm=crm, clock=h.services.clock, settle=timedelta(0))
    return await feed.read(A)


def projects(h: Harness, tenant: str) -> list[object]:
    return list(h.sandbox.tenant(tenant).projects.values())


async def one_job(h: Harness, crm: MemoryCrm) -> tuple[World, str]:
    """One request, assigned, with its Xero job created: the world and the job's id."""
    w = await world(h, crm, requests=1)
    assign(crm, w, 0)
    await feed(h, crm)
    await h.settle()
    [project] = projects(h, w.tenant)
    return w, project.project_id  # type: ignore[attr-defined]


async def test_an_assignment_becomes_a_xero_job_written_back_to_the_crm(
    h: Harness, crm: MemoryCrm
) -> None:
    """Assigned → contact created and mapped, job "{Service} - {Client}" with due date and
    estimate, job id and number written back, link linked."""
    w = await world(h, crm, requests=1)
    assign(crm, w, 0)
    assert await feed(h, crm) == 1
    await h.settle()
    [project] = projects(h, w.tenant)
    assert project.name == "Individual Tax Return - Olivia Chen0"  # type: ignore[attr-defined]
    assert project.status == "INPROGRESS"  # type: ignore[attr-defined]
    assert project.estimate == Decimal("350.00")  # type: ignore[attr-defined]
    assert project.deadline.date() == date(2026, 12, 31)  # type: ignore[attr-defined]
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None
    assert request.xero_job_id == project.project_id  # type: ignore[attr-defined]
    assert request.xero_job_number and request.xero_job_number.startswith("PRJ-")
    assert request.xero_synced_at is not None and request.xero_sync_error is None
    async with h.services.db.transaction() as session:
        mapping = await ContactMappingRepository(session).for_client(
            company=A, client_id=w.clients[0]
        )
        link = await JobLinkRepository(session).for_request(company=A, request_id=w.requests[0])
    assert mapping is not None and mapping.auto_created
    assert link is not None and link.state == "linked"


async def test_xero_calls_per_job(h: Harness, crm: MemoryCrm) -> None:
    """First job of a client: search contact, create contact, create job (3 calls); a later
    job for the same client: create job only (1 call)."""
    w = await world(h, crm, requests=2)
    calls = len(h.sandbox.ledger)
    assign(crm, w, 0)
    await feed(h, crm)
    await h.settle()
    first = len(h.sandbox.ledger) - calls
    assign(crm, w, 1)
    await feed(h, crm)
    await h.settle()
    second = len(h.sandbox.ledger) - calls - first
    assert (first, second) == (3, 1)


async def test_two_jobs_of_a_new_client_at_once_spend_one_contact_look_up(
    h: Harness, crm: MemoryCrm
) -> None:
    """Both jobs of a client not yet in Xero run side by side: the second waits for the first's
    contact instead of looking it up again (4 calls in all: search, create contact, two jobs)."""
    w = await world(h, crm, requests=2)
    h.sandbox.faults.latency_ms = 50  # each call takes a while: the two tasks overlap
    calls = len(h.sandbox.ledger)
    assign(crm, w, 0)
    assign(crm, w, 1)
    assert await feed(h, crm) == 2
    await h.settle()
    made = [(e.method, e.path.rsplit("/", 1)[-1]) for e in h.sandbox.ledger[calls:]]
    assert sorted(made) == [
        ("GET", "Contacts"),
        ("POST", "Projects"),
        ("POST", "Projects"),
        ("PUT", "Contacts"),
    ]
    assert len(h.sandbox.tenant(w.tenant).contacts) == 1


async def test_existing_contact_is_found_by_email(h: Harness, crm: MemoryCrm) -> None:
    """A client already in Xero is linked, not duplicated (mapping not auto-created)."""
    w = await world(h, crm, requests=1)
    existing = h.sandbox.add_contact(w.tenant, "Olivia Chen (Xero)", email="olivia0@example.com")
    assign(crm, w, 0)
    await feed(h, crm)
    await h.settle()
    assert projects(h, w.tenant)[0].contact_id == existing.contact_id  # type: ignore[attr-defined]
    assert len(h.sandbox.tenant(w.tenant).contacts) == 1


async def test_status_transitions_follow_by_class(h: Harness, crm: MemoryCrm) -> None:
    """assigned → processing writes nothing; → completed closes the job; cancelled after
    completed writes nothing more."""
    w, project_id = await one_job(h, crm)
    writes = lambda: [e for e in h.sandbox.ledger if e.method == "PATCH"]  # noqa: E731
    set_status(crm, w, 0, "processing")
    await feed(h, crm)
    await h.settle()
    assert writes() == []
    set_status(crm, w, 0, "completed")
    await feed(h, crm)
    await h.settle()
    assert h.sandbox.project(w.tenant, project_id).status == "CLOSED"
    set_status(crm, w, 0, "cancelled")
    await feed(h, crm)
    await h.settle()
    assert len(writes()) == 1
    await h.poll(A)  # the poll sees syncd's own write: an echo, nothing changes
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None and request.status == "cancelled"


async def test_a_lost_answer_creates_no_duplicate_job(h: Harness, crm: MemoryCrm) -> None:
    """Xero creates the job but the answer is lost: the retry finds it (same key, same
    contact and name) and no second job appears."""
    w = await world(h, crm, requests=1)
    assign(crm, w, 0)
    await feed(h, crm)
    h.sandbox.faults.drop_next = 1
    h.sandbox.faults.path_prefix = "/projects.xro/2.0/Projects"
    await h.services.worker.tick_outbox()
    await h.services.worker.wait_idle()
    h.sandbox.faults.path_prefix = None
    # The retry waits for its backoff: make it due now.
    await make_due(h)
    await h.settle()
    assert len(projects(h, w.tenant)) == 1
    assert duplicate_projects(h.sandbox, w.tenant) == []
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None and request.xero_job_id is not None


async def test_a_status_write_whose_answer_was_lost_is_not_echoed_back_to_the_crm(
    h: Harness, crm: MemoryCrm
) -> None:
    """Completed → Xero closes the job but the answer is lost; before the retry the CRM goes
    back to processing and a poll sees the job CLOSED. That is syncd's own write: the CRM is
    left alone, the job is reopened, and the retry of the old write does nothing."""
    w, project_id = await one_job(h, crm)
    set_status(crm, w, 0, "completed")
    await feed(h, crm)
    h.sandbox.faults.drop_next = 1
    h.sandbox.faults.path_prefix = "/projects.xro/2.0/Projects"
    await h.settle()  # the PATCH lands, its answer does not: a retry waits for its backoff
    h.sandbox.faults.path_prefix = None
    assert h.sandbox.project(w.tenant, project_id).status == "CLOSED"
    set_status(crm, w, 0, "processing")
    assert await feed(h, crm) == 1  # Xero may have CLOSED: INPROGRESS is sent, not skipped
    assert await enqueue_polls(h.services) == 1
    await h.settle()  # the poll sees CLOSED: an echo
    await make_due(h)
    await h.settle()
    assert h.sandbox.project(w.tenant, project_id).status == "INPROGRESS"
    request = await crm.get_request(company=A, request_id=w.requests[0])
    assert request is not None and request.status == "processing"
    assert [write for write in crm.writes if write.applied] == []


async def test_the_same_fact_twice_is_one_task(h: Harness, crm: MemoryCrm) -> None:
    """The change feed and a pushed CRM event about the same assignment make one task."""
    w = await world(h, crm, requests=1)
    assign(crm, w, 0)
    pushed = await push(
        h, "service_request.assigned", {"company_id": A, "request_id": w.requests[0]}
    )
    assert pushed.status_code == 202
    assert [t["key"] for t in pushed.json()["tasks"]] == [f"create:{w.requests[0]}"]
    await feed(h, crm)
    listed = await h.syncd.get(
        "/api/integrations/xero/sync-logs", headers=h.auth(Role.PRACTICE_ADMIN, A)
    )
    assert listed.json()["total"] == 1


async def push(
    h: Harness,
    kind: str,
    data: dict[str, str],
    *,
    webhook_id: str = "msg_1",
    timestamp: int | None = None,
    secret: str = CRM_SECRET,
):
    from syncd.crm.events import secret_key

    body = json.dumps({"type": kind, "timestamp": "2026-11-25T10:00:00Z", "data": data}).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret_key(secret), webhook_id, stamp, body),
    }
    return await h.syncd.post("/api/crm/events", content=body, headers=headers)


async def test_crm_events_are_verified_and_deduplicated(h: Harness, crm: MemoryCrm) -> None:
    """Standard Webhooks: good → 202, same id again → 200 duplicate, bad signature or stale
    timestamp → 401, unusable content → 422 with the reason; nothing partial is written."""
    w = await world(h, crm, requests=1)
    assign(crm, w, 0)
    data = {"company_id": A, "request_id": w.requests[0]}
    assert (await push(h, "service_request.assigned", data)).status_code == 202
    again = await push(h, "service_request.assigned", data)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    forged = await push(
        h,
        "service_request.assigned",
        data,
        webhook_id="msg_2",
        secret="whsec_" + "b3RoZXItc2VjcmV0LTAxMjM0NTY3ODk=",
    )
    assert forged.status_code == 401
    stale = await push(
        h, "service_request.assigned", data, webhook_id="msg_3", timestamp=int(time.time()) - 600
    )
    assert stale.status_code == 401
    unknown_type = await push(h, "invoice.paid", data, webhook_id="msg_4")
    assert unknown_type.status_code == 422
    assert "unknown event type" in unknown_type.json()["error"]
    missing = await push(
        h, "service_request.assigned", {"company_id": A, "request_id": "nope"}, webhook_id="msg_5"
    )
    assert missing.status_code == 422
    listed = await h.syncd.get(
        "/api/integrations/xero/sync-logs", headers=h.auth(Role.PRACTICE_ADMIN, A)
    )
    assert listed.json()["total"] == 1


async def make_due(h: Harness) -> None:
    from sqlalchemy import update

    from syncd.store.models import OutboxTask

    async with h.services.db.transaction() as session:
        await session.execute(
            update(OutboxTask)
            .where(OutboxTask.state == "pending")
            .values(run_after=datetime.now(UTC) - timedelta(seconds=1))
        )


async def test_a_task_that_always_fails_ends_dead_and_can_be_retried(
    db: Database, fernet_key: str, crm: MemoryCrm
) -> None:
    """It dies after its attempts, says why on the request, does not hold up the practice's
    other requests, and the retry endpoint brings it back."""
    async with harness(db, fernet_key, crm=crm, outbox_max_attempts=3) as h:
        w = await world(h, crm, requests=2, clients=2)
        assign(crm, w, 0)
        assign(crm, w, 1)
        await feed(h, crm)
        # Client 1 is already mapped to a Xero contact; every Contacts call (client 0's) fails
        # with a transient 503, so only request 0's task keeps failing.
        known = h.sandbox.add_contact(w.tenant, "Olivia Chen1", email="olivia1@example.com")
        async with h.services.db.transaction() as session:
            await ContactMappingRepository(session).save(
                company=A,
                client_id=w.clients[1],
                contact_id=known.contact_id,
                contact_name=known.name,
                auto_created=False,
                now=datetime.now(UTC),
            )
        h.sandbox.faults.fail_next = 100
        h.sandbox.faults.fail_status = 503
        h.sandbox.faults.path_prefix = "/api.xro/2.0/Contacts"
        for _ in range(4):
            await h.settle()
            await make_due(h)
        h.sandbox.faults.fail_next = 0
        h.sandbox.faults.path_prefix = None
        await h.settle()
        headers = h.auth(Role.PRACTICE_ADMIN, A)
        dead = (
            await h.syncd.get("/api/integrations/xero/sync-logs?state=dead", headers=headers)
        ).json()
        done = (
            await h.syncd.get("/api/integrations/xero/sync-logs?state=done", headers=headers)
        ).json()
        assert dead["total"] == 1 and done["total"] == 1
        dead_task = dead["items"][0]
        request = await crm.get_request(company=A, request_id=dead_task["request_id"])
        assert request is not None and request.xero_sync_error
        detail = (
            await h.syncd.get(
                f"/api/integrations/xero/sync-logs/{dead_task['id']}", headers=headers
            )
        ).json()
        assert dead_task["attempts"] == 3
        assert [c["status"] for c in detail["calls"]] == [503, 503, 503]
        retried = await h.syncd.post(
            f"/api/integrations/xero/sync-logs/{dead_task['id']}/retry", headers=headers
        )
        assert (retried.status_code, retried.json()["state"]) == (200, "pending")
        again = await h.syncd.post(
            f"/api/integrations/xero/sync-logs/{dead_task['id']}/retry", headers=headers
        )
        assert again.status_code == 409
        await h.settle()
        assert len(projects(h, w.tenant)) == 2


async def test_manual_sync_repairs_a_job_changed_behind_syncds_back(
    h: Harness, crm: MemoryCrm
) -> None:
    """ "Sync now" checks Xero's actual job: a job reopened in Xero while webhooks were lost is
    closed again to match the completed request."""
    w, project_id = await one_job(h, crm)
    set_status(crm, w, 0, "completed")
    await feed(h, crm)
    await h.settle()
    h.sandbox.faults.webhooks_enabled = False
    h.sandbox.set_project_status(w.tenant, project_id, "INPROGRESS")  # nobody tells syncd
    answer = await h.syncd.post(
        f"/api/integrations/xero/sync-job/{w.requests[0]}", headers=h.auth(Role.PRACTICE_ADMIN, A)
    )
    assert answer.status_code == 202
    await h.settle()
    assert h.sandbox.project(w.tenant, project_id).status == "CLOSED"
    unknown = await h.syncd.post(
        "/api/integrations/xero/sync-job/nope", headers=h.auth(Role.PRACTICE_ADMIN, A)
    )
    assert unknown.status_code == 404


async def test_a_connection_gone_at_xero_parks_its_tasks_until_the_reconnect(
    h: Harness, crm: MemoryCrm
) -> None:
    """Xero answers 403 (the organisation's connection was removed at Xero): /status says the
    practice needs reconnecting and why, its task parks, a manual sync answers 409 instead of
    queueing behind it; reconnecting releases the parked task at once and the job is made."""
    w = await world(h, crm, requests=1)
    h.sandbox.authority.drop_tenant(w.tenant)
    assign(crm, w, 0)
    await feed(h, crm)
    await h.settle()
    assert projects(h, w.tenant) == []
    status = (
        await h.syncd.get("/api/integrations/xero/status", headers=h.auth(Role.PRACTICE_ADMIN, A))
    ).json()
    assert (status["connected"], status["needs_reconnect"]) == (False, True)
    assert "no longer covers this organisation" in status["reconnect_reason"]
    manual = await h.syncd.post(
        f"/api/integrations/xero/sync-job/{w.requests[0]}",
        headers=h.auth(Role.PRACTICE_ADMIN, A),
    )
    assert manual.status_code == 409 and "reconnect" in manual.json()["error"]
    await h.connect(A, "Harbour & Co")
    await h.settle()  # no waiting out the park: the reconnect made the task due
    assert len(projects(h, w.tenant)) == 1
