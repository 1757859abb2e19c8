"""Outbound task handlers: what syncd writes to Xero on the CRM's behalf.

Each handler is idempotent: it re-reads the link, skips what Xero already has, and sends writes
with the task's idempotency key, so a task retried after a crash or a lost answer does no harm.
"""

from __future__ import annotations

from typing import Any

from syncd.clock import Clock
from syncd.crm.port import CrmPort
from syncd.domain.errors import PermanentError, TransientError
from syncd.logs import get_logger
from syncd.pipeline.outbox import TaskRepository
from syncd.pipeline.worker import TaskContext
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.xero.projects import ProjectsApi, ProjectStatus

log = get_logger("syncd.outbound")

PROJECT_STATES: frozenset[str] = frozenset({"INPROGRESS", "CLOSED"})


class Outbound:
    def __init__(self, *, db: Database, crm: CrmPort, projects: ProjectsApi, clock: Clock) -> None:
        self.db = db
        self.crm = crm
        self.projects = projects
        self.clock = clock

    async def set_job_state(self, context: TaskContext) -> dict[str, Any]:
        task = context.task
        company = task.company
        request_id = str(task.payload["request_id"])
        state = str(task.payload["state"]).upper()
        if state not in PROJECT_STATES:
            raise PermanentError(f"Xero Projects has no state {state!r}")
        async with self.db.transaction() as session:
            link = await JobLinkRepository(session).for_request(
                company=company, request_id=request_id
            )
            if link is None or link.xero_job_id is None:
                creating = await TaskRepository(session).unfinished(
                    company=company, order_key=f"request:{request_id}", kind="create_job"
                )
                if creating:
                    raise TransientError("the job is still being created")
                raise PermanentError("the request has no Xero job to update")
            job_id, seen = link.xero_job_id, link.xero_status_seen
        if seen == state:
            return {"skipped": f"Xero already has {state}"}
        status: ProjectStatus = "CLOSED" if state == "CLOSED" else "INPROGRESS"
        await self.projects.set_status(company, job_id, status, idempotency_key=task.key)
        now = self.clock.now()
        async with self.db.transaction() as session:
            link = await JobLinkRepository(session).for_request(
                company=company, request_id=request_id, lock=True
            )
            assert link is not None
            link.xero_status_written = state
            link.xero_status_seen = state
            link.xero_seen_at = now
            link.synced_at = now
            link.last_error = None
            link.version += 1
            link.updated_at = now
        await self.crm.write_back(
            company=company,
            request_id=request_id,
            job_id=job_id,
            job_number=link.xero_job_number,
            synced_at=now,
            error=None,
        )
        log.info("outbound.job_state_set", company=company, request=request_id, state=state)
        return {"job_id": job_id, "state": state}
