"""The inbound poller: Xero sends no webhooks for projects or XPM jobs, so each connected
practice's jobs are listed (paged, 500 per call, within the rate budget) and every status that
differs from what its link last saw becomes the same internal event a webhook would, handled by
the same code (the project snapshot rides along, so the handler need not fetch it again)."""

from __future__ import annotations

from datetime import datetime, timedelta

from syncd.clock import Clock
from syncd.domain.ids import CompanyId
from syncd.domain.tasks import POLL_COMPANY
from syncd.pipeline.inbox import InboxWriter, event_row
from syncd.pipeline.outbox import NewTask
from syncd.pipeline.worker import TaskContext
from syncd.store.connections import ConnectionRepository
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.xero.projects import Project, ProjectsApi
from syncd.xero.webhooks import WebhookEvent


def poll_task(company: CompanyId, *, now: datetime, interval_minutes: int) -> NewTask:
    """One poll per practice per interval: the slot in the key makes a second scheduler (or a
    second tick in the same slot) harmless."""
    slot = int(now.timestamp() // (interval_minutes * 60))
    return NewTask(company=company, kind=POLL_COMPANY, key=f"poll:{company}:{slot}", max_attempts=3)


def project_snapshot(project: Project) -> dict[str, object]:
    """The project as Projects' JSON would show it (what the handler parses)."""
    return {
        "projectId": project.project_id,
        "contactId": project.contact_id,
        "name": project.name,
        "status": project.status,
        "deadlineUtc": project.deadline.isoformat() if project.deadline else None,
    }


class ProjectCache:
    """The poller's latest full listing per practice, for reconciliation to reuse while fresh
    (in this process only; another worker's listing is simply fetched again)."""

    def __init__(self, clock: Clock, *, fresh_for: timedelta = timedelta(minutes=2)) -> None:
        self.clock = clock
        self.fresh_for = fresh_for
        self._listings: dict[str, tuple[datetime, list[Project]]] = {}

    def store(self, company: CompanyId, projects: list[Project], *, asked_at: datetime) -> None:
        """`asked_at`: when the listing was asked for (what it shows is at least that old)."""
        self._listings[company] = (asked_at, projects)

    def fresh(
        self, company: CompanyId, *, links_changed_at: datetime | None
    ) -> list[Project] | None:
        """The listing, unless it is old, or a job link changed since it was asked for (syncd
        wrote to Xero, or learnt something, that the listing may not show)."""
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
        projects: ProjectsApi,
        writer: InboxWriter,
        clock: Clock,
        cache: ProjectCache | None = None,
    ) -> None:
        self.db = db
        self.projects = projects
        self.writer = writer
        self.clock = clock
        self.cache = cache

    async def __call__(self, context: TaskContext) -> dict[str, object]:
        return await self.poll(context.task.company)

    async def poll(self, company: CompanyId) -> dict[str, object]:
        async with self.db.transaction() as session:
            connection = await ConnectionRepository(session).get_active(company=company)
            links = {
                link.xero_job_id: link
                for link in await JobLinkRepository(session).list(company=company)
                if link.xero_job_id
            }
        if connection is None:
            return {"skipped": "no active connection"}
        now = self.clock.now()
        rows, listing = [], []
        async for project in self.projects.list_all(company):
            listing.append(project)
            link = links.get(project.project_id)
            if link is None or project.status == link.xero_status_seen:
                continue
            event = WebhookEvent(
                tenant_id=connection.tenant_id,
                tenant_type=connection.tenant_type,
                category="PROJECT",
                event_type="PROJECT.STATUS.CHANGED",
                resource_id=project.project_id,
                event_at=now,
            )
            rows.append(
                event_row(
                    event,
                    source="poller",
                    received_at=now,
                    snapshot=project_snapshot(project),
                    link_version=link.version,
                )
            )
        await self.writer.write(rows)
        if self.cache is not None:
            self.cache.store(company, listing, asked_at=now)
        return {"projects": len(listing), "changes": len(rows)}
