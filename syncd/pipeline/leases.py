"""Leases, the one mechanism both work queues use (outbox tasks and inbox events): claim rows with
`FOR UPDATE SKIP LOCKED`, renew the lease while the work runs, settle only while still the owner.

docs/queues.md explains the whole cycle. Imports syncd.store, syncd.clock and syncd.logs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from sqlalchemy import Select, and_, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from syncd.clock import Clock
from syncd.logs import get_logger
from syncd.store.db import Database
from syncd.store.models import InboxEvent, OutboxTask

log = get_logger("syncd.leases")

HEARTBEAT_POLL_SECONDS = 1.0

Row = TypeVar("Row", OutboxTask, InboxEvent)


class Claim(Protocol):
    """What a worker remembers of a claimed row: which row, and which attempt (a later claim of
    the same row, by anyone, is another attempt)."""

    @property
    def id(self) -> int: ...

    @property
    def attempts(self) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Queue(Generic[Row]):
    """A table worked as a queue: its model, the state of leased rows, whether it has
    `updated_at`. The table has `state`, `attempts`, `leased_until` and `lease_owner`."""

    name: str
    model: type[Row]
    running: str
    stamped: bool
    due: str  # the column saying when a waiting row may be claimed

    def expired(self, now: datetime) -> ColumnElement[bool]:
        """Rows whose holder stopped (or stalled) past its lease: claimable again."""
        return and_(self.model.state == self.running, self.model.leased_until < now)

    def stamp(self, now: datetime) -> dict[str, Any]:
        return {"updated_at": now} if self.stamped else {}


OUTBOX: Queue[OutboxTask] = Queue(
    name="outbox", model=OutboxTask, running="running", stamped=True, due="run_after"
)
INBOX: Queue[InboxEvent] = Queue(
    name="inbox", model=InboxEvent, running="processing", stamped=False, due="next_attempt_at"
)


class Leases(Generic[Row]):
    """One worker's leases on one queue. Statements run in the caller's transaction."""

    def __init__(self, db: Database, queue: Queue[Row], *, owner: str, lease: timedelta) -> None:
        self.db = db
        self.queue: Queue[Row] = queue
        self.owner = owner
        self.lease = lease

    async def claim(
        self,
        session: AsyncSession,
        lockable: Select[Any],
        *,
        now: datetime,
        values: dict[str, Any] | None = None,
    ) -> Sequence[Row]:
        """Lease the rows whose ids `lockable` selects, skipping any another transaction has
        locked (PostgreSQL; SQLite's write lock serialises claimers instead): each becomes
        in progress, owned by this worker until `now + lease`, one attempt more."""
        model = self.queue.model
        statement = (
            update(model)
            .where(model.id.in_(lockable.with_for_update(skip_locked=True)))
            .values(
                state=self.queue.running,
                leased_until=now + self.lease,
                lease_owner=self.owner,
                attempts=model.attempts + 1,
                **self.queue.stamp(now),
                **(values or {}),
            )
            .returning(model)
        )
        rows: Sequence[Row] = (await session.execute(statement)).scalars().all()
        return rows

    def owned(self, claim: Claim) -> tuple[ColumnElement[bool], ...]:
        """This claim, still in progress under this worker: after a lease expired another
        worker may have claimed the row (its attempt count moved on), or this same worker
        again (also a later attempt)."""
        model = self.queue.model
        return (
            model.id == claim.id,
            model.state == self.queue.running,
            model.lease_owner == self.owner,
            model.attempts == claim.attempts,
        )

    async def renew(
        self, session: AsyncSession, claims: Iterable[Claim], *, now: datetime
    ) -> set[int]:
        """Push the leases of `claims` on to `now + lease`; returns the ids still held (the
        others were lost: settled, or taken over after their lease ran out)."""
        return await self._update_held(
            session, claims, leased_until=now + self.lease, **self.queue.stamp(now)
        )

    async def hand_back(
        self, session: AsyncSession, claims: Iterable[Claim], *, now: datetime
    ) -> set[int]:
        """Give up `claims` this worker still holds without a verdict (it is stopping): each is
        waiting again, due now, claimable by any worker at once instead of after its lease, and
        the interrupted attempt is not counted (stopping is not the row's failure). Returns the
        ids handed back; the others were settled or taken over meanwhile."""
        return await self._update_held(
            session,
            claims,
            state="pending",
            leased_until=None,
            lease_owner=None,
            attempts=self.queue.model.attempts - 1,
            **{self.queue.due: now},
            **self.queue.stamp(now),
        )

    async def _update_held(
        self, session: AsyncSession, claims: Iterable[Claim], **values: Any
    ) -> set[int]:
        """Write `values` to those of `claims` this worker still holds (running, its own, the
        same attempt); returns their ids."""
        held = list(claims)
        if not held:
            return set()
        model = self.queue.model
        statement = (
            update(model)
            .where(
                model.state == self.queue.running,
                model.lease_owner == self.owner,
                or_(*(and_(model.id == c.id, model.attempts == c.attempts) for c in held)),
            )
            .values(**values)
            .returning(model.id)
        )
        return set((await session.execute(statement)).scalars().all())

    async def settle(
        self,
        session: AsyncSession,
        claim: Claim,
        *,
        now: datetime,
        values: dict[str, Any],
        where: Sequence[ColumnElement[bool]] = (),
    ) -> bool:
        """Write the claim's outcome only while this worker still owns it; False (and nothing
        written) when the lease was lost, so a worker that was overtaken cannot overwrite the
        new owner's result."""
        model = self.queue.model
        outcome = await session.execute(
            update(model)
            .where(*self.owned(claim), *where)
            .values(**self.queue.stamp(now), **values)
        )
        return bool(getattr(outcome, "rowcount", 0))


class Heartbeat:
    """Renews a worker's leases while it works on the claims, until it releases them.

    Wakes on real time (every second, or a quarter of the lease when that is shorter; `poll`
    overrides it) but measures the lease on the worker's clock, which tests and benchmarks run
    faster, make jump, or move by hand: a lease is renewed once a third of it has passed on that
    clock. A claim whose renewal finds it gone is lost; the worker must not start on it.
    """

    def __init__(
        self,
        leases: Leases[Any],
        clock: Clock,
        claims: Iterable[Claim],
        *,
        since: datetime | None = None,
        poll: float | None = None,
    ) -> None:
        self.leases = leases
        self.clock = clock
        self._held: dict[int, Claim] = {claim.id: claim for claim in claims}
        self._lost: set[int] = set()
        self._since = since
        lease = leases.lease.total_seconds()
        self._poll = poll if poll is not None else min(HEARTBEAT_POLL_SECONDS, lease / 4)
        self._task: asyncio.Task[None] | None = None

    def lost(self, claim: Claim) -> bool:
        """True once a renewal found the claim taken over (or settled elsewhere)."""
        return claim.id in self._lost

    def release(self, claim: Claim) -> None:
        """Stop renewing the claim (call it just before settling, so a renewal racing the
        settle does not report the settled row as lost)."""
        self._held.pop(claim.id, None)

    async def __aenter__(self) -> Self:
        name = f"{self.leases.queue.name}-lease-{min(self._held, default=0)}"
        self._task = asyncio.create_task(self._beat(), name=name)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _beat(self) -> None:
        lease = self.leases.lease.total_seconds()
        renewed = self._since or self.clock.now()
        while self._held:
            await asyncio.sleep(self._poll)
            now = self.clock.now()
            if (now - renewed).total_seconds() < lease / 3:
                continue
            try:
                async with self.leases.db.transaction() as session:
                    kept = await self.leases.renew(session, self._held.values(), now=now)
            except Exception:  # the database may be back by the next beat; the lease has slack
                log.exception("lease.renew_failed", queue=self.leases.queue.name)
                continue
            renewed = now
            for claim_id in [i for i in self._held if i not in kept]:
                del self._held[claim_id]
                self._lost.add(claim_id)
                log.warning("lease.lost", queue=self.leases.queue.name, id=claim_id)
