"""The trail of Xero calls: every call becomes a sync-log row (never a token), attributed to the
outbox task or reconciliation run that made it through a context variable."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from syncd.domain.ids import CompanyId
from syncd.logs import get_logger
from syncd.store.db import Database
from syncd.store.models import SyncLogEntry
from syncd.store.sync_log import SyncLogRepository

log = get_logger("syncd.xero")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    company: CompanyId | None
    method: str
    path: str
    status: int | None
    duration_ms: int
    at: datetime
    min_remaining: int | None = None
    day_remaining: int | None = None
    app_min_remaining: int | None = None
    error: str | None = None


class CallAudit(Protocol):
    async def record(self, call: CallRecord) -> None: ...


@dataclass(slots=True)
class CallScope:
    """Who is calling (an outbox task id) and how many calls it has spent so far."""

    task_id: int | None = None
    calls: int = 0
    statuses: list[int | None] = field(default_factory=list)


_scope: ContextVar[CallScope | None] = ContextVar("syncd_xero_call_scope", default=None)


@contextmanager
def call_scope(task_id: int | None = None) -> Iterator[CallScope]:
    """Attribute the Xero calls made inside the block to `task_id` and count them."""
    scope = CallScope(task_id=task_id)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def current_scope() -> CallScope | None:
    return _scope.get()


class SyncLogAudit:
    """Writes each call to the sync log in its own short transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, call: CallRecord) -> None:
        scope = current_scope()
        if scope is not None:
            scope.calls += 1
            scope.statuses.append(call.status)
        log.debug(
            "xero.call",
            company=call.company,
            method=call.method,
            path=call.path,
            status=call.status,
            ms=call.duration_ms,
            error=call.error,
        )
        if call.company is None:
            return  # calls made before a company is known (none today) are only logged
        entry = SyncLogEntry(
            company_id=call.company,
            task_id=scope.task_id if scope else None,
            method=call.method,
            path=call.path[:500],
            status=call.status,
            duration_ms=call.duration_ms,
            min_remaining=call.min_remaining,
            day_remaining=call.day_remaining,
            app_min_remaining=call.app_min_remaining,
            error=call.error,
            created_at=call.at,
        )
        async with self.db.transaction() as session:
            await SyncLogRepository(session).add(company=call.company, entry=entry)
