"""The worker on a real database: slow tasks keep their lease, exhausted tasks die, a freed slot
is refilled without waiting for the next tick, and a completion that lost its lease is not
reported as done."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import select

from syncd.clock import SystemClock
from syncd.domain.errors import PermanentError, TransientError
from syncd.domain.ids import CompanyId
from syncd.domain.retry import RetryPolicy
from syncd.pipeline.inbound import InboundHandler, Outcome
from syncd.pipeline.inbox import ClaimedEvent, Inbox, InboxWriter, event_row
from syncd.pipeline.outbox import ClaimedTask, NewTask, Outbox, TaskRepository, enqueue
from syncd.pipeline.worker import TaskContext, TaskHandler, Worker
from syncd.store.db import Database
from syncd.store.models import InboxEvent
from syncd.xero.webhooks import WebhookEvent

A = CompanyId("company-a")


def worker(
    db: Database,
    owner: str,
    handlers: dict[str, TaskHandler],
    *,
    lease: float = 1.0,
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
        inbox=Inbox(db),
        inbound=None,
        handlers=handlers,
        clock=SystemClock(),
        on_dead=on_dead,
        max_in_flight=max_in_flight,
    )


async def add(db: Database, kind: str, *, now: datetime | None = None) -> None:
    async with db.transaction() as session:
        await enqueue(
            session, NewTask(company=A, kind=kind, key=kind), now=now or datetime.now(UTC)
        )


async def test_a_task_longer_than_its_lease_runs_once_and_completes(db: Database) -> None:
    """A 1.5 s task with a 1 s lease: the second worker finds nothing to take."""
    runs = 0

    async def slow(context: TaskContext) -> dict[str, object]:
        nonlocal runs
        runs += 1
        await asyncio.sleep(1.5)
        return {}

    await add(db, "slow")
    first, second = worker(db, "first", {"slow": slow}), worker(db, "second", {"slow": slow})
    assert await first.tick_outbox() == 1
    await asyncio.sleep(1.2)
    assert await second.tick_outbox() == 0
    await first.wait_idle()
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

    now = datetime.now(UTC) - timedelta(seconds=10)
    await add(db, "crashy", now=now)
    for owner in ("gone-1", "gone-2"):  # claimed, then their workers vanished
        box = Outbox(db, owner=owner, lease=timedelta(seconds=1))
        assert len(await box.claim(now=now, limit=1)) == 1
        now += timedelta(seconds=2)
    dead: list[str] = []
    survivor = worker(db, "survivor", {"crashy": crashy}, dead=dead)
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
        await asyncio.sleep(0.05)
        ran.append(context.task.kind)
        return {}

    await add(db, "first")
    await add(db, "second")
    solo = worker(db, "solo", {"first": note, "second": note}, max_in_flight=1)
    assert await solo.tick_outbox() == 1
    assert solo.in_flight == 1
    await solo.settle()
    assert solo.in_flight == 0
    assert ran == ["first", "second"]
    async with db.transaction() as session:
        tasks = TaskRepository(session)
        assert await tasks.counts(company=A) == {"done": 2}


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
        inbox=Inbox(db),
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


async def inbox_worker(db: Database, error: Exception) -> Worker:
    """One stored webhook event, and a worker whose inbound handling fails with `error`."""
    writer = InboxWriter(db)
    try:
        await writer.write(
            [
                event_row(
                    WebhookEvent(
                        tenant_id="tenant-1",
                        tenant_type="ORGANISATION",
                        category="CONTACT",
                        event_type="UPDATE",
                        resource_id="contact-1",
                        event_at=datetime.now(UTC),
                    ),
                    source="webhook",
                    received_at=datetime.now(UTC),
                )
            ]
        )
    finally:
        await writer.close()
    applier = Worker(
        outbox=Outbox(db, owner="inbox"),
        inbox=Inbox(db),
        inbound=cast(InboundHandler, FailingInbound(error)),
        handlers={},
        clock=SystemClock(),
    )
    return applier


async def only_event(db: Database) -> InboxEvent:
    async with db.transaction() as session:
        [row] = (await session.execute(select(InboxEvent))).scalars().all()
    return row


async def test_an_inbound_event_that_fails_for_now_is_tried_again_after_retry_after(
    db: Database,
) -> None:
    """The one retry policy: a transient failure puts the event back, due no sooner than
    Xero's Retry-After."""
    applier = await inbox_worker(db, TransientError("Xero is busy", retry_after=600))
    before = datetime.now(UTC)
    assert await applier.tick_inbox() == 1
    row = await only_event(db)
    assert row.state == "pending" and row.result == "retrying: Xero is busy"
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= before + timedelta(seconds=600)


async def test_an_inbound_event_that_fails_for_good_is_failed_with_the_reason(
    db: Database,
) -> None:
    applier = await inbox_worker(db, PermanentError("the contact was merged away"))
    assert await applier.tick_inbox() == 1
    row = await only_event(db)
    assert (row.state, row.result) == ("failed", "permanent error: the contact was merged away")
