"""The sync log: every Xero call is a row for its company, attributed to the task that made it."""

from __future__ import annotations

from datetime import UTC, datetime

from syncd.domain.ids import CompanyId
from syncd.store.db import Database
from syncd.store.sync_log import SyncLogRepository
from syncd.xero.audit import CallRecord, SyncLogAudit, call_scope

AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


async def test_calls_become_rows_attributed_to_the_task(db: Database) -> None:
    """Inside call_scope(task_id) rows carry the task id and the scope counts the calls."""
    audit = SyncLogAudit(db)
    company = CompanyId("c-1")
    with call_scope(task_id=42) as scope:
        for status in (200, 429):
            await audit.record(
                CallRecord(
                    company=company,
                    method="GET",
                    path="/projects.xro/2.0/Projects",
                    status=status,
                    duration_ms=12,
                    at=AT,
                    min_remaining=58,
                    day_remaining=4990,
                    app_min_remaining=9990,
                    error=None if status == 200 else "rate limit",
                )
            )
    await audit.record(
        CallRecord(company=company, method="GET", path="/x", status=200, duration_ms=1, at=AT)
    )
    assert scope.calls == 2
    assert scope.statuses == [200, 429]
    async with db.transaction() as session:
        rows = await SyncLogRepository(session).for_task(company=company, task_id=42)
        everything = await SyncLogRepository(session).recent(company=company)
    assert [(r.status, r.min_remaining, r.error) for r in rows] == [
        (200, 58, None),
        (429, 58, "rate limit"),
    ]
    assert len(everything) == 3
    assert everything[0].task_id is None
