"""Fairness under a backlog, end to end against the sandbox: while three practices each hold 500
queued job creations, Xero sees at most 5 calls in flight and 60 in any rolling minute per
tenant and no 429, and a fourth practice's single task is claimed by the first scheduling round
after it is queued, ahead of some 1,300 older tasks.

Time is a ManualClock the test moves: syncd, the sandbox and the rate governor all wait on it.
The test runs the scheduler's one-second drain_outbox rounds on it, lets everything run until
the system can only go on when time does (no database work for many turns of the event loop),
and then moves time to the next moment something is due (a round, an answer, a rate window
sliding). So the run is the same on a fast machine and a loaded one: nothing races real time.
Every client's Xero contact is mapped beforehand, so each task costs exactly one call (create
the project) and "calls" and "tasks" count the same thing. The backlogs are queued directly as
the tasks the change feed plans for an assignment (reading 1,500 requests back one by one would
only slow the test); the newcomer's assignment goes through the change feed. The sandbox
answers after two (sandbox) seconds, so calls overlap and the concurrency limit is reached, not
trivially kept. The backlogs are worked into their third rate window (the window has slid
twice: where a governor that counts wrongly meets its 429), not drained: what is under test is
syncd while a backlog stands.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from syncd.crm.memory import MemoryCrm
from syncd.domain.ids import CompanyId
from syncd.domain.tasks import create_job
from syncd.pipeline.changefeed import ChangeFeed
from syncd.pipeline.outbox import NewTask, Outbox, TaskRepository, enqueue, new_task
from syncd.sandbox.checks import (
    count_429,
    duplicate_projects,
    max_calls_in_any_window,
    max_concurrency,
)
from syncd.scheduler import drain_outbox
from syncd.store.db import Database
from syncd.store.mappings import ContactMappingRepository
from tests.fakes import ManualClock
from tests.harness import Harness, harness

BUSY = (CompanyId("company-a"), CompanyId("company-b"), CompanyId("company-c"))
NEWCOMER = CompanyId("company-d")
BACKLOG = 500
CLIENTS = 50  # per practice, each with ten requests for ten different services
LATENCY_MS = 2000  # each Xero answer takes two (sandbox) seconds
TICK = 1.0  # the scheduler runs drain_outbox every second (syncd/scheduler.py)
PER_MINUTE = 60
CONCURRENT = 5
WORKED = 150  # calls per busy tenant before the run stops: into its third rate window
QUIET_TURNS = 200  # event-loop turns without database work: all that is left waits on time
HANG = 120.0  # real seconds: only a hang takes this long (a bound, never a pace)


@dataclass(frozen=True, slots=True, kw_only=True)
class Practice:
    company: CompanyId
    tenant: str
    accountant: str
    requests: list[str]


async def practice(h: Harness, crm: MemoryCrm, company: CompanyId, *, jobs: int) -> Practice:
    """A connected practice with `jobs` pending requests, spread over up to 50 clients and as
    many services as that takes (so every job's name is its own), each client with a Xero
    contact already mapped: creating each job is then one call."""
    clock = h.services.clock
    crm.add_company(name=f"Practice {company}", company_id=company)
    accountant = crm.add_person(
        company=company,
        role="accountant",
        email=f"ann@{company}.example",
        first_name="Ann",
        last_name="Accountant",
    )
    tenant = h.sandbox.add_tenant(f"Org of {company}")
    clients: list[tuple[str, str, str]] = []  # CRM client, Xero contact id, contact name
    for n in range(min(jobs, CLIENTS)):
        email = f"client{n}@{company}.example"
        client = crm.add_person(
            company=company, role="client", email=email, first_name="Client", last_name=f"{n:02d}"
        )
        contact = h.sandbox.add_contact(tenant.tenant_id, f"Client {n:02d}", email=email)
        clients.append((client, contact.contact_id, contact.name))
    services = [
        crm.add_service(company=company, name=f"Service {n}", base_price=Decimal("350.00"))
        for n in range(-(-jobs // len(clients)))
    ]
    requests = [
        crm.add_request(
            company=company,
            client_id=clients[n % len(clients)][0],
            service_id=services[n // len(clients)],
            now=clock.now(),
            due_date=date(2026, 12, 31),
        )
        for n in range(jobs)
    ]
    assert await h.connect(company, tenant.name) == tenant.tenant_id
    async with h.services.db.transaction() as session:
        mappings = ContactMappingRepository(session)
        for client, contact_id, name in clients:
            await mappings.save(
                company=company,
                client_id=client,
                contact_id=contact_id,
                contact_name=name,
                auto_created=False,
                now=clock.now(),
            )
    return Practice(
        company=company, tenant=tenant.tenant_id, accountant=accountant, requests=requests
    )


def assign(h: Harness, crm: MemoryCrm, p: Practice) -> None:
    """The practice's admin assigns every request to its accountant, in the CRM."""
    for request in p.requests:
        crm.assign(
            company=p.company,
            request_id=request,
            accountant_id=p.accountant,
            now=h.services.clock.now(),
        )


async def read_changes(h: Harness, crm: MemoryCrm, p: Practice) -> int:
    """One change-feed pass for the practice: the assignments become tasks."""
    feed = ChangeFeed(db=h.services.db, crm=crm, clock=h.services.clock, settle=timedelta(0))
    return await feed.read(p.company)


async def enqueue_jobs(h: Harness, p: Practice) -> int:
    """What the change feed would queue for the assignments (one create_job task each), in one
    transaction: the same tasks, without reading 500 requests back one by one."""
    async with h.services.db.transaction() as session:
        added = [
            await enqueue(
                session, new_task(p.company, create_job(request)), now=h.services.clock.now()
            )
            for request in p.requests
        ]
    return sum(task is not None for task in added)


def calls(h: Harness, tenant: str) -> int:
    """Calls of the tenant that Xero accepted (each one a job created, or about to be)."""
    return sum(1 for e in h.sandbox.ledger if e.tenant_id == tenant and e.counted)


async def quiet(h: Harness, clock: ManualClock) -> None:
    """Until the system can only go on when time does: nothing uses the database for
    QUIET_TURNS turns of the event loop in a row. Everything else syncd and the sandbox do
    between two waits on the clock is in-process work that finishes within a few turns."""
    pool = h.services.db.engine.pool
    deadline = time.monotonic() + HANG
    turns = 0
    while turns < QUIET_TURNS:
        assert time.monotonic() < deadline, f"no quiet moment at sandbox time {clock.monotonic()}"
        if pool.checkedout():  # give the database's threads and sockets the CPU meanwhile
            turns = 0
            await asyncio.sleep(0.001)
        else:
            turns += 1
            await asyncio.sleep(0)


async def run_until(
    h: Harness,
    clock: ManualClock,
    done: Callable[[], bool],
    *,
    what: str,
    within_minutes: float,
) -> None:
    """Run the scheduler's drain_outbox job once a (sandbox) second until `done()`, moving time
    from one due moment to the next whenever all that is left waits on it."""
    deadline = clock.monotonic() + within_minutes * 60
    next_round = clock.monotonic()
    while True:
        if clock.monotonic() >= next_round:
            await drain_outbox(h.services)
            next_round = clock.monotonic() + TICK
        await quiet(h, clock)
        if done():
            return
        assert clock.monotonic() < deadline, f"{what}: not within {within_minutes} sandbox minutes"
        clock.advance_to(min(next_round, clock.next_deadline() or next_round))


async def stop_worker(h: Harness, clock: ManualClock) -> None:
    """The worker stops claiming and lets what it runs finish; time goes on meanwhile (some of
    those tasks wait for a rate window to slide)."""
    closing = asyncio.create_task(h.services.worker.close(grace=HANG))
    while not closing.done():
        await quiet(h, clock)
        if closing.done():
            break
        due = clock.next_deadline()
        if due is None:  # nothing waits on time: what runs is about to finish
            await asyncio.wait_for(closing, timeout=HANG)
            break
        clock.advance_to(due)
    await closing


async def task_state(h: Harness, company: CompanyId, key: str) -> str | None:
    async with h.services.db.transaction() as session:
        task = await TaskRepository(session).by_key(company=company, key=key)
    return task.state if task is not None else None


@pytest.mark.slow
@pytest.mark.long
async def test_backlogs_stay_within_limits_and_a_newcomer_is_served_in_one_round(
    db: Database, fernet_key: str
) -> None:
    """Three practices with 500 queued jobs each: Xero sees at most 5 calls in flight and 60 in
    any minute per tenant, and no 429; a fourth practice's one job is claimed by the first
    scheduling round after it is queued and created while over 1,000 older tasks still wait.

    "Served within one scheduling round" is asserted as: right after the first drain_outbox
    round that follows its queueing, the newcomer's task is running (claimed), or done. At
    that moment the three have no budget left for the minute (syncd's governor says so), their
    running tasks wait for the window to slide, and some 1,300 of their tasks, all queued
    earlier (lower ids) and due, are pending: a first-in-first-out queue would serve the
    newcomer last, minutes later; a fair one serves it now, because practices take turns rather
    than tasks. Its job is then created while the three still have more than 1,000 tasks
    between them.
    """
    clock = ManualClock()
    crm = MemoryCrm()
    async with harness(db, fernet_key, clock=clock, crm=crm) as h:
        busy = [await practice(h, crm, company, jobs=BACKLOG) for company in BUSY]
        newcomer = await practice(h, crm, NEWCOMER, jobs=1)
        for p in busy:
            assign(h, crm, p)
            assert await enqueue_jobs(h, p) == BACKLOG
        h.sandbox.faults.latency_ms = LATENCY_MS

        # The three work until syncd's governor has none of their minute's budget left: from
        # then on their next tasks can only wait for the rate window to slide.
        governor = h.services.require_xero().governor
        await run_until(
            h,
            clock,
            lambda: all(governor.budget(p.tenant).minute == 0 for p in busy),
            what="the three spend a minute's budget each (does one hog the worker?)",
            within_minutes=5,
        )
        # The newcomer's one task joins the queue behind more than 1,300 due tasks.
        assign(h, crm, newcomer)
        assert await read_changes(h, crm, newcomer) == 1
        await drain_outbox(h.services)  # the first scheduling round since
        key = f"create:{newcomer.requests[0]}"
        assert await task_state(h, NEWCOMER, key) in ("running", "done")
        await run_until(
            h,
            clock,
            lambda: any(w.job_id is not None for w in crm.write_backs if w.company == NEWCOMER),
            what="the newcomer's job, written back to the CRM",
            within_minutes=2,
        )
        assert sum(BACKLOG - calls(h, p.tenant) for p in busy) > 1000

        # On until each of the three is into its third rate window; then the worker stops
        # claiming and lets the tasks it runs finish (some wait for the window to slide).
        await run_until(
            h,
            clock,
            lambda: all(calls(h, p.tenant) >= WORKED for p in busy),
            what=f"{WORKED} calls for each of the three",
            within_minutes=10,
        )
        await stop_worker(h, clock)
        assert h.services.worker.in_flight == 0
        async with h.services.db.transaction() as session:
            tasks = TaskRepository(session)
            counts = [await tasks.counts(company=p.company) for p in [*busy, newcomer]]

    ledger = h.sandbox.ledger
    assert count_429(ledger) == 0
    for p in [*busy, newcomer]:
        assert max_concurrency(ledger, p.tenant) <= CONCURRENT
        assert max_calls_in_any_window(ledger, p.tenant, seconds=60) <= PER_MINUTE
        assert duplicate_projects(h.sandbox, p.tenant) == []
        assert len(h.sandbox.tenant(p.tenant).projects) == calls(h, p.tenant)
    # One call per finished task: nothing failed, nothing was retried, nothing ran twice.
    assert counts == [
        {"done": calls(h, p.tenant), "pending": BACKLOG - calls(h, p.tenant)} for p in busy
    ] + [{"done": 1}]
    # The concurrency limit was reached, not merely kept (the minute's was, before the newcomer).
    for p in busy:
        assert max_concurrency(ledger, p.tenant) == CONCURRENT


async def test_claims_for_fewer_slots_than_practices_take_turns(db: Database) -> None:
    """Five practices with ten due tasks each and a worker with two free slots at a time: ten
    claims serve every practice twice, not the two practices with the oldest tasks ten times."""
    companies = [CompanyId(f"company-{letter}") for letter in "vwxyz"]
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    async with db.transaction() as session:
        for company in companies:
            for n in range(10):
                due = NewTask(company=company, kind="k", key=f"t{n}")
                assert await enqueue(session, due, now=now) is not None
    outbox = Outbox(db, owner="w1")
    served: Counter[str] = Counter()
    for _ in range(5):
        claimed = await outbox.claim(now=now, limit=2, per_company=1)
        assert len(claimed) == 2
        for task in claimed:
            served[task.company] += 1
            assert await outbox.complete(task, now=now)
    assert served == dict.fromkeys(companies, 2)


SHARERS = tuple(CompanyId(f"company-{letter}") for letter in "pqrstu")
SHARER_BACKLOG = 200
SLOTS = 4  # worker slots, fewer than the practices with work: the claims must take turns
SHARED_CALLS = 360  # calls of all six together: some three minutes at 4 slots / 2 s answers
FAIR = 0.8  # the least-served practice gets at least this much of an equal share


@pytest.mark.slow
async def test_practices_share_scarce_worker_slots_in_turns(db: Database, fernet_key: str) -> None:
    """Six practices with 200 queued jobs each and a worker with four slots (each call takes
    two seconds, so the worker can make two calls a second and the practices want six): every
    practice gets at least 0.8 of an equal share of Xero calls, within the limits, with no 429.

    Claiming the practices with the oldest tasks first (the regression this catches) gives the
    first practice every free slot until its minute's budget is spent, then the second, and the
    last practices next to nothing: with fewer slots than practices, only taking turns is fair.
    """
    clock = ManualClock()
    crm = MemoryCrm()
    async with harness(db, fernet_key, clock=clock, crm=crm) as h:
        sharers = [await practice(h, crm, c, jobs=SHARER_BACKLOG) for c in SHARERS]
        for p in sharers:
            assign(h, crm, p)
            assert await enqueue_jobs(h, p) == SHARER_BACKLOG
        h.sandbox.faults.latency_ms = LATENCY_MS
        # Scarce worker capacity (a busy or small worker) stood in for by fewer slots.
        h.services.worker.max_in_flight = SLOTS
        await run_until(
            h,
            clock,
            lambda: sum(calls(h, p.tenant) for p in sharers) >= SHARED_CALLS,
            what=f"{SHARED_CALLS} calls between the six",
            within_minutes=6,
        )
        await stop_worker(h, clock)

    ledger = h.sandbox.ledger
    made = {p.company: calls(h, p.tenant) for p in sharers}
    share = sum(made.values()) / len(sharers)
    assert min(made.values()) >= FAIR * share, f"calls per practice: {made}"
    assert count_429(ledger) == 0
    for p in sharers:
        assert max_concurrency(ledger, p.tenant) <= CONCURRENT
        assert max_calls_in_any_window(ledger, p.tenant, seconds=60) <= PER_MINUTE
