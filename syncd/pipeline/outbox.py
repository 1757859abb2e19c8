"""The durable outbox: enqueue (deduplicated by idempotency key), claim (fair across companies,
in order per order key), complete, retry with the one policy, dead-letter, and retry dead tasks
on request. Claims, leases and owner-checked settling are syncd.pipeline.leases, shared with the
inbox (docs/queues.md).

Task states (DESIGN.md §2b): pending → running (leased until T) → done; → pending again (retry
at T') on a transient error; → dead on a permanent error or after the last attempt. A running
task whose lease expired (its worker died) is claimable again; only the lease's holder settles a
task. A task whose practice must reconnect is parked (pending, later) without spending an
attempt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from syncd.domain.ids import CompanyId
from syncd.domain.retry import GiveUp, RetryAfter, RetryPolicy, WaitForReconnect, decide
from syncd.domain.tasks import TaskSpec
from syncd.logs import get_logger
from syncd.observability.instruments import TaskOutcome, record_task
from syncd.pipeline.leases import OUTBOX, Leases
from syncd.store.db import Database
from syncd.store.models import OutboxTask, XeroConnection
from syncd.store.scoping import TenantRepository, dialect_insert

log = get_logger("syncd.outbox")

DEFAULT_LEASE = timedelta(minutes=5)
RECONNECT_PARK = timedelta(minutes=10)
UNFINISHED = ("pending", "running")
# A failed attempt's new state, as the outcome metrics count it.
_OUTCOME: dict[str, TaskOutcome] = {
    "pending": "retry",
    "parked": "parked",
    "dead": "dead",
    "lost": "lost",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTask:
    company: CompanyId
    kind: str
    key: str
    payload: dict[str, Any] = field(default_factory=dict)
    order_key: str | None = None
    run_after: datetime | None = None
    max_attempts: int | None = None


def new_task(company: CompanyId, spec: TaskSpec) -> NewTask:
    return NewTask(
        company=company,
        kind=spec.kind,
        key=spec.key,
        payload=dict(spec.payload),
        order_key=spec.order_key,
    )


async def enqueue(session: AsyncSession, task: NewTask, *, now: datetime) -> int | None:
    """Add a task in the caller's transaction; the same (company, key) twice yields one task.

    Returns the new task's id, or None when the key already existed.
    """
    insert = dialect_insert(session)
    values: dict[str, Any] = {
        "company_id": task.company,
        "kind": task.kind,
        "payload": task.payload,
        "idempotency_key": task.key,
        "order_key": task.order_key,
        "state": "pending",
        "attempts": 0,
        "run_after": task.run_after or now,
        "created_at": now,
        "updated_at": now,
    }
    if task.max_attempts is not None:
        values["max_attempts"] = task.max_attempts
    statement = (
        insert(OutboxTask)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["company_id", "idempotency_key"])
        .returning(OutboxTask.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def enqueue_spec(
    session: AsyncSession, company: CompanyId, spec: TaskSpec, *, now: datetime
) -> OutboxTask:
    """Enqueue (or find, when the key exists) and return the task row."""
    await enqueue(session, new_task(company, spec), now=now)
    task = await TaskRepository(session).by_key(company=company, key=spec.key)
    assert task is not None
    return task


class TaskRepository(TenantRepository[OutboxTask]):
    """Reading tasks for admins (the sync log views) and retrying dead ones."""

    model = OutboxTask

    async def get(self, *, company: CompanyId, task_id: int) -> OutboxTask | None:
        return await self.first(self.scoped(company).where(OutboxTask.id == task_id))

    async def by_key(self, *, company: CompanyId, key: str) -> OutboxTask | None:
        return await self.first(self.scoped(company).where(OutboxTask.idempotency_key == key))

    async def page(
        self,
        *,
        company: CompanyId,
        states: list[str] | None = None,
        kinds: list[str] | None = None,
        request_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[OutboxTask], int]:
        statement = self.scoped(company)
        if states:
            statement = statement.where(OutboxTask.state.in_(states))
        if kinds:
            statement = statement.where(OutboxTask.kind.in_(kinds))
        if request_id:
            statement = statement.where(OutboxTask.order_key == f"request:{request_id}")
        total = (
            await self.session.execute(select(func.count()).select_from(statement.subquery()))
        ).scalar_one()
        rows = await self.all(statement.order_by(OutboxTask.id.desc()).limit(limit).offset(offset))
        return rows, int(total)

    async def unfinished(
        self, *, company: CompanyId, order_key: str, kind: str | None = None
    ) -> list[OutboxTask]:
        statement = self.scoped(company).where(
            OutboxTask.order_key == order_key, OutboxTask.state.in_(UNFINISHED)
        )
        if kind is not None:
            statement = statement.where(OutboxTask.kind == kind)
        return await self.all(statement.order_by(OutboxTask.id))

    async def counts(self, *, company: CompanyId) -> dict[str, int]:
        statement = (
            select(OutboxTask.state, func.count())
            .where(OutboxTask.company_id == company)
            .group_by(OutboxTask.state)
        )
        return {state: int(n) for state, n in (await self.session.execute(statement)).all()}

    async def release_parked(self, *, company: CompanyId, now: datetime) -> int:
        """The practice reconnected: its waiting tasks (parked for the reconnect, or backing
        off) are due now rather than at the end of their wait. Returns how many."""
        result = await self.session.execute(
            update(OutboxTask)
            .where(
                OutboxTask.company_id == company,
                OutboxTask.state == "pending",
                OutboxTask.run_after > now,
            )
            .values(run_after=now, updated_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def retry_dead(self, *, company: CompanyId, task_id: int, now: datetime) -> bool:
        """A dead task goes back to pending with fresh attempts; False if it is not dead."""
        result = await self.session.execute(
            update(OutboxTask)
            .where(
                OutboxTask.company_id == company,
                OutboxTask.id == task_id,
                OutboxTask.state == "dead",
            )
            .values(
                state="pending",
                attempts=0,
                run_after=now,
                leased_until=None,
                lease_owner=None,
                finished_at=None,
                updated_at=now,
            )
        )
        return bool(getattr(result, "rowcount", 0))


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedTask:
    id: int
    company: CompanyId
    kind: str
    payload: dict[str, Any]
    key: str
    order_key: str | None
    attempts: int
    max_attempts: int | None
    created_at: datetime | None = None  # when it was enqueued (its latency is measured from)


def _claimable(now: datetime) -> Any:
    return or_(
        and_(OutboxTask.state == "pending", OutboxTask.run_after <= now),
        OUTBOX.expired(now),
    )


class Outbox:
    def __init__(
        self,
        db: Database,
        *,
        owner: str,
        lease: timedelta = DEFAULT_LEASE,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.leases = Leases(db, OUTBOX, owner=owner, lease=lease)
        self.policy = policy or RetryPolicy()
        # Jitter spreads retries of tasks that failed together; seeded from the OS by default.
        self.rng = rng or random.Random()
        # When each practice was last served by this outbox's claims (a turn counter): the least
        # recently served come first, so a claim for fewer slots than practices with work rotates
        # through them instead of always serving the practices with the oldest tasks.
        self._served: dict[str, int] = {}
        self._turn = 0

    @property
    def owner(self) -> str:
        return self.leases.owner

    @property
    def lease(self) -> timedelta:
        return self.leases.lease

    async def claim(
        self,
        *,
        now: datetime,
        limit: int,
        per_company: int = 1,
        skip_companies: frozenset[str] = frozenset(),
    ) -> list[ClaimedTask]:
        """Up to `limit` due tasks, at most `per_company` from each practice, the practices this
        outbox served least recently first (then oldest task first), so neither one practice's
        backlog nor a practice's older tasks starve another practice, even when there are fewer
        free slots than practices with work; never overtaking an unfinished earlier task with the
        same order key."""
        if limit <= 0:
            return []
        earlier = aliased(OutboxTask)
        blocked = exists().where(
            earlier.company_id == OutboxTask.company_id,
            earlier.order_key == OutboxTask.order_key,
            earlier.id < OutboxTask.id,
            earlier.state.in_(UNFINISHED),
        )
        parked = select(XeroConnection.company_id).where(XeroConnection.needs_reconnect.is_(True))
        ranked = select(
            OutboxTask.id,
            OutboxTask.company_id,
            func.row_number()
            .over(partition_by=OutboxTask.company_id, order_by=OutboxTask.id)
            .label("rank"),
        ).where(
            _claimable(now),
            or_(OutboxTask.order_key.is_(None), ~blocked),
            OutboxTask.company_id.not_in(parked),
        )
        if skip_companies:
            ranked = ranked.where(OutboxTask.company_id.not_in(list(skip_companies)))
        subquery = ranked.subquery()
        # Each practice's first `per_company` candidates, all of them: the turns are taken in
        # Python (_take_turns), by when this outbox last served each practice.
        candidates = select(subquery.c.id, subquery.c.company_id, subquery.c.rank).where(
            subquery.c.rank <= per_company
        )
        for _ in range(3):
            claimed = await self._claim_once(candidates, now, limit)
            if claimed is not None:
                return claimed
        return []  # every candidate was taken by other workers three times: next tick

    def _take_turns(self, rows: list[Any], limit: int) -> list[int]:
        """The ids of the first `limit` candidates by (rank, least recently served practice,
        oldest task)."""
        ordered = sorted(rows, key=lambda r: (r.rank, self._served.get(r.company_id, 0), r.id))
        return [row.id for row in ordered[:limit]]

    def _served_now(self, claimed: list[ClaimedTask], ids: list[int]) -> None:
        """Stamp the claimed practices' turns in the order they were chosen (`ids`), so that
        one claim's practices come round again in that order too."""
        turn = {task_id: n for n, task_id in enumerate(ids)}
        for task in sorted(claimed, key=lambda task: turn[task.id]):
            self._turn += 1
            self._served[task.company] = self._turn

    async def _claim_once(
        self, candidates: Any, now: datetime, limit: int
    ) -> list[ClaimedTask] | None:
        """The candidates this worker could lock, or None when others locked them all first."""
        async with self.db.transaction() as session:
            ids = self._take_turns(list((await session.execute(candidates)).all()), limit)
            if not ids:
                return []
            lockable = select(OutboxTask.id).where(OutboxTask.id.in_(ids), _claimable(now))
            rows = await self.leases.claim(session, lockable, now=now)
            claimed = [
                ClaimedTask(
                    id=row.id,
                    company=CompanyId(row.company_id),
                    kind=row.kind,
                    payload=dict(row.payload or {}),
                    key=row.idempotency_key,
                    order_key=row.order_key,
                    attempts=row.attempts,
                    max_attempts=row.max_attempts,
                    created_at=row.created_at,
                )
                for row in rows
            ]
        if not claimed:
            return None
        self._served_now(claimed, ids)
        return sorted(claimed, key=lambda task: task.id)

    async def complete(
        self, task: ClaimedTask, *, now: datetime, result: dict[str, Any] | None = None
    ) -> bool:
        """Mark done; False if the lease was lost meanwhile (another worker owns it now)."""
        async with self.db.transaction() as session:
            finished = await self._finish(
                session, task, state="done", now=now, result=result, last_error=None
            )
        record_task(task.kind, "done" if finished else "lost", enqueued_at=task.created_at, now=now)
        return finished

    async def extend(self, task: ClaimedTask, *, now: datetime) -> bool:
        """Renew a running task's lease; False if it was lost (another worker owns it now)."""
        async with self.db.transaction() as session:
            return task.id in await self.leases.renew(session, [task], now=now)

    def exhausted(self, task: ClaimedTask) -> bool:
        """True when earlier attempts already used up the task's budget: they only end without
        a verdict when their worker stopped and the lease expired, so running again would
        exceed max_attempts."""
        return task.attempts > _policy_for(self.policy, task).max_attempts

    async def fail(self, task: ClaimedTask, error: BaseException, *, now: datetime) -> str:
        """Apply the retry policy; returns the task's new state (pending, dead or parked), or
        "lost" when the lease was lost meanwhile (the new owner's attempt decides)."""
        state = await self._settle_failure(task, error, now=now)
        record_task(task.kind, _OUTCOME[state], enqueued_at=task.created_at, now=now)
        return state

    async def _settle_failure(
        self, task: ClaimedTask, error: BaseException, *, now: datetime
    ) -> str:
        decision = decide(
            _policy_for(self.policy, task),
            attempt=task.attempts,
            error=error,
            rand=self.rng.random(),
        )
        message = f"{type(error).__name__}: {error}"[:2000]
        async with self.db.transaction() as session:
            if isinstance(decision, GiveUp):
                if not await self._finish(
                    session,
                    task,
                    state="dead",
                    now=now,
                    result=None,
                    last_error=decision.reason[:2000],
                ):
                    return self._lost(task)
                log.warning(
                    "outbox.dead",
                    task=task.id,
                    kind=task.kind,
                    company=task.company,
                    reason=decision.reason,
                )
                return "dead"
            if isinstance(decision, WaitForReconnect):
                if not await self._reschedule(
                    session,
                    task,
                    at=now + RECONNECT_PARK,
                    error=message,
                    refund_attempt=True,
                    now=now,
                ):
                    return self._lost(task)
                return "parked"
            assert isinstance(decision, RetryAfter)
            if not await self._reschedule(
                session,
                task,
                at=now + timedelta(seconds=decision.delay),
                error=message,
                refund_attempt=False,
                now=now,
            ):
                return self._lost(task)
            log.info(
                "outbox.retry",
                task=task.id,
                kind=task.kind,
                company=task.company,
                attempt=task.attempts,
                delay=round(decision.delay, 1),
                error=message,
            )
            return "pending"

    @staticmethod
    def _lost(task: ClaimedTask) -> str:
        log.warning("outbox.lease_lost", task=task.id, kind=task.kind, company=task.company)
        return "lost"

    async def _finish(
        self,
        session: AsyncSession,
        task: ClaimedTask,
        *,
        state: str,
        now: datetime,
        result: dict[str, Any] | None,
        last_error: str | None,
    ) -> bool:
        return await self.leases.settle(
            session,
            task,
            now=now,
            values={
                "state": state,
                "result": result,
                "last_error": last_error,
                "finished_at": now,
                "leased_until": None,
            },
            where=self._scope(task),
        )

    async def _reschedule(
        self,
        session: AsyncSession,
        task: ClaimedTask,
        *,
        at: datetime,
        error: str,
        refund_attempt: bool,
        now: datetime,
    ) -> bool:
        return await self.leases.settle(
            session,
            task,
            now=now,
            values={
                "state": "pending",
                "run_after": at,
                "last_error": error,
                "leased_until": None,
                "lease_owner": None,
                "attempts": OutboxTask.attempts - 1 if refund_attempt else OutboxTask.attempts,
            },
            where=self._scope(task),
        )

    @staticmethod
    def _scope(task: ClaimedTask) -> tuple[Any, ...]:
        # Tenant scope on every statement (the lease check itself is by id, owner, attempt).
        return (OutboxTask.company_id == task.company,)


def _policy_for(policy: RetryPolicy, task: ClaimedTask) -> RetryPolicy:
    if task.max_attempts is None or task.max_attempts == policy.max_attempts:
        return policy
    return RetryPolicy(
        base_delay=policy.base_delay,
        factor=policy.factor,
        max_delay=policy.max_delay,
        max_attempts=task.max_attempts,
    )
