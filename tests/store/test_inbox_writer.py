"""The inbox's durable write path: group commit, the driver-level sinks, duplicates dropped,
the event loop never blocked by a lock, and rows that read back through the models."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from syncd.pipeline.inbox import InboxWriter, event_row, quarantine_row
from syncd.store.db import Database
from syncd.store.inbox_sink import PostgresSink, SqliteSink, model_columns_missing, sink_for
from syncd.store.models import InboxEvent
from syncd.xero.webhooks import WebhookEvent
from tests.fakes import eventually

AT = datetime(2026, 11, 25, 10, 30, 15, 123000, tzinfo=UTC)


def event(n: int, tenant: str = "tenant-1") -> WebhookEvent:
    return WebhookEvent(
        tenant_id=tenant,
        tenant_type="ORGANISATION",
        category="CONTACT",
        event_type="UPDATE",
        resource_id=f"resource-{n}",
        event_at=AT,
    )


async def stored(db: Database) -> list[InboxEvent]:
    async with db.transaction() as session:
        return list((await session.execute(select(InboxEvent).order_by(InboxEvent.id))).scalars())


def test_the_sink_writes_only_columns_the_model_has() -> None:
    """The driver-level column list stays in step with the model."""
    assert model_columns_missing(set(InboxEvent.__table__.columns.keys())) == set()


async def test_rows_round_trip_through_the_models(db: Database) -> None:
    """What the sink writes reads back with aware times, JSON and the right states."""
    writer = InboxWriter(db)
    try:
        await writer.write(
            [
                event_row(event(1), source="webhook", received_at=AT),
                event_row(
                    event(2),
                    source="poller",
                    received_at=AT,
                    snapshot={"status": "CLOSED"},
                    link_version=3,
                ),
                quarantine_row(b"not json", "the body is not JSON", received_at=AT),
            ]
        )
    finally:
        await writer.close()
    first, second, quarantined = await stored(db)
    assert (first.event_date, first.received_at, first.payload) == (AT, AT, None)
    assert second.payload == {"snapshot": {"status": "CLOSED"}, "link_version": 3}
    assert (quarantined.state, quarantined.raw_body, quarantined.tenant_id) == (
        "quarantined",
        "not json",
        None,
    )


async def test_concurrent_writes_share_commits_and_duplicates_are_dropped(db: Database) -> None:
    """64 concurrent requests (each event twice) make far fewer commits and one row each."""
    writer = InboxWriter(db)
    commits = 0
    insert = writer._sink.insert

    async def counting(rows: object) -> None:
        nonlocal commits
        commits += 1
        await insert(rows)  # type: ignore[arg-type]

    writer._sink.insert = counting  # type: ignore[method-assign]
    try:
        await asyncio.gather(
            *(
                writer.write([event_row(event(n % 32), source="webhook", received_at=AT)])
                for n in range(64)
            )
        )
    finally:
        await writer.close()
    assert len(await stored(db)) == 32
    assert commits < 64


async def test_a_batch_fills_while_the_one_before_it_commits(db: Database) -> None:
    """Requests arriving while the sink can take no more batches wait together and go in one
    batch; commits overlap only as far as the sink allows (SQLite 1, PostgreSQL 2)."""
    writer = InboxWriter(db)
    insert = writer._sink.insert
    gate, entered = asyncio.Event(), asyncio.Event()
    batches: list[int] = []
    inside = most_inside = 0

    async def gated(rows: list[object]) -> None:
        nonlocal inside, most_inside
        batches.append(len(rows))
        inside += 1
        most_inside = max(most_inside, inside)
        entered.set()
        await gate.wait()
        await insert(rows)  # type: ignore[arg-type]
        inside -= 1

    writer._sink.insert = gated  # type: ignore[method-assign]
    concurrency = writer._sink.concurrency
    try:
        first = []
        for n in range(concurrency):  # each a batch of its own, held in flight
            entered.clear()
            first.append(
                asyncio.create_task(
                    writer.write([event_row(event(n), source="webhook", received_at=AT)])
                )
            )
            await asyncio.wait_for(entered.wait(), timeout=10)
        later = [
            asyncio.create_task(
                writer.write([event_row(event(n), source="webhook", received_at=AT)])
            )
            for n in range(concurrency, concurrency + 20)
        ]
        await asyncio.sleep(0.05)
        assert batches == [1] * concurrency  # the later ones wait for a free slot
        gate.set()
        await asyncio.gather(*first, *later)
    finally:
        await writer.close()
    assert batches == [1] * concurrency + [20]
    assert most_inside == concurrency
    assert len(await stored(db)) == concurrency + 20


async def test_times_are_stored_as_utc_and_naive_ones_refused(db: Database) -> None:
    """A time in another zone is stored as the same instant in UTC; a naive one fails the
    write (every time in syncd is aware)."""
    writer = InboxWriter(db)
    elsewhere = AT.astimezone(timezone(timedelta(hours=5, minutes=30)))
    try:
        await writer.write([event_row(event(1), source="webhook", received_at=elsewhere)])
        with pytest.raises(ValueError, match="naive"):
            await writer.write(
                [event_row(event(2), source="webhook", received_at=AT.replace(tzinfo=None))]
            )
    finally:
        await writer.close()
    [row] = await stored(db)
    assert row.received_at == AT
    assert row.received_at.utcoffset() == timedelta(0)


async def test_a_failed_commit_fails_every_waiting_request(db: Database) -> None:
    """When the database refuses the batch, each request sees the error (Xero will retry)."""
    writer = InboxWriter(db)

    async def broken(rows: object) -> None:
        raise RuntimeError("disk full")

    writer._sink.insert = broken  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(
            *(
                writer.write([event_row(event(n), source="webhook", received_at=AT)])
                for n in range(3)
            ),
            return_exceptions=True,
        )
    finally:
        await writer.close()
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await stored(db) == []


async def test_sqlite_sink_waits_off_the_loop_when_the_lock_is_held(sqlite_db: Database) -> None:
    """With another connection holding the write lock, the insert waits in a thread: the event
    loop keeps running, and the row lands once the lock is released."""
    db = sqlite_db
    path = str(make_url(db.url).database)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    sink = SqliteSink(path, checkpoint_seconds=0)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    running = asyncio.create_task(ticker())
    try:
        insert = asyncio.create_task(
            sink.insert([event_row(event(1), source="webhook", received_at=AT)])
        )
        # However long the lock is held, the loop goes round: a hundred turns of the ticker
        # while the insert waits (an insert blocking the loop would only let them happen
        # after it gave up or the lock was released).
        await eventually(lambda: ticks >= 100, what="the event loop keeps turning")
        assert not insert.done()
        holder.execute("COMMIT")
        await asyncio.wait_for(insert, timeout=30)
    finally:
        running.cancel()
        holder.close()
        await sink.close()
    assert len(await stored(db)) == 1


async def test_postgres_sink_reconnects_after_a_dropped_connection(postgres_db: Database) -> None:
    """If PostgreSQL drops the sink's connection, the next batch reconnects and lands."""
    db = postgres_db
    sink = sink_for(db.url)
    assert isinstance(sink, PostgresSink)
    try:
        await sink.insert([event_row(event(1), source="webhook", received_at=AT)])
        async with db.engine.begin() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        await sink.insert([event_row(event(2), source="webhook", received_at=AT)])
    finally:
        await sink.close()
    assert [row.resource_id for row in await stored(db)] == ["resource-1", "resource-2"]
