"""What must hold after the chaos, read from syncd's database, the CRM and the sandbox (its world
and its ledger), and checked by pure functions that return every violation they find.

The test's reads use plain engines (no `BEGIN IMMEDIATE` on SQLite), so watching the workers
never takes the write lock they need.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from syncd.crm.port import CrmRequest
from syncd.domain.statuses import PROJECTS_MAPPING
from syncd.domain.tasks import CREATE_JOB, SET_JOB_STATE, create_job, set_job_state
from syncd.store.models import JobLink, OutboxTask

KINDS = (CREATE_JOB, SET_JOB_STATE)
CREATE_PATH = "/projects.xro/2.0/projects"
SHOW = 12  # violations listed per kind of problem


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


def expected_keys(requests: Iterable[CrmRequest]) -> dict[tuple[str, str], str]:
    """(company, key) → kind of every task the burst must have produced: one creation per
    request, and one state change to CLOSED for the version the CRM completed it at."""
    expected = {}
    for request in requests:
        company = request.company_id
        expected[(company, create_job(request.request_id).key)] = CREATE_JOB
        version = request.updated_at.isoformat()
        expected[(company, set_job_state(request.request_id, "CLOSED", version).key)] = (
            SET_JOB_STATE
        )
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
    projects: Mapping[str, Sequence[Mapping[str, Any]]],
    tenants: Mapping[str, str],
) -> list[str]:
    """Every request is linked to exactly one job: one link with one job id, the same id on the
    CRM row, that job once in the practice's organisation, no job shared or left unlinked, and
    the job's state in the class of the request's status."""
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
        listed = Counter(str(p["projectId"]) for p in projects.get(tenant, []))
        status = {str(p["projectId"]): str(p["status"]) for p in projects.get(tenant, [])}
        linked = {job for (c, _), job in job_of.items() if c == company}
        problems["linked jobs missing from Xero"] += sorted(j for j in linked if j not in listed)
        problems["jobs listed more than once"] += sorted(j for j, n in listed.items() if n > 1)
        problems["jobs in Xero no request links to"] += sorted(j for j in listed if j not in linked)
        for request in requests:
            job = job_of.get((request.company_id, request.request_id))
            if request.company_id != company or job is None or job not in status:
                continue
            want = PROJECTS_MAPPING.crm_class(request.status)
            if PROJECTS_MAPPING.xero_class(status[job]) is not want:
                problems["jobs whose state is not the request's class"].append(
                    f"{request.request_id}: CRM {request.status}, Xero {status[job]}"
                )
    return [line for title, items in problems.items() for line in _listed(title, items)]


def duplicate_jobs(projects: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    """Groups of jobs sharing contact and name (the sandbox's own duplicate rule)."""
    groups: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for project in projects:
        key = (str(project["contactId"]), str(project["name"]).strip().casefold())
        groups[key].append(str(project["projectId"]))
    return [group for group in groups.values() if len(group) > 1]


def ledger_problems(
    ledger: Sequence[Mapping[str, Any]], requests: Sequence[CrmRequest]
) -> list[str]:
    """Over every call the sandbox received: each request's job was created by exactly one
    call that Xero executed (replays of the same Idempotency-Key answer the stored job and
    create nothing), and no creation happened under any other key."""
    created = Counter(
        str(entry["idempotency_key"])
        for entry in ledger
        if entry["method"] == "POST"
        and str(entry["path"]).lower() == CREATE_PATH
        and entry["status"] == 201
        and not entry["replayed"]
    )
    wanted = {create_job(r.request_id).key for r in requests}
    return [
        *_listed("requests whose job was never created", sorted(wanted - set(created))),
        *_listed(
            "jobs created more than once for one key",
            sorted(f"{k}: {n}" for k, n in created.items() if n > 1),
        ),
        *_listed("jobs created under other keys", sorted(set(created) - wanted)),
    ]


def sandbox_problems(
    requests: Sequence[CrmRequest],
    projects: Mapping[str, Sequence[Mapping[str, Any]]],
    contacts: Mapping[str, Sequence[Mapping[str, Any]]],
    reported: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """No duplicate job in any organisation, by the sandbox's own checker and by listing its
    jobs; and one Xero contact per client (concurrent first jobs of a client share one)."""
    problems = []
    for tenant, report in reported.items():
        if report["duplicate_projects"]:
            problems.append(f"sandbox check: duplicate jobs in {tenant}: {report}")
        for group in duplicate_jobs(projects[tenant]):
            problems.append(f"duplicate jobs in {tenant}: {group}")
    clients = len({(r.company_id, r.client_id) for r in requests})
    made = sum(len(found) for found in contacts.values())
    if made != clients:
        problems.append(f"{made} Xero contacts for {clients} clients")
    return problems


def replays(ledger: Sequence[Mapping[str, Any]]) -> int:
    """Writes the sandbox answered from its Idempotency-Key store (a retry of a call it ran)."""
    return sum(1 for entry in ledger if entry["replayed"])
