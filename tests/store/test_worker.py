"""The worker on a real database: slow tasks keep their lease, exhausted tasks die, a freed slot
is refilled without waiting for the next tick, and a completion that lost its lease is not
reported as done."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from syncd.clock import SystemClock
from syncd.domain.ids import CompanyId
from syncd.domain.retry import RetryPolicy
from syncd.pipeline.inbox import Inbox
from syncd.pipeline.outbox import ClaimedTask, NewTask, Outbox, TaskRepository, enqueue
from syncd.pipeline.worker import TaskContext, TaskHandler, Worker
from syncd.store.db import Database

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
