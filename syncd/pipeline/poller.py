"""The inbound poller: Xero sends no webhooks for projects or Practice Manager jobs, so each
connected practice's jobs are listed within the rate budget and every change to a linked job
(state; on Practice Manager also due date and manager; and deletion) becomes an inbox event,
handled by the same code as any other (the job it saw rides along, so the handler need not
fetch it again).

The listing is the backend's: Projects lists every job (500 per call); Practice Manager lists
its current jobs in one call, and a linked job last seen open that has left that list (completed,
cancelled or deleted) is fetched by number. Reconciliation reuses the same observation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from syncd.clock import Clock
from syncd.domain.errors import NotFound
from syncd.domain.ids import CompanyId
from syncd.domain.statuses import StatusClass, same_state
from syncd.domain.sync_settings import Practice
from syncd.domain.tasks import POLL_COMPANY
from syncd.pipeline.inbound import JOB, JOB_CHANGED, JOB_DELETED
from syncd.pipeline.inbox import InboxWriter, event_row
from syncd.pipeline.outbox import NewTask
from syncd.pipeline.worker import TaskContext
from syncd.store.connections import ConnectionRepository
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.models import JobLink
from syncd.store.settings import SettingsRepository
from syncd.xero.jobs import Backends, Job
from syncd.xero.webhooks import WebhookEvent


def poll_task(company: CompanyId, *, now: datetime, interval_minutes: int) -> NewTask:
    """One poll per practice per interval: the slot in the key makes a second scheduler (or a
    second tick in the same slot) harmless."""
    slot = int(now.timestamp() // (interval_minutes * 60))
    return NewTask(company=company, kind=POLL_COMPANY, key=f"poll:{company}:{slot}", max_attempts=3)


@dataclass(slots=True)
class Observation:
    """What one look at a practice's Xero jobs showed: the jobs seen (listed or fetched) and
    the linked jobs found deleted."""

    jobs: dict[str, Job] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)


async def observe(
    backends: Backends,
    company: CompanyId,
    practice: Practice,
    links: Iterable[JobLink],
    *,
    verify: frozenset[str] = frozenset(),
) -> Observation:
    """The backend's listing, plus (where it leaves closed jobs out) each linked job last seen
    open that is not in it, and each in `verify` (reconciliation: jobs last seen closed whose
    request is open again): fetched, or found deleted."""
    backend = backends.of(practice.backend)
    seen = Observation(jobs={job.job_id: job for job in await backend.listing(company)})
    complete = practice.capabilities.lists_closed_jobs
    mapping = practice.mapping
    for link in links:
        job_id = link.xero_job_id
        if job_id is None or job_id in seen.jobs or link.state == "missing":
            continue
        if complete:
            seen.deleted.add(job_id)
            continue
        closed = mapping.xero_class(link.xero_status_seen or "") is StatusClass.CLOSED
        if closed and job_id not in verify:
            continue  # it left the current list when it closed, and syncd saw that
        try:
            seen.jobs[job_id] = await backend.job(
                company, job_id=job_id, number=link.xero_job_number
            )
        except NotFound:
            seen.deleted.add(job_id)
    return seen


def changed(link: JobLink, job: Job, *, details: bool) -> bool:
    """The job differs from what its link last saw (state; with `details`, due date and
    manager too)."""
    if not same_state(job.state, link.xero_status_seen):
        return True
    return details and (job.due != link.xero_due_seen or job.manager_id != link.xero_manager_seen)


class JobCache:
    """The poller's latest observation per practice, for reconciliation to reuse while fresh
    (in this process only; another worker's listing is simply fetched again)."""

    def __init__(self, clock: Clock, *, fresh_for: timedelta = timedelta(minutes=2)) -> None:
        self.clock = clock
        self.fresh_for = fresh_for
        self._listings: dict[str, tuple[datetime, Observation]] = {}

    def store(self, company: CompanyId, seen: Observation, *, asked_at: datetime) -> None:
        """`asked_at`: when the listing was asked for (what it shows is at least that old)."""
        self._listings[company] = (asked_at, seen)

    def fresh(self, company: CompanyId, *, links_changed_at: datetime | None) -> Observation | None:
        """The observation, unless it is old, or a job link changed since it was asked for
        (syncd wrote to Xero, or learnt something, that the listing may not show)."""
        entry = self._listings.get(company)
        if entry is None or self.clock.now() - entry[0] > self.fresh_for:
            return None
        if links_changed_at is not None and links_changed_at >= entry[0]:
            return None
        return entry[1]


class Poller:
    def __init__(
        self,
        *,
        db: Database,
        backends: Backends,
        writer: InboxWriter,
        clock: Clock,
        cache: JobCache | None = None,
    ) -> None:
        self.db = db
        self.backends = backends
        self.writer = writer
        self.clock = clock
        self.cache = cache

    async def __call__(self, context: TaskContext) -> dict[str, object]:
        return await self.poll(context.task.company)

    async def poll(self, company: CompanyId) -> dict[str, object]:
        async with self.db.transaction() as session:
            connection = await ConnectionRepository(session).get_active(company=company)
            practice = await SettingsRepository(session).practice(company=company)
            links = [
                link
                for link in await JobLinkRepository(session).list(company=company)
                if link.xero_job_id
            ]
        if connection is None:
            return {"skipped": "no active connection"}
        now = self.clock.now()
        seen = await observe(self.backends, company, practice, links)
        details = practice.capabilities.follows_details
        rows = []
        for link in links:
            assert link.xero_job_id is not None
            job = seen.jobs.get(link.xero_job_id)
            deleted = link.xero_job_id in seen.deleted
            if not deleted and (job is None or not changed(link, job, details=details)):
                continue
            event = WebhookEvent(
                tenant_id=connection.tenant_id,
                tenant_type=connection.tenant_type,
                category=JOB,
                event_type=JOB_DELETED if deleted else JOB_CHANGED,
                resource_id=link.xero_job_id,
                event_at=now,
            )
            rows.append(
                event_row(
                    event,
                    source="poller",
                    received_at=now,
                    snapshot=job.as_json() if job is not None and not deleted else None,
                    link_version=link.version,
                )
            )
        await self.writer.write(rows)
        if self.cache is not None:
            self.cache.store(company, seen, asked_at=now)
        return {"jobs": len(seen.jobs), "changes": len(rows), "deleted": len(seen.deleted)}
