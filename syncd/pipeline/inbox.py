"""The inbox: durable, deduplicated storage of inbound events, and its claim/settle cycle (on
the leases shared with the outbox, syncd.pipeline.leases; docs/queues.md).

`InboxWriter` is a group commit: concurrent webhook requests hand it their rows and wait; one
background task inserts everything queued so far in a single transaction and then wakes them
all. A request is answered only after its rows are committed (an acknowledged event is never
lost), yet the database sees one transaction per batch instead of one per request — the
difference between ~6% and ~50% of a bare endpoint's throughput (DESIGN.md §8).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from syncd.domain.ids import CompanyId
from syncd.domain.retry import GiveUp, RetryAfter, RetryPolicy, backoff, decide
from syncd.logs import get_logger
from syncd.pipeline.leases import INBOX, Leases
from syncd.store.db import Database
from syncd.store.inbox_sink import sink_for
from syncd.store.models import InboxEvent
from syncd.xero.webhooks import WebhookEvent

log = get_logger("syncd.inbox")

MAX_BATCH = 500
LEASE = timedelta(minutes=5)
INBOX_POLICY = RetryPolicy(base_delay=5, max_delay=1800, max_attempts=10)
QUARANTINE_BODY_LIMIT = 64 * 1024


def event_row(
    event: WebhookEvent,
    *,
    source: str,
    received_at: datetime,
    snapshot: dict[str, Any] | None = None,
    link_version: int | None = None,
) -> dict[str, Any]:
    """An inbox row for an event; the poller adds the project it already fetched and the
    version its job link had before the listing was asked for."""
    return {
        "tenant_id": event.tenant_id,
        "source": source,
        "dedupe_key": event.dedupe_key,
        "category": event.category,
        "event_type": event.event_type,
        "resource_id": event.resource_id,
        "event_date": event.event_at,
        # The columns hold everything a webhook says; only the poller has more to keep.
        "payload": (
            {"snapshot": snapshot, "link_version": link_version} if snapshot is not None else None
        ),
        "raw_body": None,
        "state": "pending",
        "attempts": 0,
        "result": None,
        "received_at": received_at,
        "processed_at": None,
    }


def quarantine_row(body: bytes, reason: str, *, received_at: datetime) -> dict[str, Any]:
    digest = hashlib.sha256(body).hexdigest()
    text = body[:QUARANTINE_BODY_LIMIT].decode("utf-8", "replace")
    return {
        "tenant_id": None,
        "source": "webhook",
        "dedupe_key": f"quarantine:{digest}",
        "category": None,
        "event_type": None,
        "resource_id": None,
        "event_date": None,
        "payload": None,
        # PostgreSQL's text cannot hold NUL: keep what the body said, visibly replaced.
        "raw_body": text.replace("\x00", "\ufffd"),
        "state": "quarantined",
        "attempts": 0,
        "result": reason[:500],
        "received_at": received_at,
        "processed_at": received_at,
    }


class InboxWriter:
    """Group commit for inbox rows (see module docstring).

    `write` is an append and a wait: the rows and a future go on a list, and the writer task
    takes everything listed so far (up to `max_batch` rows) as one batch as soon as the sink
    can commit another (one batch at a time on SQLite, two on PostgreSQL), so a batch fills
    while the one before it is being written.
    """

    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._commits: set[asyncio.Task[None]] = set()
        self._sink = sink_for(db.url)

    async def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Return once `rows` are committed (duplicates of stored events are dropped)."""
        if not rows:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="inbox-writer")
        done = asyncio.get_running_loop().create_future()
        self._queue.append((rows, done))
        self._wake.set()
        await done

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self._sink.concurrency)
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await slots.acquire()
                commit = asyncio.create_task(self._commit(self._take()))
                self._commits.add(commit)
                commit.add_done_callback(self._commits.discard)
                commit.add_done_callback(lambda _: slots.release())

    def _take(self) -> list[_Waiting]:
        queue, size = self._queue, 0
        for n, (rows, _) in enumerate(queue):
            size += len(rows)
            if size >= self.max_batch:
                batch = queue[: n + 1]
                del queue[: n + 1]
                return batch
        self._queue = []
        return queue

    async def _commit(self, batch: list[_Waiting]) -> None:
        rows = [row for rows, _ in batch for row in rows]
        try:
            await self._sink.insert(rows)
        except Exception as exc:  # the requests answer 5xx; Xero delivers again later
            log.error("inbox.write_failed", rows=len(rows), error=str(exc))
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    async def flush(self) -> None:
        """Until every row handed in so far is committed (or its write failed)."""
        while self._queue or self._commits:
            if self._queue and (self._task is None or self._task.done()):
                self._task = asyncio.create_task(self._run(), name="inbox-writer")
            self._wake.set()
            if self._commits:
                await asyncio.wait(set(self._commits), return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(0)  # the writer task takes the queue on its next turn

    async def close(self) -> None:
        # Rows still waiting are committed first: their requests may yet answer 200 (an
        # acknowledged event is never lost), and a cut-off request's rows are harmless (Xero
        # delivers again; duplicates are dropped). Only then the writer stops.
        await self.flush()
        for task in (self._task, *self._commits):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None
        await self._sink.close()


# Rows waiting for their batch, and the future their request awaits.
_Waiting = tuple[Sequence[dict[str, Any]], "asyncio.Future[None]"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedEvent:
    id: int
    tenant_id: str
    source: str
    category: str
    event_type: str
    resource_id: str
    event_at: datetime | None
    payload: dict[str, Any]
    attempts: int


class Inbox:
    """Claiming and settling stored events (the worker side), on the leases the outbox uses:
    an event is held by one worker, renewed while it is handled, and settled only by its holder.
    Failures go through the one retry policy, with jitter."""

    def __init__(
        self,
        db: Database,
        *,
        owner: str,
        lease: timedelta = LEASE,
        policy: RetryPolicy = INBOX_POLICY,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.leases = Leases(db, INBOX, owner=owner, lease=lease)
        self.policy = policy
        # Jitter spreads retries of events that failed together; seeded from the OS by default.
        self.rng = rng or random.Random()

    @property
    def owner(self) -> str:
        return self.leases.owner

    @property
    def lease(self) -> timedelta:
        return self.leases.lease

    def _claimable(self, now: datetime) -> Any:
        return or_(
            and_(
                InboxEvent.state == "pending",
                or_(InboxEvent.next_attempt_at.is_(None), InboxEvent.next_attempt_at <= now),
            ),
            INBOX.expired(now),
        )

    async def claim(self, *, now: datetime, limit: int) -> list[ClaimedEvent]:
        """Up to `limit` due events, oldest first, leased to this worker."""
        async with self.db.transaction() as session:
            lockable = (
                select(InboxEvent.id)
                .where(self._claimable(now))
                .order_by(InboxEvent.id)
                .limit(limit)
            )
            rows = await self.leases.claim(session, lockable, now=now)
            return sorted(
                (
                    ClaimedEvent(
                        id=row.id,
                        tenant_id=row.tenant_id or "",
                        source=row.source,
                        category=row.category or "",
                        event_type=row.event_type or "",
                        resource_id=row.resource_id or "",
                        event_at=row.event_date,
                        payload=dict(row.payload or {}),
                        attempts=row.attempts,
                    )
                    for row in rows
                ),
                key=lambda event: event.id,
            )

    async def extend(self, event: ClaimedEvent, *, now: datetime) -> bool:
        """Renew the event's lease; False if it was lost (another worker holds it now)."""
        async with self.db.transaction() as session:
            return event.id in await self.leases.renew(session, [event], now=now)

    async def settle(
        self,
        event: ClaimedEvent,
        *,
        state: str,
        result: str,
        now: datetime,
        company: CompanyId | None = None,
        retry_at: datetime | None = None,
    ) -> bool:
        """done | ignored | failed, or back to pending at `retry_at`; False (nothing written)
        when this worker no longer holds the event."""
        values: dict[str, Any] = {"result": result[:2000], "leased_until": None}
        if company is not None:
            values["company_id"] = company
        if state == "pending":
            values.update(state="pending", next_attempt_at=retry_at, lease_owner=None)
        else:
            values.update(state=state, processed_at=now)
        async with self.db.transaction() as session:
            settled = await self.leases.settle(session, event, now=now, values=values)
        if not settled:
            log.warning("inbox.lease_lost", inbox_event=event.id, state=state)
        return settled

    async def fail(self, event: ClaimedEvent, error: BaseException, *, now: datetime) -> str:
        """Apply the retry policy: "failed" (for good), "pending" (tried again later, no sooner
        than a Retry-After), or "lost" when the lease was lost meanwhile."""
        decision = decide(self.policy, attempt=event.attempts, error=error, rand=self.rng.random())
        if isinstance(decision, GiveUp):
            settled = await self.settle(event, state="failed", result=decision.reason, now=now)
            return "failed" if settled else "lost"
        # An event waiting for a reconnect is tried again on the policy's schedule.
        delay = (
            decision.delay
            if isinstance(decision, RetryAfter)
            else backoff(self.policy, event.attempts, self.rng.random())
        )
        settled = await self.settle(
            event,
            state="pending",
            result=f"retrying: {error}",
            now=now,
            retry_at=now + timedelta(seconds=delay),
        )
        return "pending" if settled else "lost"
