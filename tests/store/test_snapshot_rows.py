"""Reconciliation's streamed reads on real databases: one company's rows only, links in link
order across batches, busy requests only from unfinished tasks on a request."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from syncd.domain.ids import CompanyId
from syncd.domain.tasks import TaskSpec
from syncd.pipeline.outbox import enqueue, new_task
from syncd.store import snapshot_rows
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import StaffMappingRepository
from syncd.store.models import OutboxTask

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
A, B = CompanyId("company-a"), CompanyId("company-b")


async def test_links_stream_in_link_order_across_batches_for_one_company(db: Database) -> None:
    """Five links of A read two at a time: all five, in creation order, none of B's."""
    async with db.transaction() as session:
        links = JobLinkRepository(session)
        for n in (3, 1, 4, 5, 2):
            await links.create_pending(company=A, request_id=f"r{n}", now=NOW)
        await links.create_pending(company=B, request_id="r9", now=NOW)
    async with db.transaction() as session:
        batches = [
            [row.request_id for row in rows]
            async for rows in snapshot_rows.link_batches(session, company=A, batch=2)
        ]
    assert [r for rows in batches for r in rows] == ["r3", "r1", "r4", "r5", "r2"]
    assert max(len(rows) for rows in batches) <= 2


async def test_busy_requests_are_those_with_unfinished_tasks(db: Database) -> None:
    """Pending and running tasks on a request make it busy; done tasks, tasks on no request
    and other companies' tasks do not."""
    async with db.transaction() as session:
        for company, key, order, state in [
            (A, "t1", "request:r1", "pending"),
            (A, "t2", "request:r2", "running"),
            (A, "t3", "request:r3", "done"),
            (A, "t4", "reconcile:a", "pending"),
            (B, "t5", "request:r5", "pending"),
        ]:
            spec = TaskSpec(kind="k", key=key, order_key=order, payload={})
            task_id = await enqueue(session, new_task(company, spec), now=NOW)
            await session.execute(
                update(OutboxTask).where(OutboxTask.id == task_id).values(state=state)
            )
    async with db.transaction() as session:
        assert await snapshot_rows.busy_requests(session, company=A) == {"r1", "r2"}


async def test_mappings_are_the_companys_own(db: Database) -> None:
    """A mapping of another company is not read."""
    async with db.transaction() as session:
        staff = StaffMappingRepository(session)
        await staff.save(company=A, user_id="a1", staff_id="s1", staff_name=None, now=NOW)
        await staff.save(company=B, user_id="a2", staff_id="s2", staff_name=None, now=NOW)
    async with db.transaction() as session:
        assert await snapshot_rows.staff_map(session, company=A) == {"a1": "s1"}
        assert await snapshot_rows.contact_map(session, company=A) == {}
