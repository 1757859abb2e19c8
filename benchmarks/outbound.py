"""Outbound throughput against Xero's rate-limit ceiling, and Xero calls spent per job created.

For 1 and for 50 tenants (one practice each), queues `--jobs` job creations per practice (their
requests assigned in the CRM, planned by the change feed), runs syncd's worker as the scheduler
does (`drain_outbox` once a second) until every job exists in the Xero sandbox, and reports from
the sandbox's ledger:
  - per tenant, its *rate use*: calls per minute over the steady window (the full minutes from
    the start in which every tenant still had work) divided by the 60 allowed; the mean and the
    worst tenant. Also the older figure, over each tenant's own minutes with work ("own");
  - jobs created per minute, all tenants together; 429s; the most calls of a tenant in any 60 s;
  - Xero calls per job: the first job for a client (look the client up, create it, create the
    job; on Practice Manager also make the accountant its manager) and later jobs for the same
    client (create the job; on Practice Manager, and assign its manager).
Each backend is measured: Xero Projects (Accounting contacts) and Xero Practice Manager (XPM
clients, jobs and managers; the accountant is mapped to XPM staff, so every job gets one).

Worker processes (`--workers 1,3`): with 1, syncd's worker runs in this process against the
in-process sandbox (SQLite and PostgreSQL). With N > 1 (PostgreSQL only: SQLite is one writer,
one process), N child processes (this script with `--child`) each open syncd's services from the
environment, as `syncd worker` does, and run `drain_outbox` once a second; they share each
tenant's budget through the shared rate governor. The sandbox is then served over HTTP on
127.0.0.1 by this process, the CRM is the reference schema in a second PostgreSQL database, and
time is real (x1).

Time is a ScaledClock and every figure is in sandbox minutes. Scaling the clock makes syncd look
`speed` times slower against Xero's limits, so the 50-tenant run, which syncd's own work may
bound, uses real time by default (`--speed-many 1`); the single tenant is bound by the limit at
any speed up to ~20. SQLite in a temporary folder, and PostgreSQL when it is reachable (databases
created for the run and dropped afterwards). Nothing is written outside those. With both
databases the defaults take about 20 minutes on a quiet machine, nearly all of it the 50-tenant
runs in real time. Usage, from the repository root: `.venv/bin/python benchmarks/outbound.py
[--jobs 120] [--clients 12] [--speed 10] [--speed-many 1] [--tenants 1,50]
[--backends projects,practicemanager] [--workers 1,3] [--minutes M] [--skip-postgres]
[--skip-sqlite]`. `--minutes M` stops each run after M sandbox minutes, all jobs created or not:
on a loaded machine, where a full 50-tenant run takes far longer, it still gives the rate use
(every tenant has work throughout) and the calls of the jobs created so far.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import asyncpg
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.harness, run from anywhere

from sqlalchemy import func, select

from syncd.clock import Clock, ScaledClock, SystemClock
from syncd.crm.memory import MemoryCrm
from syncd.crm.sql import SqlCrm
from syncd.domain.backends import Backend
from syncd.domain.ids import CompanyId
from syncd.domain.tasks import CREATE_JOB
from syncd.logs import configure_logging
from syncd.pipeline.changefeed import ChangeFeed
from syncd.pipeline.outbox import TaskRepository
from syncd.sandbox.checks import count_429, max_calls_in_any_window
from syncd.sandbox.crm import CrmApp, crm_app
from syncd.sandbox.models import LedgerEntry
from syncd.sandbox.server import build_server
from syncd.sandbox.state import SandboxState
from syncd.scheduler import drain_outbox
from syncd.services import open_services
from syncd.settings import database_url, load_settings
from syncd.store.db import Database
from syncd.store.mappings import StaffMappingRepository
from syncd.store.migrate import upgrade
from syncd.store.models import OutboxTask
from tests.harness import CLIENT_ID, CLIENT_SECRET, REDIRECT, XPM_SCOPES, Harness, harness

PG_ADMIN = os.environ.get("SYNCD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PER_MINUTE = 60  # Xero's per-tenant limit, which syncd's governor keeps
TICK = 1.0  # the scheduler runs drain_outbox every second (syncd/scheduler.py)
STALL = 600.0  # sandbox seconds without a new job: something is stuck
SCRIPT = str(Path(__file__).resolve())
STOP_GRACE = 30.0  # real seconds a child worker gets to stop after SIGTERM
CHILD_OVERFLOW = 12  # connections a child worker opens past its pool's 5


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
    workers: int  # worker processes (1: in this process)
    speed: float
    jobs: int
    wall: float  # real seconds from the first round to the last job
    minutes: float  # the same span in sandbox minutes
    per_tenant: list[float]  # calls per full minute with work, per tenant
    steady: list[float]  # calls per minute over the steady window, per tenant
    steady_minutes: int  # the steady window's length
    busiest_minute: int  # the most calls of any tenant in any 60 s
    rejected: int  # 429s
    retried: int  # tasks that needed more than one attempt
    troubles: dict[str, int] = field(default_factory=dict)  # worker processes' retries, by why
    first_job: list[int] = field(default_factory=list)  # calls per first job of a client
    later_job: list[int] = field(default_factory=list)  # calls per later job
    unattributed: int = 0


async def _done(value: Any) -> Any:
    """The value of a MemoryCrm call, or of a CrmApp one (a coroutine)."""
    return await value if inspect.isawaitable(value) else value


async def practice(
    h: Harness,
    crm: MemoryCrm | CrmApp,
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
    await _done(crm.add_company(name=f"Practice {company}", company_id=company))
    accountant = await _done(
        crm.add_person(
            company=company, role="accountant", email=f"ann@{company}.example", first_name="Ann"
        )
    )
    services = [
        await _done(
            crm.add_service(company=company, name=f"Service {n}", base_price=Decimal("350.00"))
        )
        for n in range(-(-jobs // clients))
    ]
    people = []
    email_of: dict[str, str] = {}
    name_of: dict[str, str] = {}
    for n in range(clients):
        email = f"client{n}@{company}.example"
        person = await _done(
            crm.add_person(
                company=company,
                role="client",
                email=email,
                first_name="Client",
                last_name=f"{n:03d}",
            )
        )
        people.append(person)
        email_of[person] = email
        name_of[person] = f"Client {n:03d}"
    client_of: dict[str, str] = {}
    requests = []
    for n in range(jobs):
        client = people[n % clients]
        request = await _done(
            crm.add_request(
                company=company,
                client_id=client,
                service_id=services[n // clients],
                now=now - timedelta(hours=1),
            )
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
        # Only jobs Xero created (a run stopped by --minutes leaves some for later).
        ordered = sorted((r for r in requests if r in job_seq), key=lambda r: job_seq[r])
        if not ordered:
            continue
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


def steady_rates(
    practices: list[Practice], ledger: list[LedgerEntry], start: datetime
) -> tuple[list[float], int]:
    """Per tenant, its calls per sandbox minute over the steady window: the full minutes from
    `start` that ended before the first tenant's last call, when every tenant still had work
    (at least one minute). Returns the rates and the window's length in minutes."""
    times: dict[str, list[float]] = defaultdict(list)
    for e in ledger:
        if e.counted and e.tenant_id is not None:
            times[e.tenant_id].append((e.at - start).total_seconds())
    last = min(max(times.get(p.tenant, [0.0])) for p in practices)
    minutes = max(1, int(last // 60))
    rates = [
        sum(1 for moment in times.get(p.tenant, []) if moment < 60 * minutes) / minutes
        for p in practices
    ]
    return rates, minutes


async def scenario(
    url: str,
    label: str,
    backend: Backend,
    *,
    tenants: int,
    jobs: int,
    clients: int,
    speed: float,
    workers: int = 1,
    crm_url: str | None = None,
    workdir: Path | None = None,
    minutes: float | None = None,
) -> Result:
    """One run. With `workers` > 1, `crm_url` is the CRM's (empty) database and `workdir`
    takes the children's logs. `minutes`: stop after that many sandbox minutes, jobs left or
    not (every tenant still has work then, so the whole run is the steady window)."""
    db = Database(url)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(db.dispose)
        await upgrade(db)
        clock: Clock = ScaledClock(speed) if workers == 1 else SystemClock()
        crm: MemoryCrm | SqlCrm
        if workers == 1:
            crm = MemoryCrm()
        else:
            assert crm_url is not None and workdir is not None
            crm = SqlCrm(crm_url)
            stack.push_async_callback(crm.dispose)
            async with crm_app(crm.engine) as app:
                await app.create_tables()
        key = Fernet.generate_key().decode()
        state = SandboxState(clock)
        h = await stack.enter_async_context(
            harness(db, key, clock=clock, crm=crm, sandbox=state, xero_scopes=tuple(XPM_SCOPES))
        )
        practices = []
        for n in range(tenants):
            company = CompanyId(f"practice-{n:02d}")
            if isinstance(crm, MemoryCrm):
                p = await practice(
                    h, crm, company, backend, jobs=jobs, clients=clients, now=clock.now()
                )
            else:
                async with crm_app(crm.engine) as app:
                    p = await practice(
                        h, app, company, backend, jobs=jobs, clients=clients, now=clock.now()
                    )
            practices.append(p)
        feed = ChangeFeed(db=db, crm=crm, clock=clock, settle=timedelta(0))
        for p in practices:
            if isinstance(crm, MemoryCrm):
                for request in p.requests:
                    crm.assign(
                        company=p.company,
                        request_id=request,
                        accountant_id=p.accountant,
                        now=clock.now(),
                    )
            else:
                async with crm_app(crm.engine) as app:
                    for request in p.requests:
                        await app.assign(
                            company=p.company,
                            request_id=request,
                            accountant_id=p.accountant,
                            now=clock.now(),
                        )
            await feed.read(p.company)
        children: list[asyncio.subprocess.Process] = []
        if workers > 1:
            assert crm_url is not None and workdir is not None
            sandbox_url = await serve_sandbox(stack, state)
            env = child_env(url, crm_url, key, sandbox_url)
            stack.push_async_callback(stop_children, children)
            for n in range(workers):
                children.append(await spawn_child(env, workdir / f"worker-{n}.log"))
        total = tenants * jobs
        created: set[str] = set()
        seen = 0
        started, start = time.monotonic(), clock.now()
        progress = began = clock.monotonic()
        # The scheduler's rhythm: one drain_outbox round per (sandbox) second, in this process
        # or in each child.
        while len(created) < total or h.services.worker.in_flight or await unfinished(db):
            if minutes is not None and clock.monotonic() - began >= minutes * 60:
                break
            if clock.monotonic() - progress > STALL:
                raise SystemExit(f"no job created for {STALL / 60:g} sandbox minutes")
            for n, child in enumerate(children):
                if child.returncode is not None:
                    assert workdir is not None
                    tail = (workdir / f"worker-{n}.log").read_text(errors="replace")[-3000:]
                    raise SystemExit(f"worker process {n} exited with {child.returncode}:\n{tail}")
            if not children:
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
        total = len(created)
        async with db.transaction() as session:
            repository = TaskRepository(session)
            retried = 0
            for p in practices:
                tasks, _ = await repository.page(company=p.company, kinds=[CREATE_JOB], limit=jobs)
                retried += sum(task.attempts > 1 for task in tasks)
        ledger = list(h.sandbox.ledger)
        troubles = worker_troubles(workdir, workers) if children else {}
    steady, steady_minutes = steady_rates(practices, ledger, start)
    result = Result(
        database=label,
        backend=backend,
        tenants=tenants,
        workers=workers,
        speed=speed if workers == 1 else 1.0,
        jobs=total,
        wall=wall,
        minutes=(end - start).total_seconds() / 60,
        per_tenant=[minute_rate(p, ledger, start) for p in practices],
        steady=steady,
        steady_minutes=steady_minutes,
        busiest_minute=max(max_calls_in_any_window(ledger, p.tenant) for p in practices),
        rejected=count_429(ledger),
        retried=retried,
        troubles=troubles,
    )
    for p in practices:
        first, later, unattributed = attribute(p, ledger)
        result.first_job.extend(first)
        result.later_job.extend(later)
        result.unattributed += unattributed
    return result


# -- worker processes ---------------------------------------------------------------------


async def serve_sandbox(stack: AsyncExitStack, state: SandboxState) -> str:
    """Serve the sandbox over HTTP on a free loopback port until `stack` closes; its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = int(listener.getsockname()[1])
    server = build_server(state, port=port)
    serving = asyncio.create_task(server.serve(sockets=[listener]))

    async def stop() -> None:
        server.should_exit = True
        await serving
        listener.close()

    stack.push_async_callback(stop)
    # The socket already listens: connections made before uvicorn accepts simply queue.
    return f"http://127.0.0.1:{port}"


TROUBLES = ("outbox.retry", "outbox.lease_lost", "outbox.dead", "outbox.task_crashed")


def worker_troubles(workdir: Path | None, workers: int) -> dict[str, int]:
    """From the worker processes' JSON logs: retries by error (ids cut off), lost leases,
    dead and crashed tasks, so that a "retried" count comes with its reasons."""
    counts: Counter[str] = Counter()
    for n in range(workers):
        if workdir is None or not (log := workdir / f"worker-{n}.log").exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            event = entry.get("event") if isinstance(entry, dict) else None
            if event in TROUBLES:
                raised = str(entry.get("exception") or "").strip().splitlines()
                error = str(entry.get("error") or (raised[-1] if raised else ""))
                why = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+", "#", error)
                counts[f"{event} {why[:120]}".strip()] += 1
    return dict(counts.most_common())


def child_env(url: str, crm_url: str, key: str, sandbox_url: str) -> dict[str, str]:
    """A worker's environment, as a deployment gives it (no SYNCD_/XERO_ setting of ours)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "XERO_"))}
    return {
        **keep,
        "SYNCD_DATABASE_URL": url,
        "SYNCD_CRM_DATABASE_URL": crm_url,
        "SYNCD_ENCRYPTION_KEYS": key,
        "XERO_CLIENT_ID": CLIENT_ID,
        "XERO_CLIENT_SECRET": CLIENT_SECRET,
        "XERO_REDIRECT_URI": REDIRECT,
        "XERO_API_URL": sandbox_url,
        "XERO_IDENTITY_URL": sandbox_url,
        "XERO_LOGIN_URL": sandbox_url,
        "SYNCD_LOG_FORMAT": "json",
        # A deployment's default level: the retries and lost leases are then in the logs,
        # summarised after the run (worker_troubles).
        "SYNCD_LOG_LEVEL": "info",
    }


async def spawn_child(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            SCRIPT,
            "--child",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def stop_children(children: list[asyncio.subprocess.Process]) -> None:
    for child in children:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            await asyncio.wait_for(child.wait(), STOP_GRACE)
        except TimeoutError:
            child.kill()
            await child.wait()


async def child() -> int:
    """One worker process: syncd's services from the environment, `drain_outbox` once a second
    (as the worker's scheduler runs it) until SIGTERM."""
    settings = load_settings(os.environ, env_file=None)
    configure_logging("json", "error")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    # A smaller pool than syncd's default (5 + 25): the shared local PostgreSQL allows 100
    # connections, between every worker process here and other test runs on the machine.
    db = Database(settings.database_url, max_overflow=CHILD_OVERFLOW)
    async with open_services(settings, db=db) as services:
        while not stop.is_set():
            await drain_outbox(services)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK)
    await db.dispose()
    return 0


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
        f"{'database':<11}{'backend':<17}{'tenants':>8}{'procs':>6}{'speed':>6}{'jobs':>6}"
        f"{'real s':>8}{'jobs/s':>7}{'sbx min':>8}{'jobs/min':>9}  {'rate use (steady)':<22}"
        f"{'own':<16}{'max 60s':>7}{'429s':>5}{'retried':>8}"
    )
    for r in results:
        mean, worst = statistics.fmean(r.steady), min(r.steady)
        own_mean, own_worst = statistics.fmean(r.per_tenant), min(r.per_tenant)
        print(
            f"{r.database:<11}{r.backend.value:<17}{r.tenants:>8}{r.workers:>6}"
            f"{f'x{r.speed:g}':>6}{r.jobs:>6}{r.wall:>8.1f}{r.jobs / r.wall:>7.1f}"
            f"{r.minutes:>8.2f}{r.jobs / r.minutes:>9.1f}  "
            f"{f'{ratio(mean)} (min {ratio(worst)}) {r.steady_minutes}m':<22}"
            f"{f'{ratio(own_mean)} (min {ratio(own_worst)})':<16}"
            f"{r.busiest_minute:>7}{r.rejected:>5}{r.retried:>8}"
        )
    print(
        "  rate use (steady): per tenant, calls per minute over the steady window (the full"
        " sandbox minutes\n  from the start in which every tenant still had work; its length"
        " after the figures) / 60;\n  the mean across tenants (min: the worst-served tenant)."
        " own: the same over each tenant's\n  own full minutes with work. procs: worker"
        " processes. jobs/s: per real second.\n  max 60s: the most calls of any tenant in any"
        " 60 s."
    )
    print("\nXero calls per job (sandbox ledger)")
    print(
        f"{'database':<11}{'backend':<17}{'tenants':>8}{'procs':>6}  "
        f"{'first job of a client':<26}{'later jobs':<26}"
    )
    for r in results:
        print(
            f"{r.database:<11}{r.backend.value:<17}{r.tenants:>8}{r.workers:>6}  "
            f"{spread(r.first_job):<26}{spread(r.later_job):<26}"
        )
        if r.unattributed:
            print(f"  ({r.unattributed} calls could not be tied to a job)")
        for trouble, count in r.troubles.items():
            print(f"  {r.database} x{r.workers} workers: {count} x {trouble}")
    print(
        "  first job: its own create (and manager) plus every client call made for the client"
        " (look-up, create)."
    )


def main() -> int:
    if sys.argv[1:] == ["--child"]:
        return asyncio.run(child())
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
    parser.add_argument(
        "--workers",
        default="1",
        help="worker process counts, e.g. 1,3 (more than 1: PostgreSQL only, real time)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="stop each run after this many sandbox minutes (a loaded machine: rate use so far)",
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    configure_logging("json", "error")
    databases = [] if args.skip_sqlite else ["SQLite"]
    if not args.skip_postgres and postgres_reachable():
        databases.append("PostgreSQL")
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-outbound-"))
    results: list[Result] = []
    try:
        runs = [
            (Backend(b.strip()), int(n), label, int(w))
            for b in args.backends.split(",")
            for n in args.tenants.split(",")
            for label in databases
            for w in args.workers.split(",")
            if label == "PostgreSQL" or int(w) == 1  # SQLite: one process
        ]
        for backend, tenants, label, workers in runs:
            urls = (
                [f"sqlite+aiosqlite:///{work / f'bench-{backend.value}-{tenants}.db'}"]
                if label == "SQLite"
                else [create_postgres_database() for _ in range(1 if workers == 1 else 2)]
            )
            speed = 1.0 if workers > 1 else args.speed if tenants == 1 else args.speed_many
            print(
                f"{label}, {backend.label}, {tenants} tenant(s), {workers} worker process(es)"
                f" at x{speed:g} ...",
                flush=True,
            )
            try:
                result = asyncio.run(
                    scenario(
                        urls[0],
                        label,
                        backend,
                        tenants=tenants,
                        jobs=args.jobs,
                        clients=args.clients,
                        speed=speed,
                        workers=workers,
                        crm_url=urls[1] if len(urls) > 1 else None,
                        workdir=work,
                        minutes=args.minutes,
                    )
                )
            finally:
                if label == "PostgreSQL":
                    for url in urls:
                        drop_postgres_database(url)
            results.append(result)
            print(
                f"  {result.jobs} jobs in {result.wall:.1f} s ({result.minutes:.2f} sandbox min);"
                f" rate use {ratio(statistics.fmean(result.steady))}"
                f" (min {ratio(min(result.steady))}), {result.rejected} x 429",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, jobs=args.jobs, clients=args.clients)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
