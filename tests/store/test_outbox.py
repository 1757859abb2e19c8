"""The outbox on real databases: dedupe, fair claims, per-request order, leases, retries,
dead letters, parking while a practice must reconnect."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from syncd.domain.errors import NeedsReconnect, PermanentError, TransientError
from syncd.domain.ids import CompanyId
from syncd.domain.retry import RetryPolicy
from syncd.pipeline.outbox import NewTask, Outbox, TaskRepository, enqueue
from syncd.store.connections import ConnectionRepository
from syncd.store.db import Database
from syncd.store.models import OutboxTask, XeroConnection

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
A, B, C, D = (CompanyId(f"company-{x}") for x in "abcd")


async def add(db: Database, company: CompanyId, key: str, **kw: object) -> int | None:
    async with db.transaction() as session:
        return await enqueue(session, NewTask(company=company, kind="k", key=key, **kw), now=NOW)  # type: ignore[arg-type]


def outbox(db: Database, owner: str = "w1", attempts: int = 3) -> Outbox:
    return Outbox(db, owner=owner, policy=RetryPolicy(max_attempts=attempts), rng=random.Random(1))


async def state_of(db: Database, company: CompanyId, task_id: int) -> OutboxTask:
    async with db.transaction() as session:
        task = await TaskRepository(session).get(company=company, task_id=task_id)
    assert task is not None
    return task


async def test_the_same_fact_twice_is_one_task(db: Database) -> None:
    """Enqueueing an existing key returns None and adds nothing; other companies are separate."""
    assert await add(db, A, "create:r1") is not None
    assert await add(db, A, "create:r1") is None
    assert await add(db, B, "create:r1") is not None
    async with db.transaction() as session:
        assert (await TaskRepository(session).counts(company=A)) == {"pending": 1}


async def test_claims_are_fair_across_companies(db: Database) -> None:
    """Three practices with backlogs and one with a single task: one claim serves all four."""
    for company in (A, B, C):
        for n in range(5):
            await add(db, company, f"t{n}")
    await add(db, D, "only")
    claimed = await outbox(db).claim(now=NOW, limit=4, per_company=1)
    assert sorted(t.company for t in claimed) == [A, B, C, D]
    again = await outbox(db).claim(now=NOW, limit=10, per_company=2)
    assert sorted(t.company for t in again) == [A, A, B, B, C, C]


async def test_a_later_task_never_overtakes_an_earlier_one_of_the_same_request(
    db: Database,
) -> None:
    """Tasks with one order key run strictly in order; others are not held up."""
    first = await add(db, A, "create", order_key="request:r1")
    second = await add(db, A, "state", order_key="request:r1")
    other = await add(db, A, "create-r2", order_key="request:r2")
    box = outbox(db)
    claimed = await box.claim(now=NOW, limit=10, per_company=5)
    assert {t.id for t in claimed} == {first, other}
    assert await box.claim(now=NOW, limit=10, per_company=5) == []
    await box.complete(next(t for t in claimed if t.id == first), now=NOW)
    assert [t.id for t in await box.claim(now=NOW, limit=10, per_company=5)] == [second]


async def test_a_dead_task_releases_its_followers(db: Database) -> None:
    """After a task dies, later tasks of the same request may run (and find out for themselves)."""
    first = await add(db, A, "create", order_key="request:r1")
    second = await add(db, A, "state", order_key="request:r1")
    box = outbox(db)
    [task] = await box.claim(now=NOW, limit=10, per_company=5)
    assert task.id == first
    assert await box.fail(task, PermanentError("400 bad contact"), now=NOW) == "dead"
    assert [t.id for t in await box.claim(now=NOW, limit=10, per_company=5)] == [second]


async def test_transient_failures_back_off_then_die(db: Database) -> None:
    """Each failure reschedules later (Retry-After honoured); the last attempt is dead."""
    task_id = await add(db, A, "flaky")
    assert task_id is not None
    box = outbox(db, attempts=3)
    now = NOW
    for attempt in (1, 2):
        [task] = await box.claim(now=now, limit=1)
        assert task.attempts == attempt
        assert await box.fail(task, TransientError("503", retry_after=30), now=now) == "pending"
        stored = await state_of(db, A, task_id)
        assert stored.run_after >= now + timedelta(seconds=30)
        assert await box.claim(now=now, limit=1) == []  # not due yet
        now = stored.run_after
    [task] = await box.claim(now=now, limit=1)
    assert await box.fail(task, TransientError("503"), now=now) == "dead"
    stored = await state_of(db, A, task_id)
    assert stored.state == "dead"
    assert "3 attempts" in (stored.last_error or "")
    async with db.transaction() as session:
        assert await TaskRepository(session).retry_dead(company=A, task_id=task_id, now=now)
        assert not await TaskRepository(session).retry_dead(company=B, task_id=task_id, now=now)
    assert (await state_of(db, A, task_id)).state == "pending"


async def test_an_expired_lease_is_claimed_again_and_the_old_owner_loses(db: Database) -> None:
    """A worker killed mid-task loses its lease; the task is retried; the zombie can't settle."""
    task_id = await add(db, A, "x")
    first = outbox(db, owner="dead-worker")
    [zombie] = await first.claim(now=NOW, limit=1)
    second = outbox(db, owner="live-worker")
    assert await second.claim(now=NOW + timedelta(minutes=1), limit=1) == []
    [task] = await second.claim(now=NOW + timedelta(minutes=6), limit=1)
    assert task.id == task_id
    assert task.attempts == 2
    assert not await first.complete(zombie, now=NOW + timedelta(minutes=7))
    assert await second.complete(task, now=NOW + timedelta(minutes=7))
    assert (await state_of(db, A, task_id)).state == "done"


