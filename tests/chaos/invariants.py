"""What must hold after the chaos, read from syncd's database, the CRM and the sandbox (its world
and its ledger), and checked by pure functions that return every violation they find, on either
job backend: Xero Projects (projects and Accounting contacts) or Practice Manager (jobs and XPM
clients, as the sandbox's control API lists them).

The test's reads use plain engines (no `BEGIN IMMEDIATE` on SQLite), so watching the workers
never takes the write lock they need.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from syncd.crm.port import CrmRequest
from syncd.domain.backends import Backend, default_mapping
from syncd.domain.statuses import CrmStatus
from syncd.domain.tasks import CREATE_JOB, SET_JOB_STATE, create_job, set_job_state
from syncd.pipeline.outbound import request_reference
from syncd.store.models import JobLink, OutboxTask

KINDS = (CREATE_JOB, SET_JOB_STATE)
# The call that creates a job, and its success status, per backend.
CREATE_CALL = {
    Backend.PROJECTS: ("/projects.xro/2.0/projects", 201),
    # XPM answers 200 (refusals too, with Status ERROR: none is expected here).
    Backend.PRACTICE_MANAGER: ("/practicemanager/3.1/job.api/add", 200),
}
SHOW = 12  # violations listed per kind of problem


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRow:
    """A job as the sandbox lists it, on either backend."""

    job_id: str  # projectId; XPM: UUID (what syncd links)
    client_id: str  # contactId; XPM: ClientUUID
    name: str
    state: str
    reference: str | None = None  # XPM: ClientOrderNumber


def job_rows(backend: Backend, listed: Iterable[Mapping[str, Any]]) -> list[JobRow]:
    """The sandbox's listing (`/projects` or, for a practice, `/jobs`) as rows."""
    if backend is Backend.PRACTICE_MANAGER:
        return [
            JobRow(
                job_id=str(job["UUID"]),
                client_id=str(job["ClientUUID"]),
                name=str(job["Name"]),
                state=str(job["State"]),
                reference=job.get("ClientOrderNumber"),
            )
            for job in listed
        ]
    return [
        JobRow(
            job_id=str(p["projectId"]),
            client_id=str(p["contactId"]),
            name=str(p["name"]),
            state=str(p["status"]),
        )
        for p in listed
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """The burst's tasks (create and state kinds only) by state."""

    by_state: Mapping[str, int]

    @property
    def done(self) -> int:
        return self.by_state.get("done", 0)

    @property
    def dead(self) -> int:
        return self.by_state.get("dead", 0)

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRow:
    company: str
    key: str
    kind: str
    state: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkRow:
    company: str
    request_id: str
    state: str
    job_id: str | None
    status_seen: str | None


async def progress(syncd: AsyncEngine) -> Progress:
    statement = (
        select(OutboxTask.state, func.count())
        .where(OutboxTask.kind.in_(KINDS))
        .group_by(OutboxTask.state)
    )
    async with syncd.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return Progress(by_state={state: int(n) for state, n in rows})


async def running(syncd: AsyncEngine) -> dict[int, int]:
    """The burst's tasks running right now: id → attempts."""
    statement = select(OutboxTask.id, OutboxTask.attempts).where(
        OutboxTask.kind.in_(KINDS), OutboxTask.state == "running"
    )
    async with syncd.connect() as connection:
        return {int(i): int(a) for i, a in (await connection.execute(statement)).all()}


async def other_tasks(syncd: AsyncEngine) -> dict[str, tuple[int, int]]:
    """The periodic work that ran beside the burst (polls, reconciliations): kind → (tasks,
    most attempts of one)."""
    statement = (
        select(OutboxTask.kind, func.count(), func.max(OutboxTask.attempts))
        .where(OutboxTask.kind.not_in(KINDS))
        .group_by(OutboxTask.kind)
    )
    async with syncd.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return {kind: (int(n), int(most)) for kind, n, most in rows}


async def tasks(syncd: AsyncEngine) -> dict[int, TaskRow]:
    statement = select(
        OutboxTask.id,
        OutboxTask.company_id,
        OutboxTask.idempotency_key,
        OutboxTask.kind,
        OutboxTask.state,
        OutboxTask.attempts,
        OutboxTask.last_error,
    ).where(OutboxTask.kind.in_(KINDS))
    async with syncd.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return {
        int(row.id): TaskRow(
            company=row.company_id,
            key=row.idempotency_key,
            kind=row.kind,
            state=row.state,
            attempts=int(row.attempts),
            last_error=row.last_error,
        )
        for row in rows
    }


async def links(syncd: AsyncEngine) -> list[LinkRow]:
    statement = select(
        JobLink.company_id,
        JobLink.request_id,
        JobLink.state,
        JobLink.xero_job_id,
        JobLink.xero_status_seen,
    )
    async with syncd.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return [
        LinkRow(
            company=row.company_id,
            request_id=row.request_id,
            state=row.state,
            job_id=row.xero_job_id,
            status_seen=row.xero_status_seen,
        )
        for row in rows
    ]


def _listed(title: str, items: Sequence[str]) -> list[str]:
    if not items:
        return []
    more = f" (+{len(items) - SHOW} more)" if len(items) > SHOW else ""
    return [f"{title}: {len(items)}{more}", *(f"  {item}" for item in items[:SHOW])]


def expected_keys(
    requests: Iterable[CrmRequest], backend: Backend = Backend.PROJECTS
) -> dict[tuple[str, str], str]:
    """(company, key) → kind of every task the burst must have produced: one creation per
    request, and one state change to the backend's state for completed (CLOSED; XPM's default
    `Completed`) for the version the CRM completed it at."""
    closed = default_mapping(backend).xero_state_for(CrmStatus.COMPLETED)
    assert closed is not None
    expected = {}
    for request in requests:
        company = request.company_id
        expected[(company, create_job(request.request_id).key)] = CREATE_JOB
        version = request.updated_at.isoformat()
        expected[(company, set_job_state(request.request_id, closed, version).key)] = SET_JOB_STATE
    return expected


def task_problems(
    expected: Mapping[tuple[str, str], str], found: Mapping[int, TaskRow]
) -> list[str]:
    """No task lost (each expected key exists, of its kind, and ended done); none extra. (The
    database keeps keys unique per company, so "exists" means "exists once".)"""
    rows = {(row.company, row.key): row for row in found.values()}
    return [
        *_listed("tasks missing", sorted(str(k) for k in expected if k not in rows)),
        *_listed("unexpected tasks", sorted(str(k) for k in rows if k not in expected)),
        *_listed(
            "tasks of the wrong kind",
            sorted(
                f"{k}: {rows[k].kind}, not {kind}"
                for k, kind in expected.items()
                if k in rows and rows[k].kind != kind
            ),
        ),
        *_listed(
            "tasks not done",
            sorted(
                f"{row.key}: {row.state} after {row.attempts} attempts ({row.last_error})"
                for row in found.values()
                if row.state != "done"
            ),
        ),
    ]


def link_problems(
    requests: Sequence[CrmRequest],
    found: Sequence[LinkRow],
    jobs: Mapping[str, Sequence[Mapping[str, Any]]],
    tenants: Mapping[str, str],
    backend: Backend = Backend.PROJECTS,
) -> list[str]:
    """Every request is linked to exactly one job: one link with one job id, the same id on the
    CRM row, that job once in the practice's tenant, no job shared or left unlinked, the job's
    state in the class of the request's status (the backend's default mapping) and, on Practice
    Manager, the job carrying the request's reference (its client order number)."""
    mapping = default_mapping(backend)
    rows = {tenant: job_rows(backend, listed) for tenant, listed in jobs.items()}
    links_of: defaultdict[tuple[str, str], list[LinkRow]] = defaultdict(list)
    for link in found:
        links_of[(link.company, link.request_id)].append(link)
    problems: defaultdict[str, list[str]] = defaultdict(list)
    job_of: dict[tuple[str, str], str] = {}
    for request in requests:
        where = (request.company_id, request.request_id)
        own = links_of.get(where, [])
        if len(own) != 1 or own[0].job_id is None or own[0].state != "linked":
            problems["requests without exactly one linked job"].append(f"{where}: {own}")
            continue
        job_of[where] = own[0].job_id
        if request.xero_job_id != own[0].job_id:
            problems["CRM rows disagreeing with their link"].append(
                f"{where}: CRM {request.xero_job_id}, link {own[0].job_id}"
            )
        if request.xero_sync_error is not None or request.xero_synced_at is None:
            problems["CRM rows not marked synced"].append(f"{where}: {request.xero_sync_error}")
    shared = Counter(job_of.values())
    problems["jobs linked to several requests"] = sorted(j for j, n in shared.items() if n > 1)
    for company, tenant in tenants.items():
        listed = Counter(row.job_id for row in rows.get(tenant, []))
        status = {row.job_id: row.state for row in rows.get(tenant, [])}
        reference = {row.job_id: row.reference for row in rows.get(tenant, [])}
        linked = {job for (c, _), job in job_of.items() if c == company}
        problems["linked jobs missing from Xero"] += sorted(j for j in linked if j not in listed)
        problems["jobs listed more than once"] += sorted(j for j, n in listed.items() if n > 1)
        problems["jobs in Xero no request links to"] += sorted(j for j in listed if j not in linked)
        for request in requests:
            job = job_of.get((request.company_id, request.request_id))
            if request.company_id != company or job is None or job not in status:
                continue
            want = mapping.crm_class(request.status)
            if mapping.xero_class(status[job]) is not want:
                problems["jobs whose state is not the request's class"].append(
                    f"{request.request_id}: CRM {request.status}, Xero {status[job]}"
                )
            wanted = request_reference(request.request_id)
            if backend is Backend.PRACTICE_MANAGER and reference[job] != wanted:
                problems["jobs not carrying their request's reference"].append(
                    f"{request.request_id}: job {job} has {reference[job]!r}, not {wanted!r}"
                )
    return [line for title, items in problems.items() for line in _listed(title, items)]


def duplicate_jobs(
    jobs: Iterable[Mapping[str, Any]], backend: Backend = Backend.PROJECTS
) -> list[list[str]]:
    """Groups of duplicate jobs: on Projects, sharing contact and name (the sandbox's own rule);
    on Practice Manager, sharing syncd's request reference (the client order number), whatever
    their client: stricter than the sandbox's `duplicate_jobs` (client and order number), so a
    request's second job made for a second XPM client of the same CRM client shows too (each
    job listed with its client). Jobs without a reference are never grouped."""
    groups: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for row in job_rows(backend, jobs):
        if backend is Backend.PRACTICE_MANAGER:
            if row.reference:
                groups[("", row.reference)].append(f"{row.job_id} (client {row.client_id})")
        else:
            groups[(row.client_id, row.name.strip().casefold())].append(row.job_id)
    return [group for group in groups.values() if len(group) > 1]


def ledger_problems(
    ledger: Sequence[Mapping[str, Any]],
    requests: Sequence[CrmRequest],
    backend: Backend = Backend.PROJECTS,
) -> list[str]:
    """Over every call the sandbox received: each request's job was created by exactly one
    call that Xero executed, and no creation happened under any other key. (Projects: replays
    of the same Idempotency-Key answer the stored job and create nothing. Practice Manager
    honours no Idempotency-Key, but syncd still sends its task's key, and a retried creation
    first looks for the job its reference is on: a second executed call is a second job.)"""
    path, success = CREATE_CALL[backend]
    (other,) = (p for b, (p, _) in CREATE_CALL.items() if b is not backend)
    elsewhere = sorted(
        {f"{e['method']} {e['path']}" for e in ledger if str(e["path"]).lower() == other}
    )
    created = Counter(
        task_key(str(entry["idempotency_key"]))
        for entry in ledger
        if entry["method"] == "POST"
        and str(entry["path"]).lower() == path
        and entry["status"] == success
        and not entry["replayed"]
        and entry.get("fault") != "fail"
    )
    wanted = {create_job(r.request_id).key for r in requests}
    return [
        *_listed("requests whose job was never created", sorted(wanted - set(created))),
        *_listed(
            "jobs created more than once for one key",
            sorted(f"{k}: {n}" for k, n in created.items() if n > 1),
        ),
        *_listed("jobs created under other keys", sorted(set(created) - wanted)),
        *_listed(f"jobs created on the other backend than {backend.label}", elsewhere),
    ]


def sandbox_problems(
    requests: Sequence[CrmRequest],
    jobs: Mapping[str, Sequence[Mapping[str, Any]]],
    contacts: Mapping[str, Sequence[Mapping[str, Any]]],
    reported: Mapping[str, Mapping[str, Any]],
    backend: Backend = Backend.PROJECTS,
) -> list[str]:
    """No duplicate job in any tenant, by the sandbox's own checker (`duplicate_projects`;
    XPM: `duplicate_jobs`) and by listing its jobs; and one Xero contact (XPM: client) per CRM
    client (concurrent first jobs of a client share one)."""
    checker = "duplicate_jobs" if backend is Backend.PRACTICE_MANAGER else "duplicate_projects"
    problems = []
    for tenant, report in reported.items():
        if report[checker]:
            problems.append(f"sandbox check: duplicate jobs in {tenant}: {report}")
        for group in duplicate_jobs(jobs[tenant], backend):
            problems.append(f"duplicate jobs in {tenant}: {group}")
    clients = len({(r.company_id, r.client_id) for r in requests})
    made = sum(len(found) for found in contacts.values())
    if made != clients:
        kind = "Practice Manager clients" if backend is Backend.PRACTICE_MANAGER else "contacts"
        problems.append(f"{made} Xero {kind} for {clients} clients")
        twice = sorted(
            f"{tenant}: {name!r} x{n}"
            for tenant, found in contacts.items()
            for name, n in Counter(str(c["Name"]) for c in found if c.get("Name")).items()
            if n > 1
        )
        problems += _listed("names made more than once", twice)
    return problems


def replays(ledger: Sequence[Mapping[str, Any]]) -> int:
    """Writes the sandbox answered from its Idempotency-Key store (a retry of a call it ran)."""
    return sum(1 for entry in ledger if entry["replayed"])


def task_key(header: str) -> str:
    """The task's key in an Idempotency-Key header (syncd appends a digest of the body)."""
    return re.sub(r":[0-9a-f]{16}$", "", header)
