"""The dashboard's hour-by-hour figures on real databases: what counts, in which hour, and only
for the practice asked about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count, pairwise
from typing import Any

import pytest

from syncd.domain.ids import CompanyId
from syncd.store.activity import ActivityRepository, hour_starts
from syncd.store.db import Database
from syncd.store.models import InboxEvent, OutboxTask, SyncLogEntry

NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
A, B = CompanyId("company-a"), CompanyId("company-b")
_keys = count()


def at(hour: int, minute: int = 0, *, days_ago: int = 0) -> datetime:
    return datetime(2026, 11, 25, hour, minute, tzinfo=UTC) - timedelta(days=days_ago)


def task(
    company: CompanyId,
    kind: str,
    *,
    created: datetime,
    finished: datetime | None,
    result: dict[str, Any] | None = None,
) -> OutboxTask:
    return OutboxTask(
        company_id=company,
        kind=kind,
        payload={},
        idempotency_key=f"key-{next(_keys)}",
        state="done" if finished else "pending",
        attempts=1,
        run_after=created,
        created_at=created,
        updated_at=finished or created,
        finished_at=finished,
        result=result,
    )


def event(company: CompanyId, processed: datetime, result: str) -> InboxEvent:
    return InboxEvent(
        company_id=company,
        tenant_id=f"tenant-{company}",
        source="poller",
        dedupe_key=f"event-{next(_keys)}",
        state="done",
        received_at=processed,
        processed_at=processed,
        result=result,
    )


def call(company: CompanyId, when: datetime) -> SyncLogEntry:
    return SyncLogEntry(
        company_id=company, method="GET", path="/projects.xro/2.0/Projects", status=200,
        created_at=when,
    )  # fmt: skip


def practice_day(company: CompanyId) -> list[Any]:
    """One practice's day: what should count and what should not."""
    return [
        task(company, "create_job", created=at(10, 50), finished=at(11, 10),
             result={"job_id": "j"}),
        task(company, "create_job", created=at(12, 1), finished=at(12, 5), result={"job_id": "k"}),
        # Skipped: the job existed already. Old: before the window.
        task(company, "create_job", created=at(12, 2), finished=at(12, 6),
             result={"skipped": "the job exists", "job_id": "k"}),
        task(company, "create_job", created=at(11, 0, days_ago=1), finished=at(11, 5, days_ago=1),
             result={"job_id": "old"}),
        task(company, "set_job_state", created=at(10, 14), finished=at(10, 15),
             result={"job_id": "j", "state": "CLOSED"}),
        task(company, "set_job_state", created=at(10, 16), finished=at(10, 17),
             result={"skipped": "Xero already has CLOSED"}),
        # Waiting since 10:30, still waiting now.
        task(company, "sync_contact", created=at(10, 30), finished=None),
        event(company, at(12, 20), "CRM status set to completed"),
        event(company, at(12, 21), "echo of syncd's own write"),
        call(company, at(9, 0)),
        *(call(company, at(12, minute)) for minute in (1, 2, 3)),
        call(company, at(12, 0, days_ago=2)),
    ]  # fmt: skip


@pytest.fixture
async def filled(db: Database) -> Database:
    async with db.transaction() as session:
        session.add_all([*practice_day(A), *practice_day(B), *practice_day(B)])
    return db


def test_the_window_is_the_last_24_clock_hours() -> None:
    """Oldest first, the current (unfinished) hour last."""
    starts = hour_starts(NOW)
    assert len(starts) == 24
    assert starts[0] == at(13, days_ago=1)
    assert starts[-1] == at(12)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(starts))


async def test_each_figure_lands_in_its_hour_for_its_practice_only(filled: Database) -> None:
    """Jobs and statuses that wrote something, calls and waiting tasks, per hour, for A alone
    (B's doubled day is not counted)."""
    async with filled.transaction() as session:
        day = await ActivityRepository(session).last_day(company=A, now=NOW)
    index = {start.hour: n for n, start in enumerate(day.hours)}

    def only(figures: tuple[int, ...], expected: dict[int, int]) -> None:
        assert {hour: figures[index[hour]] for hour in index if figures[index[hour]]} == expected

    only(day.jobs_created, {11: 1, 12: 1})
    only(day.statuses_to_xero, {10: 1})
    only(day.statuses_to_crm, {12: 1})
    only(day.xero_calls, {9: 1, 12: 3})
    # At 11:00 the 10:50 job (finished 11:10) and the 10:30 task wait; from 12:00 the latter.
    only(day.queue_depth, {10: 2, 11: 1, 12: 1})


async def test_a_quiet_practice_has_zeros(filled: Database) -> None:
    """A practice with nothing in the window gets 24 zeros in every figure."""
    async with filled.transaction() as session:
        day = await ActivityRepository(session).last_day(company=CompanyId("company-z"), now=NOW)
    for figures in (
        day.jobs_created,
        day.statuses_to_xero,
        day.statuses_to_crm,
        day.xero_calls,
        day.queue_depth,
    ):
        assert figures == (0,) * 24


async def test_a_company_is_required(db: Database) -> None:
    """No query without a practice."""
    async with db.transaction() as session:
        with pytest.raises(ValueError, match="company is required"):
            await ActivityRepository(session).last_day(company=CompanyId(""), now=NOW)