async def test_a_renewed_lease_keeps_a_slow_task_with_its_worker(db: Database) -> None:
    """Renewing pushes the expiry on; once another worker has the task, renewal says so."""
    await add(db, A, "slow")
    first = outbox(db, owner="first")
    [task] = await first.claim(now=NOW, limit=1)
    assert await first.extend(task, now=NOW + timedelta(minutes=4))
    assert await outbox(db, owner="second").claim(now=NOW + timedelta(minutes=6), limit=1) == []
    [taken] = await outbox(db, owner="second").claim(now=NOW + timedelta(minutes=10), limit=1)
    assert taken.id == task.id
    assert not await first.extend(task, now=NOW + timedelta(minutes=10))


async def test_a_task_whose_workers_keep_dying_is_exhausted(db: Database) -> None:
    """Attempts that end by lease expiry still count: past max_attempts the task is exhausted."""
    await add(db, A, "poison")
    now = NOW
    claims = []
    for n in range(4):
        [task] = await outbox(db, owner=f"w{n}", attempts=3).claim(now=now, limit=1)
        claims.append(task)
        now += timedelta(minutes=6)
    box = outbox(db, attempts=3)
    assert [box.exhausted(task) for task in claims] == [False, False, False, True]


async def test_practices_that_must_reconnect_are_parked(db: Database) -> None:
    """No claims for a practice needing reconnect; NeedsReconnect parks without an attempt."""
    await add(db, A, "a1")
    await add(db, B, "b1")
    async with db.transaction() as session:
        await ConnectionRepository(session).save(
            company=A,
            connection=XeroConnection(
                company_id=A,
                tenant_id="t-a",
                connected_at=NOW,
                updated_at=NOW,
                needs_reconnect=True,
            ),
        )
    box = outbox(db)
    [task] = await box.claim(now=NOW, limit=10, per_company=5)
    assert task.company == B
    assert await box.fail(task, NeedsReconnect("revoked"), now=NOW) == "parked"
    stored = await state_of(db, B, task.id)
    assert (stored.state, stored.attempts) == ("pending", 0)


async def test_concurrent_claimers_never_share_a_task(db: Database) -> None:
    """Several workers claiming at once get disjoint tasks (SKIP LOCKED / IMMEDIATE)."""
    for n in range(60):
        await add(db, CompanyId(f"c{n % 6}"), f"t{n}")
    boxes = [outbox(db, owner=f"w{i}") for i in range(4)]
    ids: list[int] = []
    for _ in range(30):
        batches = await asyncio.gather(
            *(box.claim(now=NOW, limit=10, per_company=3) for box in boxes)
        )
        ids.extend(task.id for batch in batches for task in batch)
        if len(ids) >= 60:
            break
    assert len(ids) == len(set(ids))
    assert len(ids) == 60
