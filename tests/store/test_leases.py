"""The lease mechanism both queues share, seen through the inbox (the outbox's own tests cover
it there): an expired lease is claimed again as a new attempt, renewal keeps an event with its
worker, only the holder settles, a heartbeat renews what is held and notices what was lost, and
concurrent claimers never share an event."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from syncd.domain.errors import PermanentError, TransientError
from syncd.domain.ids import CompanyId
from syncd.pipeline.inbox import ClaimedEvent, Inbox, InboxWriter, event_row
from syncd.pipeline.leases import Heartbeat
from syncd.pipeline.outbox import NewTask, Outbox, TaskRepository, enqueue
from syncd.store.db import Database
from syncd.store.models import InboxEvent
from syncd.xero.webhooks import WebhookEvent
from tests.fakes import ManualClock, eventually

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


async def store(db: Database, count: int = 1) -> None:
    writer = InboxWriter(db)
    try:
        await writer.write(
            [
                event_row(
                    WebhookEvent(
                        tenant_id=f"tenant-{n % 3}",
                        tenant_type="ORGANISATION",
                        category="CONTACT",
                        event_type="UPDATE",
                        resource_id=f"contact-{n}",
                        event_at=NOW,
                    ),
                    source="webhook",
                    received_at=NOW,
                )
                for n in range(count)
            ]
        )
    finally:
        await writer.close()


def inbox(db: Database, owner: str, lease: timedelta = LEASE) -> Inbox:
    return Inbox(db, owner=owner, lease=lease, rng=random.Random(1))


async def row_of(db: Database, event: ClaimedEvent) -> InboxEvent:
    async with db.transaction() as session:
        row = await session.get(InboxEvent, event.id)
    assert row is not None
    return row


async def test_an_expired_lease_is_claimed_again_and_the_old_holder_cannot_settle(
    db: Database,
) -> None:
    """A worker that stalls past its lease loses the event to another; its late result is
    refused and the new holder's stands."""
    await store(db)
    first, second = inbox(db, "first"), inbox(db, "second")
    [stale] = await first.claim(now=NOW, limit=10)
    assert (stale.attempts, (await row_of(db, stale)).lease_owner) == (1, "first")
    assert await second.claim(now=NOW + timedelta(minutes=1), limit=10) == []
    [taken] = await second.claim(now=NOW + timedelta(minutes=6), limit=10)
    assert (taken.id, taken.attempts) == (stale.id, 2)
    later = NOW + timedelta(minutes=7)
    assert not await first.settle(stale, state="done", result="first's", now=later)
    row = await row_of(db, stale)
    assert (row.state, row.lease_owner, row.result) == ("processing", "second", None)
    assert await second.settle(taken, state="done", result="second's", now=later)
    row = await row_of(db, stale)
    assert (row.state, row.result, row.processed_at) == ("done", "second's", later)
    assert not await first.settle(stale, state="ignored", result="first's", now=later)
    assert (await row_of(db, stale)).result == "second's"


async def test_claiming_again_after_ones_own_lease_ran_out_is_another_attempt(
    db: Database,
) -> None:
    """The owner alone does not identify a claim: the same worker's earlier attempt, whose
    lease expired, cannot settle the attempt that replaced it."""
    await store(db)
    box = inbox(db, "same")
    [old] = await box.claim(now=NOW, limit=1)
    [new] = await box.claim(now=NOW + timedelta(minutes=6), limit=1)
    assert (new.id, new.attempts) == (old.id, 2)
    assert not await box.settle(old, state="done", result="old", now=NOW + timedelta(minutes=7))
    assert await box.settle(new, state="done", result="new", now=NOW + timedelta(minutes=7))


async def test_renewal_keeps_an_event_with_its_worker_until_it_is_lost(db: Database) -> None:
    """Renewing pushes the expiry on; once another worker has the event, renewal says so."""
    await store(db)
    first = inbox(db, "first")
    [event] = await first.claim(now=NOW, limit=1)
    assert await first.extend(event, now=NOW + timedelta(minutes=4))
    assert await inbox(db, "second").claim(now=NOW + timedelta(minutes=6), limit=1) == []
    [taken] = await inbox(db, "second").claim(now=NOW + timedelta(minutes=10), limit=1)
    assert taken.id == event.id
    assert not await first.extend(event, now=NOW + timedelta(minutes=10))


