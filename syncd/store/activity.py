"""A practice's last 24 hours, hour by hour, for the dashboard's charts: jobs created, statuses
written each way, Xero calls and outbox depth. Each figure is one query of 24 `CASE` sums (the
same SQL on SQLite and PostgreSQL, no per-dialect date truncation); every call takes the company.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from syncd.clock import ensure_aware
from syncd.domain.ids import CompanyId
from syncd.domain.tasks import CREATE_JOB, SET_JOB_STATE
from syncd.store.models import InboxEvent, OutboxTask, SyncLogEntry

HOUR = timedelta(hours=1)
HOURS = 24
# What the inbound worker records on an event whose Xero state it wrote to the CRM.
CRM_STATUS_SET = "CRM status set to %"


def hour_starts(now: datetime, hours: int = HOURS) -> tuple[datetime, ...]:
    """The starts of the last `hours` clock hours, oldest first; the last is the current one."""
    top = ensure_aware(now).replace(minute=0, second=0, microsecond=0)
    return tuple(top - HOUR * (hours - 1 - n) for n in range(hours))


@dataclass(frozen=True, slots=True, kw_only=True)
class Activity:
    """Per hour (oldest first, the last one still running): what happened in one practice."""

    hours: tuple[datetime, ...]
    jobs_created: tuple[int, ...]
    statuses_to_xero: tuple[int, ...]
    statuses_to_crm: tuple[int, ...]
    xero_calls: tuple[int, ...]
    queue_depth: tuple[int, ...]  # outbox tasks waiting or running at the end of the hour (now)


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def last_day(self, *, company: CompanyId, now: datetime) -> Activity:
        if not company:
            raise ValueError("a company is required for every tenant query")
        starts = hour_starts(now)
        done = and_(
            OutboxTask.company_id == company,
            OutboxTask.state == "done",
            OutboxTask.finished_at >= starts[0],
            # Skipped tasks (the job existed, Xero already had the state) wrote nothing.
            OutboxTask.result["skipped"].as_string().is_(None),
        )
        return Activity(
            hours=starts,
            jobs_created=await self._per_hour(
                OutboxTask.finished_at, starts, done, OutboxTask.kind == CREATE_JOB
            ),
            statuses_to_xero=await self._per_hour(
                OutboxTask.finished_at, starts, done, OutboxTask.kind == SET_JOB_STATE
            ),
            statuses_to_crm=await self._per_hour(
                InboxEvent.processed_at,
                starts,
                InboxEvent.company_id == company,
                InboxEvent.state == "done",
                InboxEvent.processed_at >= starts[0],
                InboxEvent.result.like(CRM_STATUS_SET),
            ),
            xero_calls=await self._per_hour(
                SyncLogEntry.created_at,
                starts,
                SyncLogEntry.company_id == company,
                SyncLogEntry.created_at >= starts[0],
            ),
            queue_depth=await self._depth(company, starts, ensure_aware(now)),
        )

    async def _per_hour(
        self, column: Any, starts: tuple[datetime, ...], *where: ColumnElement[bool]
    ) -> tuple[int, ...]:
        ends = (*starts[1:], starts[-1] + HOUR)
        sums = [
            func.coalesce(func.sum(case((and_(column >= start, column < end), 1), else_=0)), 0)
            for start, end in zip(starts, ends, strict=True)
        ]
        row = (await self.session.execute(select(*sums).where(*where))).one()
        return tuple(int(value) for value in row)

    async def _depth(
        self, company: CompanyId, starts: tuple[datetime, ...], now: datetime
    ) -> tuple[int, ...]:
        """Tasks created by each hour's end (now, for the current hour) and not finished then.
        A dead task retried later counts as waiting since it was created: an overcount an admin
        who retried it will recognise."""
        moments = (*starts[1:], now)
        sums = [
            func.coalesce(
                func.sum(
                    case(
                        (
                            and_(
                                OutboxTask.created_at <= moment,
                                or_(
                                    OutboxTask.finished_at.is_(None),
                                    OutboxTask.finished_at > moment,
                                ),
                            ),
                            1,
                        ),
                        else_=0,
                    )
                ),
                0,
            )
            for moment in moments
        ]
        statement = select(*sums).where(
            OutboxTask.company_id == company,
            OutboxTask.created_at <= now,
            or_(OutboxTask.finished_at.is_(None), OutboxTask.finished_at > starts[0]),
        )
        row = (await self.session.execute(statement)).one()
        return tuple(int(value) for value in row)
