"""Outbound throughput against Xero's rate-limit ceiling, and Xero calls spent per job created.

For 1 and for 50 tenants (one practice each), queues `--jobs` job creations per practice (their
requests assigned in the CRM, planned by the change feed), runs syncd's worker as the scheduler
does (`drain_outbox` once a second) until every job exists in the in-process Xero sandbox, and
reports from the sandbox's ledger:
  - per tenant, the calls per minute it used against the 60 allowed, averaged over the full
    minutes in which it still had work (the mean and the worst tenant, as ratios);
  - jobs created per minute, all tenants together;
  - Xero calls per job: the first job for a client (look the client up, create it, create the
    job; on Practice Manager also make the accountant its manager) and later jobs for the same
    client (create the job; on Practice Manager, and assign its manager).
Each backend is measured: Xero Projects (Accounting contacts) and Xero Practice Manager (XPM
clients, jobs and managers; the accountant is mapped to XPM staff, so every job gets one).
Time is a ScaledClock and every figure is in sandbox minutes. Scaling the clock makes syncd look
`speed` times slower against Xero's limits, so the 50-tenant run, which syncd's own work may
bound, uses real time by default (`--speed-many 1`); the single tenant is bound by the limit at
any speed up to ~20. SQLite in a temporary folder, and PostgreSQL when it is reachable (a
database created for the run and dropped afterwards). Nothing is written outside those. With
both databases the defaults take about 20 minutes, nearly all of it the 50-tenant runs in real
time. Usage, from the repository root: `.venv/bin/python benchmarks/outbound.py [--jobs 120]
[--clients 12] [--speed 10] [--speed-many 1] [--tenants 1,50] [--backends projects,practicemanager]
[--skip-postgres]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs

import asyncpg
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.harness, run from anywhere

from sqlalchemy import func, select

from syncd.clock import ScaledClock
from syncd.crm.memory import MemoryCrm
from syncd.domain.backends import Backend
from syncd.domain.ids import CompanyId
from syncd.domain.tasks import CREATE_JOB
from syncd.logs import configure_logging
from syncd.pipeline.changefeed import ChangeFeed
from syncd.pipeline.outbox import TaskRepository
from syncd.sandbox.checks import count_429, max_calls_in_any_window
from syncd.sandbox.models import LedgerEntry
from syncd.scheduler import drain_outbox
from syncd.settings import database_url
from syncd.store.db import Database
from syncd.store.mappings import StaffMappingRepository
from syncd.store.migrate import upgrade
from syncd.store.models import OutboxTask
from tests.harness import XPM_SCOPES, Harness, harness

PG_ADMIN = os.environ.get("SYNCD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PER_MINUTE = 60  # Xero's per-tenant limit, which syncd's governor keeps
TICK = 1.0  # the scheduler runs drain_outbox every second (syncd/scheduler.py)
STALL = 600.0  # sandbox seconds without a new job: something is stuck


@dataclass(slots=True)
class Practice:
    company: CompanyId
    backend: Backend
    tenant: str
    accountant: str
    requests: list[str]
    client_of: dict[str, str]  # request -> client
    email_of: dict[str, str]  # client -> email
    name_of: dict[str, str]  # client -> full name


@dataclass(slots=True)
class Result:
    database: str
    backend: Backend
    tenants: int
    speed: float
    jobs: int
    wall: float  # real seconds from the first round to the last job
    minutes: float  # the same span in sandbox minutes
    per_tenant: list[float]  # calls per full minute with work, per tenant
    busiest_minute: int  # the most calls of any tenant in any 60 s
    rejected: int  # 429s
    retried: int  # tasks that needed more than one attempt
    first_job: list[int] = field(default_factory=list)  # calls per first job of a client
    later_job: list[int] = field(default_factory=list)  # calls per later job
    unattributed: int = 0


async def practice(
    h: Harness,
    crm: MemoryCrm,
    company: CompanyId,
    backend: Backend,
    *,
    jobs: int,
    clients: int,
    now: datetime,
) -> Practice:
    """A connected practice with `clients` clients and `jobs` pending requests among them,
    interleaved (request n is client n mod `clients`, for service n div `clients`, so every job
    has its own name), so the first `clients` jobs are the first job of each client. No client
    is in Xero yet. On Practice Manager the accountant is mapped to a staff member (written
    straight to the mapping table: the set-up spends no Xero call)."""
    crm.add_company(name=f"Practice {company}", company_id=company)
    accountant = crm.add_person(
        company=company, role="accountant", email=f"ann@{company}.example", first_name="Ann"
    )
    services = [
        crm.add_service(company=company, name=f"Service {n}", base_price=Decimal("350.00"))
        for n in range(-(-jobs // clients))
    ]
    people = []
    email_of: dict[str, str] = {}
    name_of: dict[str, str] = {}
    for n in range(clients):
        email = f"client{n}@{company}.example"
        person = crm.add_person(
            company=company, role="client", email=email, first_name="Client", last_name=f"{n:03d}"
        )
        people.append(person)
        email_of[person] = email
        name_of[person] = f"Client {n:03d}"
    client_of: dict[str, str] = {}
    requests = []
    for n in range(jobs):
        client = people[n % clients]
        request = crm.add_request(
            company=company,
            client_id=client,
            service_id=services[n // clients],
            now=now - timedelta(hours=1),
        )
        client_of[request] = client
        requests.append(request)
    tenant_type = "PRACTICEMANAGER" if backend is Backend.PRACTICE_MANAGER else "ORGANISATION"
    tenant = await h.connect(company, f"Org of {company}", tenant_type=tenant_type)
    if backend is Backend.PRACTICE_MANAGER:
        staff = h.sandbox.add_staff(tenant, "Ann", f"ann@{company}.example")
        async with h.services.db.transaction() as session:
            await StaffMappingRepository(session).save(
                company=company,
                user_id=accountant,
                staff_id=staff["UUID"],
                staff_name=staff["Name"],
                now=now,
            )
    return Practice(company, backend, tenant, accountant, requests, client_of, email_of, name_of)


def creates_job(entry: LedgerEntry) -> bool:
    """A job creation Xero accepted (Projects answers 201, Practice Manager 200)."""
    key = entry.idempotency_key or ""
    made = entry.path.endswith(("/Projects", "/job.api/add"))
    return made and key.startswith("create:") and entry.status in (200, 201)


def attribute(practice: Practice, ledger: list[LedgerEntry]) -> tuple[list[int], list[int], int]:
    """Calls per first job and per later job of each client, from what Xero received: a job's
    create carries its task's key (`create:{request}`), its manager's assignment
    `manager:{request}:…`; client look-ups name the client's email or name, and a client's
    create carries `contact:{client}` (Projects) or `client:{client}` (XPM); a client's calls
    belong to its first job (the one whose create reached Xero first)."""
    by_email = {email.casefold(): client for client, email in practice.email_of.items()}
    by_name = {name.casefold(): client for client, name in practice.name_of.items()}
    job_calls: dict[str, int] = defaultdict(int)
    job_seq: dict[str, int] = {}
    client_calls: dict[str, int] = defaultdict(int)
    unattributed = 0
    for entry in ledger:
        if entry.tenant_id != practice.tenant or not entry.counted:
            continue
        key = entry.idempotency_key or ""
        # syncd's keys are "{task key}:{digest of the body}", task keys "kind:id[:…]".
        if entry.path.endswith(("/Projects", "/job.api/add")) and key.startswith("create:"):
            request = key.split(":")[1]
            job_calls[request] += 1
            job_seq.setdefault(request, entry.seq)
            continue
        if key.startswith("manager:"):
            job_calls[key.split(":")[1]] += 1
            continue
        client = None
        if key.startswith(("contact:", "client:")):
            client = key.split(":")[1]
        elif entry.path.endswith("/Contacts") and entry.method == "GET":
            where = parse_qs(entry.query).get("where", [""])[0]
            value = where.partition("==")[2].strip('"').casefold()
            client = by_email.get(value) or by_name.get(value)
        elif entry.path.endswith("/client.api/search"):
            value = parse_qs(entry.query).get("query", [""])[0].casefold()
            client = by_email.get(value) or by_name.get(value)
        if client in practice.email_of:
            client_calls[client] += 1
        else:
            unattributed += 1
    first: list[int] = []
    later: list[int] = []
    jobs_of: dict[str, list[str]] = defaultdict(list)
    for request in practice.requests:
        jobs_of[practice.client_of[request]].append(request)
    for client, requests in jobs_of.items():
        ordered = sorted(requests, key=lambda r: job_seq.get(r, sys.maxsize))
        first.append(job_calls[ordered[0]] + client_calls[client])
        later.extend(job_calls[r] for r in ordered[1:])
    return first, later, unattributed


def minute_rate(practice: Practice, ledger: list[LedgerEntry], start: datetime) -> float:
    """The tenant's mean calls per sandbox minute, counted from `start`, over the full minutes
    that ended before its last call (its only minute, when it finished within one)."""
    times = [
        (e.at - start).total_seconds()
        for e in ledger
        if e.tenant_id == practice.tenant and e.counted
    ]
    minutes = max(1, int(max(times) // 60))
    buckets = [0] * minutes
    for moment in times:
        if moment < 60 * minutes:
            buckets[int(moment // 60)] += 1
    return statistics.fmean(buckets)


async def unfinished(db: Database) -> int:
    """Outbox tasks still to run (a job's manager is assigned after its creation)."""
    async with db.transaction() as session:
        statement = select(func.count()).where(OutboxTask.state.in_(["pending", "running"]))
        return int((await session.execute(statement)).scalar_one())


async def scenario(
    url: str,
    label: str,
    backend: Backend,
    *,
    tenants: int,
    jobs: int,
    clients: int,
    speed: float,
) -> Result:
    db = Database(url)
    try:
        await upgrade(db)
        clock = ScaledClock(speed)
        crm = MemoryCrm()
        async with harness(
            db, Fernet.generate_key().decode(), clock=clock, crm=crm, xero_scopes=tuple(XPM_SCOPES)
        ) as h:
            practices = [
                await practice(
                    h,
                    crm,
                    CompanyId(f"practice-{n:02d}"),
                    backend,
                    jobs=jobs,
                    clients=clients,
                    now=clock.now(),
                )
                for n in range(tenants)
            ]
            feed = ChangeFeed(db=db, crm=crm, clock=clock, settle=timedelta(0))
            for p in practices:
                for request in p.requests:
                    crm.assign(
                        company=p.company,
                        request_id=request,
                        accountant_id=p.accountant,
                        now=clock.now(),
                    )
                await feed.read(p.company)
            total = tenants * jobs
            created: set[str] = set()
            seen = 0
            started, start = time.monotonic(), clock.now()
            progress = clock.monotonic()
            # The scheduler's rhythm: one drain_outbox round per (sandbox) second.
            while len(created) < total or h.services.worker.in_flight or await unfinished(db):
                if clock.monotonic() - progress > STALL:
                    raise SystemExit(f"no job created for {STALL / 60:g} sandbox minutes")
                await drain_outbox(h.services)
                await clock.sleep(TICK)
                ledger = h.sandbox.ledger
                for entry in ledger[seen:]:
                    key = entry.idempotency_key or ""
                    if creates_job(entry) and key not in created:
                        created.add(key)
                        progress = clock.monotonic()
                seen = len(ledger)
            wall, end = time.monotonic() - started, clock.now()
            async with db.transaction() as session:
                repository = TaskRepository(session)
                retried = 0
                for p in practices:
                    tasks, _ = await repository.page(
                        company=p.company, kinds=[CREATE_JOB], limit=jobs
                    )
                    retried += sum(task.attempts > 1 for task in tasks)
        ledger = list(h.sandbox.ledger)
        result = Result(
            database=label,
            backend=backend,
            tenants=tenants,
            speed=speed,
            jobs=total,
            wall=wall,
            minutes=(end - start).total_seconds() / 60,
            per_tenant=[minute_rate(p, ledger, start) for p in practices],
            busiest_minute=max(max_calls_in_any_window(ledger, p.tenant) for p in practices),
            rejected=count_429(ledger),
            retried=retried,
        )
        for p in practices:
            first, later, unattributed = attribute(p, ledger)
            result.first_job.extend(first)
            result.later_job.extend(later)
            result.unattributed += unattributed
        return result
    finally:
        await db.dispose()


async def _pg_admin(statement: str) -> None:
    dsn = make_url(PG_ADMIN).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def postgres_reachable() -> bool:
    try:
        asyncio.run(_pg_admin("SELECT 1"))
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL is not reachable at {PG_ADMIN} ({exc}): SQLite only")
        return False
    return True


def create_postgres_database() -> str:
    """A new, empty database in the local cluster, for one scenario."""
    name = f"syncd_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    return database_url(make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False))


def drop_postgres_database(url: str) -> None:
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))