async def test_a_stale_holders_failure_changes_nothing(db: Database) -> None:
    """Retry or give-up from a worker that lost the event is "lost": the new holder's claim is
    left exactly as it was, for either queue."""
    await store(db)
    first, second = inbox(db, "first"), inbox(db, "second")
    [stale] = await first.claim(now=NOW, limit=1)
    [taken] = await second.claim(now=NOW + timedelta(minutes=6), limit=1)
    before = await row_of(db, taken)
    later = NOW + timedelta(minutes=7)
    assert await first.fail(stale, TransientError("503"), now=later) == "lost"
    assert await first.fail(stale, PermanentError("400"), now=later) == "lost"
    after = await row_of(db, taken)
    assert (after.state, after.lease_owner, after.attempts, after.leased_until) == (
        before.state,
        before.lease_owner,
        before.attempts,
        before.leased_until,
    )

    company = CompanyId("company-a")
    async with db.transaction() as session:
        await enqueue(session, NewTask(company=company, kind="k", key="k"), now=NOW)
    [zombie] = await Outbox(db, owner="first").claim(now=NOW, limit=1)
    [task] = await Outbox(db, owner="second").claim(now=NOW + timedelta(minutes=6), limit=1)
    assert await Outbox(db, owner="first").fail(zombie, TransientError("503"), now=later) == (
        "lost"
    )
    async with db.transaction() as session:
        stored = await TaskRepository(session).get(company=company, task_id=task.id)
    assert stored is not None
    assert (stored.state, stored.lease_owner, stored.attempts) == ("running", "second", 2)


async def test_a_heartbeat_renews_what_is_held_and_notices_what_was_lost(db: Database) -> None:
    """Once a third of the lease has passed on the worker's clock, the heartbeat renews every
    claim still held; a claim taken over meanwhile is reported lost, a released one is left
    alone."""
    await store(db, 3)
    clock = ManualClock(start=NOW)
    first = inbox(db, "first", lease=timedelta(seconds=60))
    kept, taken, released = await first.claim(now=clock.now(), limit=3)
    clock.advance(61)  # the heartbeat is not running yet: all three leases run out
    [stolen] = await inbox(db, "second").claim(now=clock.now(), limit=1)
    assert stolen.id == kept.id  # the oldest first; renew the other two again by hand
    assert await first.extend(taken, now=clock.now())
    assert await first.extend(released, now=clock.now())
    kept, taken = taken, kept  # names now say what happened to each
    released_until = (await row_of(db, released)).leased_until
    async with Heartbeat(
        first.leases, clock, [kept, taken, released], since=NOW, poll=0.001
    ) as beat:
        beat.release(released)  # before its first beat: the task has not run yet
        await eventually(lambda: beat.lost(taken), what="the taken claim is reported lost")
    assert not beat.lost(kept) and not beat.lost(released)
    assert (await row_of(db, kept)).leased_until == clock.now() + timedelta(seconds=60)
    assert (await row_of(db, released)).leased_until == released_until
    assert (await row_of(db, taken)).lease_owner == "second"


async def test_concurrent_claimers_never_share_an_event(db: Database) -> None:
    """Several workers claiming at once get disjoint events (SKIP LOCKED / IMMEDIATE)."""
    await store(db, 60)
    boxes = [inbox(db, f"w{n}") for n in range(4)]
    ids: list[int] = []
    for _ in range(30):
        batches = await asyncio.gather(*(box.claim(now=NOW, limit=7) for box in boxes))
        ids.extend(event.id for batch in batches for event in batch)
        if len(ids) >= 60:
            break
    assert len(ids) == len(set(ids)) == 60
    async with db.transaction() as session:
        owners = (await session.execute(select(InboxEvent.lease_owner))).scalars().all()
    assert set(owners) <= {f"w{n}" for n in range(4)}
