"""Convergence, as a hypothesis state machine, on both job backends (Xero Projects and Xero
Practice Manager) and both databases: random interleavings of CRM changes, Xero changes, failed
and unanswered calls, killed and restarted workers, polls and passing time; then the system
quiesces, one reconciliation runs, it quiesces again, and both sides agree for every request (or
an open finding says why not), no status flipped back and forth, and no task was lost.

How it runs. Rules are plain methods, so each example owns an event loop (`asyncio.Runner`) and
every rule runs its coroutine to completion on it: a step is atomic and the order of steps is
all hypothesis chooses. The test itself is synchronous and takes `db_url` (not the async `db`
fixture, whose engine would belong to pytest-asyncio's loop): each example opens its own
`Database` on that URL in its own loop, empties every table first (the outbox is claimed across
practices, so nothing of an earlier example may linger) and uses a fresh practice and a fresh,
seeded sandbox tenant.

The world: one practice (`MemoryCrm`) connected to one sandbox tenant, 3-5 requests assigned at
the start and synced (jobs exist, open), under one of the four conflict policies. The tenant is
an ORGANISATION (Xero Projects: INPROGRESS/CLOSED) or a PRACTICEMANAGER (XPM v3.1: the
practice's job states, of which the test uses the four syncd's default mapping classes,
Planned/In Progress open and Completed/Cancelled closed; the accountant is mapped to a staff
member, who becomes each job's manager, and the service to a job template); the backend's
differences are `tests/e2e/convergence_sides.py`'s. The clients are in Xero already and mapped.
syncd runs as two processes, as in production: the harness's services are `web` and a separate
`open_services` is the `worker`, which the machine can kill and restart. A kill is real: armed
by a rule, the worker's next Xero write reaches Xero and is applied, then the process dies
before the answer is read (its asyncio task is cancelled at that point; nothing catches it):
the task stays `running` under its lease, the link never hears of the write, and a fresh worker
process (new owner, rate governor, caches and HTTP clients) takes over; the task runs again once
its lease has expired. The worker runs one task at a time (`SYNCD_XERO_CONCURRENT_LIMIT=1`) and
its backoff jitter is seeded, so every example replays exactly (hypothesis can shrink, and the
printed seed reproduces it); cross-request races are the chaos test's subject, not this one's.

No webhooks. Xero sends none for Projects or Practice Manager jobs (the sandbox emits no PROJECT
events), and nothing in this world changes a contact (the only events it could still send), so
the steps that delivered or lost webhooks are gone: a change made in Xero reaches syncd only
through a poll (the `schedule_polls` step, and the poll that comes round when quiescing).

Time is an `InstantClock` the machine moves: rules let time pass, and quiescing first moves it
on by a poll interval (the scheduler's poll comes round and reads what changed in Xero), then
to each next moment something is due (a backoff's `run_after`, an inbox retry's
`next_attempt_at`, an expired lease), exactly as a real worker would wait for it. CRM changes
are stamped by that clock a second apart, as users' edits are.

The invariants, checked after the final reconciliation (`teardown`):
1. Agreement: for every request the CRM status class equals its Xero job's class (through the
   backend's default mapping: on XPM a CRM status and a job state agree when in the same class),
   unless an open finding of this reconciliation names the request and its kind explains the
   difference (`job_missing_in_xero` for a job deleted in Xero; `status_drift` only under the
   `manual` policy, which leaves drift to an admin). Under the other policies drift is healed,
   so an open `status_drift` finding is itself a failure. One exception, XPM's: its listing
   (`job.api/current`) leaves closed jobs out and syncd fetches only linked jobs it last saw
   open, so a job deleted after syncd saw it closed is invisible to syncd; a request that is
   closed and whose link last saw its (deleted) job closed needs no finding.
2. No flip-flop: for each request, the writes syncd made to one side are at most the real
   changes the rules made on the *other* side. A real Xero change moves the job into the other
   class (`INPROGRESS -> CLOSED`, `Planned -> Completed`; not `Completed -> Cancelled`); a real
   CRM change changes the Xero state syncd writes for it (on Projects a change of class; on XPM
   every change, each status having its own state). Writes counted: Xero state writes that Xero
   applied (not answered with an injected failure; an applied write whose answer was lost
   counts): on Projects PATCHes of the request's project, not Idempotency-Key replays; on XPM
   `PUT job.api/state` of the request's job, once per task (XPM honours no Idempotency-Key, so a
   task retried after a lost answer or a kill runs the same write again); and CRM
   `apply_status` calls that changed the request. A healing write is not extra: it is the one
   write of a real change whose ordinary path failed (a missed poll, a dead task), so it counts
   against that change. Any write beyond one per real change is syncd writing a side back to
   what it was (an echo not recognised, a stale decision): the flip-flop the issue forbids.
   Syncd also never writes a CRM status of the class the request already has.
3. Nothing lost, nothing doubled: no duplicate jobs (`checks.duplicate_projects`,
   `checks.duplicate_jobs`), no job created after the start, each request linked to one job; no
   outbox task pending or running and no inbox event pending or processing; every dead task
   either belongs to a request whose job was deleted, or its attempts are paid for by injected
   failures (faults Xero answered, unanswered calls and kills: each failed attempt consumes at
   least one), and says why it died.

`SYNCD_CONVERGENCE_EXAMPLES` sets the number of examples per backend and database (default 15:
about 10 s for Projects and 15 s for Practice Manager per database on a 2-core machine, when
nothing fails; 150 for the by-hand run), `SYNCD_CONVERGENCE_SEED` replays a seed (a failure
prints the one it used; the backend is in the test's id).
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterable
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, select

from syncd.crm.memory import MemoryCrm
from syncd.domain.backends import Backend
from syncd.domain.ids import CompanyId
from syncd.domain.statuses import ConflictPolicy, StatusClass
from syncd.domain.sync_settings import SyncSettings
from syncd.pipeline.changefeed import ChangeFeed
from syncd.pipeline.reconcile import queue_run
from syncd.sandbox.app import create_sandbox_app
from syncd.sandbox.state import SandboxState
from syncd.scheduler import enqueue_polls
from syncd.services import Services, open_services
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import ContactMappingRepository
from syncd.store.models import Base, InboxEvent, JobLink, OutboxTask, ReconciliationRun
from syncd.store.reports import FindingRepository
from syncd.store.settings import SettingsRepository
from tests.e2e.convergence_sides import SIDES, TENANT_NAME, ProjectsSide
from tests.fakes import InstantClock
from tests.harness import Harness, harness

EXAMPLES = int(os.environ.get("SYNCD_CONVERGENCE_EXAMPLES", "15"))
STEPS = 40
MAX_ATTEMPTS = 4  # low enough that injected failures can kill a task within one example
MAX_REQUESTS = 5
CRM_STATUSES = ("assigned", "processing", "completed", "cancelled")
XERO_STATE_CHOICES = 4  # an index into the backend's states (Projects' two, XPM's four)
TRANSIENT = (500, 502, 503, 504)
API_PREFIXES = ("/projects.xro/", "/api.xro/", "/practicemanager/")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
QUIESCE_ROUNDS = 60
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
INBOUND_STEPS = ("tick_inbox", "schedule_polls")
TROUBLE = st.one_of(
    st.tuples(st.just("fail_calls"), st.integers(1, 6), st.sampled_from(TRANSIENT)),
    st.tuples(st.just("lose_answers"), st.integers(1, 2)),
    st.just(("kill_worker_at_next_write",)),
    st.just(("restart_worker",)),
)
T = TypeVar("T")

pytestmark = pytest.mark.slow


class KillableTransport(httpx.AsyncBaseTransport):
    """The worker process's line to Xero. Armed, the process dies right after Xero has applied
    its next write, before the answer is read; from then on nothing it sends arrives."""

    def __init__(self, inner: httpx.AsyncBaseTransport, machine: ConvergenceMachine) -> None:
        self.inner = inner
        self.machine = machine
        self.dead = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.dead:
            raise asyncio.CancelledError("the worker process is dead")
        path = request.url.path.lower()
        write = request.method in WRITES and path.startswith(API_PREFIXES)
        if write:
            await request.aread()
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError:
            if write:  # the sandbox dropped the answer (after applying the write)
                self.machine.side.saw_write(request, None)
            raise
        if write:
            self.machine.side.saw_write(request, response.status_code)
        if self.machine.kill_armed and write:
            self.machine.kill_armed = False
            self.machine.kills += 1
            self.dead = True
            await response.aclose()
            raise asyncio.CancelledError("the worker process died with a Xero write in flight")
        return response


class ConvergenceMachine(RuleBasedStateMachine):
    """One practice, its CRM, its Xero tenant (of `backend`) and syncd between them."""

    db_url = ""
    fernet_key = ""
    backend = Backend.PROJECTS

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.stack = AsyncExitStack()
        self.worker_stack: AsyncExitStack | None = None
        self.broken = False  # a step failed: teardown only cleans up
        self.ready = False
        self.kill_armed = False
        self.kills = 0
        self.requests: list[str] = []
        self.jobs: dict[str, str] = {}  # request -> its job (project id; XPM: job number)
        self.deleted: set[str] = set()  # requests whose job was deleted in Xero
        self.crm_changes: Counter[str] = Counter()  # real CRM changes (see the docstring)
        self.xero_changes: Counter[str] = Counter()  # real (class-changing) Xero changes
        self.ledger_start = 0
        self.crm_writes_start = 0

    # -- plumbing ------------------------------------------------------------------------------

    def run(self, step: Awaitable[T]) -> T:
        try:
            return self.runner.run(_coroutine(step))
        except BaseException:
            self.broken = True
            raise

    @property
    def worker(self) -> Services:
        assert self.worker_services is not None
        return self.worker_services

    async def start_worker(self) -> None:
        """A worker process: its own services (governor, token cache, clients, owner id) over
        the shared database, CRM and Xero."""
        stack = AsyncExitStack()
        self.transport = KillableTransport(
            httpx.ASGITransport(app=create_sandbox_app(self.sandbox)), self
        )
        services = await stack.enter_async_context(
            open_services(
                self.h.settings,
                clock=self.clock,
                xero_transport=self.transport,
                db=self.db,
                crm=self.crm,
            )
        )
        services.worker.outbox.rng = random.Random(0)  # seeded jitter: examples replay exactly
        self.worker_stack, self.worker_services = stack, services

    async def restart_worker_process(self) -> None:
        """Stop the worker process and start a new one."""
        assert self.worker_stack is not None
        await self.drain()
        await self.worker_stack.aclose()
        await self.start_worker()

    async def drain(self) -> None:
        """Until the worker has no task running and no claim under way (a finished task makes
        it claim the next at once, in the background): what its `close` waits for. A step
        ends with syncd at rest, so the next step cannot race it and every example replays."""
        await self.worker.worker.settle()

    async def feed(self) -> int:
        feed = ChangeFeed(db=self.db, crm=self.crm, clock=self.clock, settle=timedelta(0))
        return await feed.read(self.company)

    async def work(self, *, outbox: bool, inbox: bool) -> bool:
        """A scheduler tick of the outbox, then of the inbox, each run to rest (one after the
        other, so that every example replays alike); a worker that died meanwhile is replaced,
        as its supervisor would. True if anything was started."""
        started = 0
        if outbox:
            started = await self.worker.worker.tick_outbox()
            await self.drain()
            if self.transport.dead:
                await self.restart_worker_process()
        if inbox:
            started += await self.worker.worker.tick_inbox()
            await self.drain()
        return bool(started)

    async def run_worker_until_idle(self) -> None:
        while await self.work(outbox=True, inbox=True):
            pass

    async def next_due(self) -> datetime | None:
        """When the next unfinished outbox task or inbox event becomes claimable (a backoff's
        end, an expired lease). Called when the worker is idle: whatever is due already is
        waiting behind an earlier task of its request, so only future moments count."""
        async with self.db.transaction() as session:
            tasks = (
                await session.execute(
                    select(OutboxTask.state, OutboxTask.run_after, OutboxTask.leased_until).where(
                        OutboxTask.state.in_(("pending", "running"))
                    )
                )
            ).all()
            events = (
                await session.execute(
                    select(
                        InboxEvent.state, InboxEvent.next_attempt_at, InboxEvent.leased_until
                    ).where(InboxEvent.state.in_(("pending", "processing")))
                )
            ).all()
        if not tasks and not events:
            return None
        now = self.clock.now()
        times = [run_after if state == "pending" else leased for state, run_after, leased in tasks]
        times += [retry if state == "pending" else leased for state, retry, leased in events]
        # A lease ending exactly now is not claimable yet (it must have ended): still to come.
        future = [t for t in times if t is not None and t >= now]
        assert future, (
            f"work is due but the idle worker does not take it: {await self.unfinished()}"
        )
        return min(future)

    async def quiesce(self) -> None:
        """Faults off; the scheduler's poll comes round (Xero sends no webhooks for jobs: a
        change made in Xero reaches syncd through a poll, as it would within one interval);
        read, work and let time pass until nothing is left to do."""
        faults = self.sandbox.faults
        faults.fail_next = faults.drop_next = 0
        self.kill_armed = False
        self.clock.advance(self.h.settings.poll_interval_minutes * 60)
        await enqueue_polls(self.worker)
        for _ in range(QUIESCE_ROUNDS):
            read = await self.feed()
            await self.run_worker_until_idle()
            due = await self.next_due()
            if due is not None:
                wait = (due - self.clock.now()).total_seconds()
                self.clock.advance(max(0.0, wait) + 1)
                continue
            if not read:
                return
        raise AssertionError(
            f"syncd did not quiesce in {QUIESCE_ROUNDS} rounds: {await self.unfinished()}"
        )

    async def unfinished(self) -> list[tuple[Any, ...]]:
        """The outbox tasks and inbox events still to do, for failure messages."""
        async with self.db.transaction() as session:
            tasks = await session.execute(
                select(
                    OutboxTask.idempotency_key,
                    OutboxTask.state,
                    OutboxTask.attempts,
                    OutboxTask.run_after,
                    OutboxTask.last_error,
                ).where(OutboxTask.state.in_(("pending", "running")))
            )
            events = await session.execute(
                select(
                    InboxEvent.resource_id,
                    InboxEvent.state,
                    InboxEvent.attempts,
                    InboxEvent.next_attempt_at,
                    InboxEvent.result,
                ).where(InboxEvent.state.in_(("pending", "processing")))
            )
            return [tuple(row) for row in [*tasks.all(), *events.all()]]

    async def wipe(self) -> None:
        async with self.db.transaction() as session:
            for table in reversed(Base.metadata.sorted_tables):
                await session.execute(delete(table))

    # -- the world -----------------------------------------------------------------------------

    @initialize(
        policy=st.sampled_from(list(ConflictPolicy)),
        count=st.integers(3, MAX_REQUESTS),
        world_seed=st.integers(0, 2**32 - 1),
    )
    def setup(self, policy: ConflictPolicy, count: int, world_seed: int) -> None:
        """A connected practice whose `count` requests are assigned and have their jobs."""
        self.policy = policy
        self.run(self._setup(policy, count, world_seed))
        self.ready = True

    async def _setup(self, policy: ConflictPolicy, count: int, world_seed: int) -> None:
        self.clock = InstantClock(start=START)  # fixed: poll slots fall alike in every replay
        self.db = Database(self.db_url)
        self.stack.push_async_callback(self.db.dispose)
        await self.wipe()
        self.sandbox = SandboxState(self.clock, seed=world_seed)
        self.crm = MemoryCrm()
        # The practice's organisation (ORGANISATION or PRACTICEMANAGER), its clients already
        # in Xero (so each job costs one call, not three: examples stay cheap enough to
        # shrink); they are mapped below as a first sync would have.
        self.side: ProjectsSide = SIDES[self.backend](self.sandbox)
        clients = [self.side.add_client(n) for n in range(count)]
        consent: dict[str, Any] = {"xero_scopes": self.side.scopes} if self.side.scopes else {}
        self.h: Harness = await self.stack.enter_async_context(
            harness(
                self.db,
                self.fernet_key,
                clock=self.clock,
                sandbox=self.sandbox,
                crm=self.crm,
                outbox_max_attempts=MAX_ATTEMPTS,
                xero_concurrent_limit=1,
                **consent,
            )
        )
        self.stack.push_async_callback(self._stop_worker)
        self.company = CompanyId(str(uuid.uuid4()))
        self.crm.add_company(name=TENANT_NAME, company_id=self.company)
        self.tenant = await self.h.connect(self.company, TENANT_NAME)
        assert self.tenant == self.side.tenant
        # Injected failures hit the job API (Projects' or XPM's), the calls this property is
        # about. (A lost *token* answer followed by half an hour without a call ends the grant
        # for good, as Xero's refresh-token grace says; in production the poller calls every
        # few minutes, here time may pass without one, so identity faults would only test the
        # model.)
        self.sandbox.faults.path_prefix = self.side.api
        if policy is not ConflictPolicy.CRM_WINS:
            async with self.db.transaction() as session:
                await SettingsRepository(session).save(
                    company=self.company,
                    settings=SyncSettings(conflict_policy=policy),
                    by="test",
                    now=self.clock.now(),
                )
        accountant = self.crm.add_person(
            company=self.company, role="accountant", email="ann@harbour.example", first_name="Ann"
        )
        service = self.crm.add_service(
            company=self.company, name="Tax Return", base_price=Decimal("350.00")
        )
        async with self.db.transaction() as session:
            await self.side.map_practice(
                session,
                company=self.company,
                accountant=accountant,
                service=service,
                now=self.clock.now(),
            )
        suffix = uuid.uuid4().hex[:30]
        for n, (contact_id, contact_name) in enumerate(clients):
            client = self.crm.add_person(
                company=self.company,
                role="client",
                email=f"client{n}@example.com",
                first_name="Client",
                last_name=str(n),
            )
            async with self.db.transaction() as session:
                await ContactMappingRepository(session).save(
                    company=self.company,
                    client_id=client,
                    contact_id=contact_id,
                    contact_name=contact_name,
                    auto_created=False,
                    now=self.clock.now(),
                )
            self.requests.append(
                self.crm.add_request(
                    company=self.company,
                    client_id=client,
                    service_id=service,
                    now=self.clock.now(),
                    due_date=date(2026, 12, 31),
                    request_id=f"r{n}-{suffix}",
                )
            )
        self.clock.advance(1)
        for request_id in self.requests:
            self.crm.assign(
                company=self.company,
                request_id=request_id,
                accountant_id=accountant,
                now=self.clock.now(),
            )
        self.clock.advance(1)
        await self.start_worker()
        await self.quiesce()
        async with self.db.transaction() as session:
            links = await JobLinkRepository(session).list(company=self.company)
        self.jobs = {link.request_id: self.side.job_of(link) for link in links}
        assert sorted(self.jobs) == sorted(self.requests), "setup: every request has a job"
        for job in self.jobs.values():
            self.side.check_new(job)
        self.ledger_start = len(self.sandbox.ledger)
        self.crm_writes_start = len(self.crm.writes)

    async def _stop_worker(self) -> None:
        if self.worker_stack is not None:
            await self.drain()
            await self.worker_stack.aclose()

    worker_services: Services | None = None

    def request(self, index: int) -> str:
        return self.requests[index % len(self.requests)]

    # -- rules -------------------------------------------------------------------------------
    # Few rules with parameters rather than many: hypothesis picks rules uniformly, and the
    # sequences that matter (a change, a fault, syncd half-way, a change on the other side)
    # need the two sides' changes to come up often.

    @rule(
        index=st.integers(0, MAX_REQUESTS - 1),
        status=st.sampled_from(CRM_STATUSES),
        read_now=st.booleans(),
    )
    def crm_user_sets_status(self, index: int, status: str, read_now: bool) -> None:
        """A CRM user changes a request's status, a second after the last thing happened (and
        with `read_now` the change feed's next pass comes at once, as a pushed CRM event)."""
        request_id = self.request(index)
        self.clock.advance(1)
        before = self.run(self.crm.get_request(company=self.company, request_id=request_id))
        assert before is not None
        self.crm.set_status(
            company=self.company, request_id=request_id, status=status, now=self.clock.now()
        )
        mapping = self.side.mapping
        if mapping.xero_state_for(before.status) != mapping.xero_state_for(status):
            self.crm_changes[request_id] += 1
        if read_now:
            self.run(self.feed())

    @rule(index=st.integers(0, MAX_REQUESTS - 1), choice=st.integers(0, XERO_STATE_CHOICES - 1))
    def xero_user_sets_state(self, index: int, choice: int) -> None:
        """A Xero user moves a job to one of the backend's states (Xero sends no webhook: syncd
        learns of it on its next poll)."""
        request_id = self.request(index)
        if request_id in self.deleted:
            return
        self.clock.advance(1)
        job = self.jobs[request_id]
        before = self.side.state(job)
        assert before is not None
        state = self.side.states[choice % len(self.side.states)]
        self.side.set_state(job, state)
        mapping = self.side.mapping
        if mapping.xero_class(before) is not mapping.xero_class(state):
            self.xero_changes[request_id] += 1

    @precondition(lambda self: self.ready and not self.deleted)
    @rule(index=st.integers(0, MAX_REQUESTS - 1))
    def xero_user_deletes_job(self, index: int) -> None:
        """A Xero user deletes a job (once per example): a finding, never a CRM change."""
        request_id = self.request(index)
        self.side.delete(self.jobs[request_id])
        self.deleted.add(request_id)

    @rule(trouble=TROUBLE)
    def things_go_wrong(self, trouble: tuple[Any, ...]) -> None:
        """Xero fails its next calls (transient, unapplied) or loses its next answers (applied);
        the worker process will die right after its next Xero write, or is restarted now (a
        deploy)."""
        faults = self.sandbox.faults
        match trouble:
            case ("fail_calls", int(count), int(status)):
                faults.fail_next, faults.fail_status = count, status
            case ("lose_answers", int(count)):
                faults.drop_next = count
            case ("kill_worker_at_next_write",):
                self.kill_armed = True
            case ("restart_worker",):
                self.run(self.restart_worker_process())
            case _:
                raise AssertionError(f"unknown trouble {trouble!r}")

    @rule()
    def tick_outbox(self) -> None:
        """The scheduler drains the outbox once (the worker runs one task at a time)."""
        self.run(self.work(outbox=True, inbox=False))

    @rule(step=st.sampled_from(INBOUND_STEPS))
    def xero_reaches_syncd(self, step: str) -> None:
        """The inbox (what polls found) is drained once, or the poll tick enqueues a poll (one
        per practice per interval; the outbox runs it)."""
        match step:
            case "tick_inbox":
                self.run(self.work(outbox=False, inbox=True))
            case "schedule_polls":
                self.run(enqueue_polls(self.worker))
            case _:
                raise AssertionError(f"unknown step {step!r}")

    @rule(seconds=st.sampled_from([1, 10, 60, 300, 1800]), read_crm=st.booleans())
    def time_passes(self, seconds: int, read_crm: bool) -> None:
        """Time passes (backoffs come due, leases expire, a new poll interval starts), and with
        `read_crm` the change feed's scheduled pass runs."""
        self.clock.advance(seconds)
        if read_crm:
            self.run(self.feed())

    # -- the end -------------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if self.ready and not self.broken:
                self.run(self.converge_and_check())
        finally:
            try:
                self.runner.run(self.stack.aclose())
            finally:
                self.runner.close()

    async def converge_and_check(self) -> None:
        await self.quiesce()
        run = await queue_run(
            self.db, self.company, trigger="test", dry_run=False, by=None, now=self.clock.now()
        )
        await self.quiesce()
        async with self.db.transaction() as session:
            finished = await session.get(ReconciliationRun, run.id)
            assert finished is not None and finished.state == "finished", (
                f"the reconciliation did not finish: {finished.state if finished else None} "
                f"{finished.error if finished else ''}"
            )
            findings = await FindingRepository(session).for_run(company=self.company, run_id=run.id)
            tasks = (
                (await session.execute(select(OutboxTask).order_by(OutboxTask.id))).scalars().all()
            )
            events = (
                (
                    await session.execute(
                        select(InboxEvent).where(InboxEvent.state.in_(("pending", "processing")))
                    )
                )
                .scalars()
                .all()
            )
            links = await JobLinkRepository(session).list(company=self.company)
        self.check_links(links)
        await self.check_agreement(findings, {link.request_id: link for link in links})
        self.check_writes()
        self.check_nothing_lost(tasks, events)

    def check_links(self, links: Iterable[JobLink]) -> None:
        """Each request is linked to one job, the one it got at the start (a deleted one's link
        says `missing` once syncd has noticed; `check_agreement` judges whether it must have)."""
        found = Counter(link.request_id for link in links)
        assert found == Counter(self.requests), f"links per request: {dict(found)}"
        for link in links:
            states = ("missing", "linked") if link.request_id in self.deleted else ("linked",)
            assert link.state in states and self.side.job_of(link) == self.jobs[link.request_id], (
                f"{link.request_id}: link {link.state} to {self.side.job_of(link)}, expected "
                f"{' or '.join(states)} to {self.jobs[link.request_id]}"
            )

    async def check_agreement(self, findings: Iterable[Any], links: dict[str, JobLink]) -> None:
        mapping = self.side.mapping
        open_kinds: dict[str, set[str]] = {}
        for finding in findings:
            if finding.state == "open" and finding.request_id:
                open_kinds.setdefault(finding.request_id, set()).add(finding.kind)
        for request_id in self.requests:
            request = await self.crm.get_request(company=self.company, request_id=request_id)
            assert request is not None
            crm_class = mapping.crm_class(request.status)
            kinds = open_kinds.get(request_id, set())
            if self.policy is not ConflictPolicy.MANUAL:
                assert "status_drift" not in kinds, (
                    f"{request_id}: status drift left open under {self.policy.value}"
                )
            if request_id in self.deleted:
                seen = links[request_id].xero_status_seen or ""
                unseeable = (
                    not self.side.lists_closed_jobs
                    and crm_class is StatusClass.CLOSED
                    and mapping.xero_class(seen) is StatusClass.CLOSED
                )
                assert "job_missing_in_xero" in kinds or unseeable, (
                    f"{request_id}: its job was deleted in Xero but no open finding says so "
                    f"(open findings: {sorted(kinds)}; CRM {request.status}, link "
                    f"{links[request_id].state}, last seen {seen!r}, last written "
                    f"{links[request_id].xero_status_written!r})"
                )
                continue
            state = self.side.state(self.jobs[request_id])
            assert state is not None, f"{request_id}: its job is gone, but was never deleted"
            if crm_class is mapping.xero_class(state):
                continue
            assert "status_drift" in kinds, (
                f"{request_id}: CRM {request.status} but Xero {state} after reconciliation, "
                f"and no open finding explains it (open findings: {sorted(kinds)})"
            )

    def check_writes(self) -> None:
        mapping = self.side.mapping
        ledger = self.sandbox.ledger[self.ledger_start :]
        created = self.side.created(ledger)
        assert created == [], f"jobs created after the start: {created}"
        assert self.side.duplicates() == [], f"duplicate jobs: {self.side.duplicates()}"
        crm_writes = [w for w in self.crm.writes[self.crm_writes_start :] if w.applied]
        for write in crm_writes:
            assert mapping.crm_class(write.expected) is not mapping.crm_class(write.status), (
                f"syncd wrote {write.status} over {write.expected}: the same class"
            )
        for request_id in self.requests:
            xero_writes = self.side.writes(ledger, self.jobs[request_id])
            to_crm = [w for w in crm_writes if w.request_id == request_id]
            assert xero_writes <= self.crm_changes[request_id], (
                f"{request_id}: {xero_writes} Xero writes for "
                f"{self.crm_changes[request_id]} real CRM changes (flip-flop)"
            )
            assert len(to_crm) <= self.xero_changes[request_id], (
                f"{request_id}: {len(to_crm)} CRM writes "
                f"({[f'{w.expected}->{w.status}' for w in to_crm]}) for "
                f"{self.xero_changes[request_id]} real Xero changes (flip-flop)"
            )

    def check_nothing_lost(self, tasks: Iterable[OutboxTask], events: Iterable[InboxEvent]) -> None:
        unfinished = [
            (t.kind, t.idempotency_key, t.state) for t in tasks if t.state in ("pending", "running")
        ]
        assert unfinished == [], f"tasks left unfinished: {unfinished}"
        assert list(events) == [], "inbox events left unprocessed"
        dead = [t for t in tasks if t.state == "dead"]
        for task in dead:
            assert task.last_error, f"dead task {task.idempotency_key} says nothing"
        unexplained = [t for t in dead if (t.payload or {}).get("request_id") not in self.deleted]
        ledger = self.sandbox.ledger[self.ledger_start :]
        failures = sum(1 for e in ledger if e.fault in ("fail", "drop")) + self.kills
        attempts = sum(t.attempts for t in unexplained)
        assert attempts <= failures, (
            f"dead tasks {[(t.idempotency_key, t.attempts, t.last_error) for t in unexplained]} "
            f"used {attempts} attempts, but only {failures} calls were made to fail"
        )


async def _coroutine(step: Awaitable[T]) -> T:
    return await step


@pytest.mark.parametrize("backend", list(Backend), ids=[b.value for b in Backend])
def test_both_sides_converge_after_any_interleaving(
    db_url: str, fernet_key: str, backend: Backend
) -> None:
    """Random CRM and Xero changes (Projects or Practice Manager), failed and unanswered calls
    and killed workers: after quiescing and one reconciliation both sides agree (or an open
    finding says why), each real change caused at most one write per side, no job was
    duplicated and no task was lost."""
    chosen = os.environ.get("SYNCD_CONVERGENCE_SEED")
    used = int(chosen) if chosen else random.SystemRandom().randrange(2**32)

    class Machine(ConvergenceMachine):
        pass

    Machine.db_url, Machine.fernet_key, Machine.backend = db_url, fernet_key, backend
    try:
        run_state_machine_as_test(
            seed(used)(Machine),
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    except BaseException as exc:
        exc.add_note(f"reproduce with SYNCD_CONVERGENCE_SEED={used}")
        raise