def ratio(calls_per_minute: float) -> str:
    return f"{calls_per_minute / PER_MINUTE:.2f}"


def spread(calls: list[int]) -> str:
    if not calls:
        return "-"
    return f"{statistics.fmean(calls):.2f} ({min(calls)}-{max(calls)}, n={len(calls)})"


def report(results: list[Result], *, jobs: int, clients: int) -> None:
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(
        f"\nOutbound throughput against Xero's limit ({PER_MINUTE} calls/min per tenant), "
        f"{jobs} jobs per tenant for {clients} clients, a scheduler round every second\n"
        f"({os.cpu_count()} CPUs, load average now {load})"
    )
    print(
        f"{'database':<11}{'backend':<17}{'tenants':>8}{'speed':>6}{'jobs':>6}{'real s':>8}"
        f"{'jobs/s':>7}"
        f"{'sbx min':>8}{'jobs/min':>9}  {'calls/min/tenant':<17}{'used/allowed':<16}"
        f"{'max 60s':>7}{'429s':>5}{'retried':>8}"
    )
    for r in results:
        mean, worst = statistics.fmean(r.per_tenant), min(r.per_tenant)
        print(
            f"{r.database:<11}{r.backend.value:<17}{r.tenants:>8}{f'x{r.speed:g}':>6}{r.jobs:>6}"
            f"{r.wall:>8.1f}"
            f"{r.jobs / r.wall:>7.1f}{r.minutes:>8.2f}{r.jobs / r.minutes:>9.1f}  "
            f"{f'{mean:.1f} (min {worst:.1f})':<17}"
            f"{f'{ratio(mean)} (min {ratio(worst)})':<16}"
            f"{r.busiest_minute:>7}{r.rejected:>5}{r.retried:>8}"
        )
    print(
        "  calls/min/tenant: per tenant, the mean over the full sandbox minutes in which it still"
        " had work;\n  then the mean across tenants (min: the worst-served tenant). jobs/s: per"
        " real second.\n  max 60s: the most calls of any tenant in any 60 s."
    )
    print("\nXero calls per job (sandbox ledger)")
    print(
        f"{'database':<11}{'backend':<17}{'tenants':>8}  {'first job of a client':<26}"
        f"{'later jobs':<26}"
    )
    for r in results:
        print(
            f"{r.database:<11}{r.backend.value:<17}{r.tenants:>8}  {spread(r.first_job):<26}"
            f"{spread(r.later_job):<26}"
        )
        if r.unattributed:
            print(f"  ({r.unattributed} calls could not be tied to a job)")
    print(
        "  first job: its own create (and manager) plus every client call made for the client"
        " (look-up, create)."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=120, help="jobs queued per tenant")
    parser.add_argument("--clients", type=int, default=12, help="clients per tenant")
    parser.add_argument("--tenants", default="1,50", help="tenant counts to run, e.g. 1,50")
    parser.add_argument("--speed", type=float, default=10, help="clock speed for 1 tenant")
    parser.add_argument(
        "--speed-many", type=float, default=1, help="clock speed for more than one tenant"
    )
    parser.add_argument(
        "--backends", default="projects,practicemanager", help="job backends to measure"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    configure_logging("json", "error")
    databases = (
        ["SQLite"] if args.skip_postgres or not postgres_reachable() else ["SQLite", "PostgreSQL"]
    )
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-outbound-"))
    results: list[Result] = []
    try:
        runs = [
            (Backend(b.strip()), int(n), label)
            for b in args.backends.split(",")
            for n in args.tenants.split(",")
            for label in databases
        ]
        for backend, tenants, label in runs:
            url = (
                f"sqlite+aiosqlite:///{work / f'bench-{backend.value}-{tenants}.db'}"
                if label == "SQLite"
                else create_postgres_database()
            )
            speed = args.speed if tenants == 1 else args.speed_many
            print(f"{label}, {backend.label}, {tenants} tenant(s) at x{speed:g} ...", flush=True)
            try:
                result = asyncio.run(
                    scenario(
                        url,
                        label,
                        backend,
                        tenants=tenants,
                        jobs=args.jobs,
                        clients=args.clients,
                        speed=speed,
                    )
                )
            finally:
                if label == "PostgreSQL":
                    drop_postgres_database(url)
            results.append(result)
            print(
                f"  {result.jobs} jobs in {result.wall:.1f} s ({result.minutes:.2f} sandbox min)",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, jobs=args.jobs, clients=args.clients)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
