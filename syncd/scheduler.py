"""APScheduler wiring. Jobs are short and idempotent; shutdown waits for the ones in flight.

Imports services and the pipeline; nothing imports this but the web lifespan and the CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import SQLAlchemyError

from syncd.domain.ids import CompanyId
from syncd.logs import get_logger
from syncd.pipeline.changefeed import ChangeFeed
from syncd.pipeline.outbox import TaskRepository, enqueue
from syncd.pipeline.poller import poll_task
from syncd.pipeline.reconcile import queue_scheduled_run, scheduled_key
from syncd.services import Services
from syncd.store.connections import ConnectionRepository
from syncd.store.oauth_states import OAuthStateRepository
from syncd.store.settings import SettingsRepository

log = get_logger("syncd.scheduler")


def one_line(exc: BaseException) -> str:
    """An exception as one line (a database error's driver message, not SQLAlchemy's essay)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


Job = Callable[[Services], Awaitable[object]]


async def housekeeping(services: Services) -> int:
    """Drop expired OAuth states, and (PostgreSQL) the shared rate budget's calls older than
    its day window."""
    async with services.db.transaction() as session:
        purged = await OAuthStateRepository(session).purge_expired_across_companies(
            now=services.clock.now()
        )
    if purged:
        log.info("housekeeping.oauth_states_purged", count=purged)
    if services.xero is not None:
        calls = await services.xero.governor.purge()
        if calls:
            log.info("housekeeping.rate_calls_purged", count=calls)
    return purged


async def drain_outbox(services: Services) -> int:
    return await services.worker.tick_outbox()


async def drain_inbox(services: Services) -> int:
    return await services.worker.tick_inbox()


async def enqueue_polls(services: Services) -> int:
    """One poll task per connected practice per interval (the key dedupes extra ticks)."""
    now = services.clock.now()
    added = 0
    async with services.db.transaction() as session:
        for connection in await ConnectionRepository(session).list_active_across_companies():
            if connection.needs_reconnect:
                continue
            company = CompanyId(connection.company_id)
            practice = await SettingsRepository(session).current(company=company)
            interval = practice.poll_interval_minutes or services.settings.poll_interval_minutes
            task = poll_task(company, now=now, interval_minutes=interval)
            if await enqueue(session, task, now=now) is not None:
                added += 1
    return added


async def read_changes(services: Services) -> int:
    """Each connected practice's CRM changes become tasks (see syncd.pipeline.changefeed)."""
    if services.crm is None:
        return 0
    feed = ChangeFeed(db=services.db, crm=services.crm, clock=services.clock)
    async with services.db.transaction() as session:
        connections = await ConnectionRepository(session).list_active_across_companies()
    total = 0
    for connection in connections:
        total += await feed.read(CompanyId(connection.company_id))
    return total


async def enqueue_reconciles(services: Services) -> int:
    """One scheduled reconciliation per practice per interval (the key dedupes extra ticks;
    the order key keeps one running per practice at a time)."""
    if services.reconciler is None:
        return 0
    now = services.clock.now()
    queued = 0
    async with services.db.transaction() as session:
        connections = await ConnectionRepository(session).list_active_across_companies()
    for connection in connections:
        if connection.needs_reconnect:
            continue
        company = CompanyId(connection.company_id)
        async with services.db.transaction() as session:
            practice = await SettingsRepository(session).current(company=company)
            interval = (
                practice.reconcile_interval_minutes or services.settings.reconcile_interval_minutes
            )
            key = scheduled_key(company, now, interval)
            if await TaskRepository(session).by_key(company=company, key=key) is not None:
                continue
        queued += await queue_scheduled_run(services.db, company, now=now, key=key)
    return queued


# A failing job (the database is read-only, gone, unreachable) is not run again until twice its
# interval has passed, then four times, ... up to this (or its own interval, if longer). Its
# first failure is logged, each retry in one line, and the recovery once: a few lines a minute
# instead of a traceback per tick.
MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Failing:
    """A job's run of consecutive failures (monotonic seconds)."""

    failures: int
    since: float
    retry_at: float


def after_failure(previous: Failing | None, *, now: float, interval: float) -> Failing:
    """The job failed (again) at `now`: when to try it next, exponentially later, capped."""
    failures = 1 if previous is None else previous.failures + 1
    delay = min(max(MAX_BACKOFF_SECONDS, interval), interval * 2 ** min(failures, 20))
    return Failing(
        failures=failures,
        since=now if previous is None else previous.since,
        retry_at=now + delay,
    )


class SchedulerRunner:
    """Starts the periodic jobs and, on stop, lets running ones finish (graceful SIGTERM)."""

    def __init__(self, services: Services, *, shutdown_grace: float = 20.0) -> None:
        self.services = services
        self.shutdown_grace = shutdown_grace
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._running: set[asyncio.Task[object]] = set()
        self.failing: dict[str, Failing] = {}

    def add(self, name: str, job: Job, *, seconds: float) -> None:
        self.scheduler.add_job(
            self.guarded(name, job, seconds=seconds),
            "interval",
            seconds=seconds,
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(seconds)),
        )

    def guarded(self, name: str, job: Job, *, seconds: float) -> Callable[[], Awaitable[None]]:
        """One tick of `job`: skipped while it backs off after failures, logged quietly."""
        clock = self.services.clock

        async def run() -> None:
            failing = self.failing.get(name)
            if failing is not None and clock.monotonic() < failing.retry_at:
                return
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await job(self.services)
            except Exception as exc:
                now = clock.monotonic()
                state = after_failure(failing, now=now, interval=seconds)
                self.failing[name] = state
                retry_in = round(state.retry_at - now, 1)
                if failing is None:
                    # A database that is down or unusable is named in one line; anything else
                    # is a bug, and its traceback is worth its size once.
                    expected = isinstance(exc, SQLAlchemyError | OSError)
                    traceback = {} if expected else {"exc_info": exc}
                    log.error(
                        "scheduler.job_failed",
                        job=name,
                        error=one_line(exc),
                        retry_in=retry_in,
                        **traceback,
                    )
                else:
                    log.warning(
                        "scheduler.job_still_failing",
                        job=name,
                        error=one_line(exc),
                        failures=state.failures,
                        retry_in=retry_in,
                    )
            else:
                if failing is not None:
                    del self.failing[name]
                    log.info(
                        "scheduler.job_recovered",
                        job=name,
                        failures=failing.failures,
                        failed_for=round(clock.monotonic() - failing.since, 1),
                    )
            finally:
                self._running.discard(task)

        return run

    def start(self) -> None:
        self.add("drain_outbox", drain_outbox, seconds=1)
        self.add("drain_inbox", drain_inbox, seconds=1)
        self.add("read_changes", read_changes, seconds=self.services.settings.change_feed_seconds)
        self.add("enqueue_polls", enqueue_polls, seconds=30)
        self.add("enqueue_reconciles", enqueue_reconciles, seconds=60)
        self.add("housekeeping", housekeeping, seconds=300)
        self.scheduler.start()
        log.info("scheduler.started", jobs=[job.id for job in self.scheduler.get_jobs()])

    async def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        if self._running:
            log.info("scheduler.draining", running=len(self._running))
            await asyncio.wait(set(self._running), timeout=self.shutdown_grace)
        await self.services.worker.close(grace=self.shutdown_grace)
        log.info("scheduler.stopped")
