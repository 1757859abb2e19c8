"""The worker on a real database: slow tasks keep their lease, exhausted tasks die, a freed slot
is refilled without waiting for the next tick, a completion that lost its lease is not reported
as done, inbound events retry with jitter, and several workers apply each event once.

Time is a ManualClock the tests move (tests.store.stepping), so nothing depends on how fast
the machine is."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import select

from syncd.clock import Clock, SystemClock
from syncd.domain.errors import PermanentError, TransientError
from syncd.domain.ids import CompanyId
from syncd.domain.retry import RetryPolicy
from syncd.pipeline.inbound import InboundHandler, Outcome
from syncd.pipeline.inbox import INBOX_POLICY, ClaimedEvent, Inbox, InboxWriter, event_row
from syncd.pipeline.outbox import ClaimedTask, NewTask, Outbox, TaskRepository, enqueue
from syncd.pipeline.worker import TaskContext, TaskHandler, Worker
from syncd.store.db import Database
from syncd.store.models import InboxEvent
from syncd.xero.governor import Limits, RateGovernor
from syncd.xero.webhooks import WebhookEvent
from tests.fakes import ManualClock
from tests.store.stepping import step

A = CompanyId("company-a")
BEAT = 0.001  # real seconds between a heartbeat's looks at the (manual) clock


def worker(
    db: Database,
    owner: str,
    handlers: dict[str, TaskHandler],
    *,
    clock: Clock | None = None,
    lease: float = 60.0,
    dead: list[str] | None = None,
    max_in_flight: int = 20,
) -> Worker:
    async def on_dead(task: ClaimedTask, reason: str) -> None:
        if dead is not None:
            dead.append(reason)

    return Worker(
        outbox=Outbox(
            db, owner=owner, lease=timedelta(seconds=lease), policy=RetryPolicy(max_attempts=2)
        ),
        inbox=Inbox(db, owner=owner),
        inbound=None,
        handlers=handlers,
        clock=clock or ManualClock(),
        on_dead=on_dead,
        max_in_flight=max_in_flight,
        heartbeat_seconds=BEAT,
    )


async def add(db: Database, kind: str, *, now: datetime) -> None:
    async with db.transaction() as session:
        await enqueue(session, NewTask(company=A, kind=kind, key=kind), now=now)


async def test_a_task_longer_than_its_lease_runs_once_and_completes(db: Database) -> None:
    """A task that takes 150 s (on the clock) with a 60 s lease: its heartbeat renews the lease,
    so a second worker ticking every 10 s finds nothing to take, and the task is done once."""
    clock = ManualClock()
    runs = 0

    async def slow(context: TaskContext) -> dict[str, object]:
        nonlocal runs
        runs += 1
        await context.clock.sleep(150)
        return {}

    await add(db, "slow", now=clock.now())
    first = worker(db, "first", {"slow": slow}, clock=clock)
    second = worker(db, "second", {"slow": slow}, clock=clock)
    assert await first.tick_outbox() == 1
    # Up to the task's end on the clock; it then settles in real time, which `settle` waits
    # for (stepping on while it settles would only move the clock past 150).
    while clock.monotonic() < 150:
        assert first.in_flight == 1
        await step(db, clock, 10)
        assert await second.tick_outbox() == 0
    await first.settle()
    async with db.transaction() as session:
        task = await TaskRepository(session).by_key(company=A, key="slow")
    assert task is not None
    assert (task.state, task.attempts, runs) == ("done", 1, 1)


async def test_a_task_past_its_attempts_is_dead_without_running(db: Database) -> None:
    """Two workers died holding the task (max 2 attempts): the third does not run it again."""
    runs = 0

    async def crashy(context: TaskContext) -> dict[str, object]:
        nonlocal runs
        runs += 1
        return {}

    clock = ManualClock()
    await add(db, "crashy", now=clock.now())
    for owner in ("gone-1", "gone-2"):  # claimed, then their workers vanished
        box = Outbox(db, owner=owner, lease=timedelta(seconds=1))
        assert len(await box.claim(now=clock.now(), limit=1)) == 1
        clock.advance(2)
    dead: list[str] = []
    survivor = worker(db, "survivor", {"crashy": crashy}, clock=clock, dead=dead)
    await survivor.wait_idle()
    async with db.transaction() as session:
        task = await TaskRepository(session).by_key(company=A, key="crashy")
    assert task is not None
    assert (task.state, runs) == ("dead", 0)
    assert len(dead) == 1 and "leases expired" in dead[0]


async def test_a_freed_slot_is_refilled_at_once_and_settle_waits_for_that_too(
    db: Database,
) -> None:
    """One slot, two tasks, one tick: the second starts as the first ends, and `settle` returns
    only when both are done."""
    ran: list[str] = []

    async def note(context: TaskContext) -> dict[str, object]:
        await asyncio.sleep(0)  # a moment in which a second slot, if there were one, could fill
        ran.append(context.task.kind)
        return {}

    clock = ManualClock()
    await add(db, "first", now=clock.now())
    await add(db, "second", now=clock.now())
    solo = worker(db, "solo", {"first": note, "second": note}, clock=clock, max_in_flight=1)
    assert await solo.tick_outbox() == 1
    assert solo.in_flight == 1
    await solo.settle()
    assert solo.in_flight == 0
    assert ran == ["first", "second"]
    async with db.transaction() as session:
        tasks = TaskRepository(session)
        assert await tasks.counts(company=A) == {"done": 2}


async def test_wait_idle_does_not_return_while_a_refill_is_about_to_start_a_task(
    db: Database,
) -> None:
    """`after` waits behind `blocker` (same order key). The blocker ends while wait_idle is in
    its inbox tick, after an outbox tick that started nothing: the refill its end set off is
    still claiming `after`, so the worker is not idle yet (the race that left an XPM job in its
    first state in a test)."""
    ran: list[str] = []
    gates = {"quick": asyncio.Event(), "blocker": asyncio.Event(), "after": asyncio.Event()}
    gates["after"].set()

    runners: dict[str, asyncio.Task[object]] = {}

    async def note(context: TaskContext) -> dict[str, object]:
        runners[context.task.kind] = cast("asyncio.Task[object]", asyncio.current_task())
        await gates[context.task.kind].wait()
        ran.append(context.task.kind)
        return {}

    clock = ManualClock()
    async with db.transaction() as session:
        for kind, order in (("quick", "x"), ("blocker", "y"), ("after", "y")):
            await enqueue(
                session, NewTask(company=A, kind=kind, key=kind, order_key=order), now=clock.now()
            )
    handlers = dict.fromkeys(("quick", "blocker", "after"), note)
    idle = worker(db, "idle", cast("dict[str, TaskHandler]", handlers), clock=clock)
    inbox_ticks = 0
    tick_inbox = idle.tick_inbox

    async def blocker_ends_during_the_second_inbox_tick() -> int:
        nonlocal inbox_ticks
        inbox_ticks += 1
        if inbox_ticks == 1:
            gates["quick"].set()  # wait_idle has something to wait for: a second round
        if inbox_ticks == 2:
            gates["blocker"].set()
            # Its end, and the worker's look at the freed slot (which sets off a refill).
            await asyncio.wait({runners["blocker"]})
            assert idle.in_flight == 0
        return await tick_inbox()

    idle.tick_inbox = blocker_ends_during_the_second_inbox_tick  # type: ignore[method-assign]
    await idle.wait_idle()
    assert inbox_ticks >= 2
    assert ran == ["quick", "blocker", "after"]


async def test_a_practice_with_no_xero_budget_left_is_not_claimed_for(db: Database) -> None:
    """A's minute is spent: a tick claims B's task, not A's (which would only wait in a slot);
    once A has budget again its task runs."""
    b = CompanyId("company-b")
    spent = {A}
    ran: list[str] = []

    async def note(context: TaskContext) -> dict[str, object]:
        ran.append(context.task.company)
        return {}

    async with db.transaction() as session:
        for company in (A, b):
            await enqueue(
                session, NewTask(company=company, kind="note", key="k"), now=datetime.now(UTC)
            )
    fair = Worker(
        outbox=Outbox(db, owner="fair", lease=timedelta(seconds=5)),
        inbox=Inbox(db, owner="fair"),
        inbound=None,
        handlers={"note": note},
        clock=SystemClock(),
        spent=lambda: spent,
    )
    assert await fair.tick_outbox() == 1
    await fair.settle()
    assert ran == [b]
    spent.clear()
    assert await fair.tick_outbox() == 1
    await fair.settle()
    assert ran == [b, A]


class FailingInbound:
    """Stands in for the inbound handler (the database stays real): every event fails with
    `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def handle(self, event: ClaimedEvent) -> Outcome:
        raise self.error


def webhook_event(n: int, tenant: str = "tenant-1") -> WebhookEvent:
    return WebhookEvent(
        tenant_id=tenant,
        tenant_type="ORGANISATION",
        category="CONTACT",
        event_type="UPDATE",
        resource_id=f"contact-{n}",
        event_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
    )


async def store_events(db: Database, count: int, *, now: datetime) -> None:
    writer = InboxWriter(db)
    try:
        await writer.write(
            [
                event_row(webhook_event(n), source="webhook", received_at=now)
                for n in range(1, count + 1)
            ]
        )
    finally:
        await writer.close()


async def inbox_worker(
    db: Database,
    error: Exception,
    *,
    clock: ManualClock,
    events: int = 1,
    rng: random.Random | None = None,
) -> Worker:
    """Stored webhook events, and a worker whose inbound handling fails with `error`."""
    await store_events(db, events, now=clock.now())
    return Worker(
        outbox=Outbox(db, owner="inbox"),
        inbox=Inbox(db, owner="inbox", rng=rng),
        inbound=cast(InboundHandler, FailingInbound(error)),
        handlers={},
        clock=clock,
        heartbeat_seconds=BEAT,
    )


async def stored_events(db: Database) -> list[InboxEvent]:
    async with db.transaction() as session:
        return list((await session.execute(select(InboxEvent).order_by(InboxEvent.id))).scalars())


async def test_an_inbound_event_that_fails_for_now_is_tried_again_after_retry_after(
    db: Database,
) -> None:
    """The one retry policy: a transient failure puts the event back, due no sooner than
    Xero's Retry-After."""
    clock = ManualClock()
    applier = await inbox_worker(db, TransientError("Xero is busy", retry_after=600), clock=clock)
    assert await applier.tick_inbox() == 1
    [row] = await stored_events(db)
    assert row.state == "pending" and row.result == "retrying: Xero is busy"
    assert (row.lease_owner, row.leased_until) == (None, None)
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= clock.now() + timedelta(seconds=600)


async def test_an_inbound_event_that_fails_for_good_is_failed_with_the_reason(
    db: Database,
) -> None:
    """A permanent error fails the event at once, with the policy's reason."""
    applier = await inbox_worker(
        db, PermanentError("the contact was merged away"), clock=ManualClock()
    )
    assert await applier.tick_inbox() == 1
    [row] = await stored_events(db)
    assert (row.state, row.result) == ("failed", "permanent error: the contact was merged away")


async def test_inbound_events_that_fail_together_retry_at_jittered_times(db: Database) -> None:
    """Twenty events failing at once come back spread over the policy's window (half to all
    of the first delay), not all at the same moment."""
    clock = ManualClock()
    applier = await inbox_worker(
        db, TransientError("503"), clock=clock, events=20, rng=random.Random(7)
    )
    assert await applier.tick_inbox() == 20
    delays = [
        (row.next_attempt_at - clock.now()).total_seconds()
        for row in await stored_events(db)
        if row.next_attempt_at is not None
    ]
    assert len(delays) == 20
    assert all(INBOX_POLICY.base_delay / 2 <= d <= INBOX_POLICY.base_delay for d in delays)
    assert len(set(delays)) > 10


class GovernedInbound:
    """Stands in for the inbound handler (the database stays real): applying an event first
    waits for the practice's Xero budget on the worker's rate governor, as the real handler's
    calls do, then records who applied it."""

    def __init__(self, governor: RateGovernor, owner: str, applied: list[tuple[int, str]]) -> None:
        self.governor = governor
        self.owner = owner
        self.applied = applied

    async def handle(self, event: ClaimedEvent) -> Outcome:
        async with self.governor.slot(event.tenant_id):
            self.applied.append((event.id, self.owner))
        return Outcome(state="done", result=f"applied by {self.owner}")


async def test_several_workers_apply_each_inbound_event_once(db: Database) -> None:
    """Four workers (each with its own connections and governor, like four processes) share an
    inbox of six events with a 20 s lease; each may call Xero once a minute, so a worker's
    second event waits some 60 s for its budget, three leases long. The waiting events stay
    leased to their worker: the idle fourth worker never takes one over, and every event is
    applied exactly once and settled by the worker that applied it."""
    clock = ManualClock()
    lease, events = timedelta(seconds=20), 6
    await store_events(db, events, now=clock.now())
    applied: list[tuple[int, str]] = []
    databases = [Database(db.url) for _ in range(4)]
    workers = [
        Worker(
            outbox=Outbox(own_db, owner=f"w{n}"),
            inbox=Inbox(own_db, owner=f"w{n}", lease=lease),
            inbound=cast(
                InboundHandler,
                GovernedInbound(RateGovernor(Limits(per_minute=1), clock=clock), f"w{n}", applied),
            ),
            handlers={},
            clock=clock,
            inbox_batch=2,
            heartbeat_seconds=BEAT,
        )
        for n, own_db in enumerate(databases)
    ]
    ticks: dict[int, asyncio.Task[int]] = {}
    try:
        # Until every event is settled and every worker has finished what it holds.
        while ticks or any(row.state != "done" for row in await stored_events(db)):
            assert clock.monotonic() < 600, "the workers did not finish in 10 minutes"
            for n in [n for n, tick in ticks.items() if tick.done()]:
                ticks.pop(n).result()
            if any(row.state != "done" for row in await stored_events(db)):
                for n, each in enumerate(workers):  # the scheduler's drain_inbox, everywhere
                    if n not in ticks:
                        ticks[n] = asyncio.create_task(each.tick_inbox())
            await step(db, clock, 2)
    finally:
        for tick in ticks.values():
            tick.cancel()
        await asyncio.gather(*ticks.values(), return_exceptions=True)
        for own_db in databases:
            await own_db.dispose()
    assert clock.monotonic() >= 60  # the second events did wait for a minute's budget
    assert Counter(event for event, _ in applied) == Counter(
        row.id for row in await stored_events(db)
    )
    by_worker = dict(applied)
    for row in await stored_events(db):
        assert (row.state, row.attempts) == ("done", 1)
        assert row.result == f"applied by {by_worker[row.id]}"
