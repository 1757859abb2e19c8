"""Reading a 100,000-request practice for reconciliation, from PostgreSQL: time and memory.

Seeds a throwaway database (created here, dropped at the end) with the CRM's reference tables
and syncd's own, filled by COPY from the same plan as benchmarks/reconcile.py (requests,
clients, accountants, services; job links, mappings, tasks in flight), then measures the
database side of the runner's snapshot, two ways, side by side:

* previous: the CRM port's lists, then the links, mappings and busy tasks as ORM objects
  (repositories' `list` and `page`), turned into snapshot values while all are held;
* streaming: `syncd.pipeline.reconcile.read_crm` and `read_store` as the runner now calls them:
  syncd's rows streamed in batches as plain rows, each port list dropped once converted.

The Xero side is not read here: the runner takes it from the poller's fresh listing (a cache).
Each measurement runs in a fresh process (so its peak RSS is its own): wall and CPU seconds
(median of --rounds), the growth of peak RSS, and the tracemalloc peak of a second read in the
same process (tracemalloc slows the read, so it is not timed). The load average is printed.
Usage: `.venv/bin/python benchmarks/reconcile_snapshot.py [--size 100000] [--rounds 3]`
(PostgreSQL at SYNCD_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reconcile as plans  # benchmarks/reconcile.py: the same practice

from reconcilers.snapshots import CrmPerson, CrmRequest, CrmService, Link, Mappings
from syncd.crm import schema
from syncd.crm.sql import SqlCrm
from syncd.domain.backends import Backend, default_mapping
from syncd.domain.ids import CompanyId
from syncd.domain.statuses import StatusClass, StatusMapping
from syncd.pipeline.outbox import TaskRepository
from syncd.pipeline.reconcile import read_crm, read_store
from syncd.settings import database_url
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import (
    ContactMappingRepository,
    ServiceMappingRepository,
    StaffMappingRepository,
)
from syncd.store.migrate import upgrade

ADMIN_URL = os.environ.get("SYNCD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
COMPANY = CompanyId("co-benchmark")
MAPPING = default_mapping(Backend.PROJECTS)
START = datetime(2026, 1, 1, tzinfo=UTC)


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def admin(statement: str) -> None:
    connection = await asyncpg.connect(dsn(ADMIN_URL), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


# -- seeding -------------------------------------------------------------------------------------


async def seed(url: str, size: int) -> dict[str, int]:
    """The practice's rows, by COPY. Returns rows per table."""
    db = Database(database_url(url))
    try:
        await upgrade(db)
        async with db.engine.begin() as connection:
            await connection.run_sync(schema.metadata.create_all)
    finally:
        await db.dispose()
    plan = plans.plan(size, plans.Mix(backend=Backend.PROJECTS, drift=0.02, listing="creation"))
    naive = START.replace(tzinfo=None)
    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {
        "companies": (["id", "name"], [(COMPANY, "Benchmark practice")]),
        "roles": (["id", "name"], [(n + 1, name) for n, name in enumerate(schema.ROLE_NAMES)]),
        "users": (
            ["id", "company_id", "role_id", "email", "first_name", "last_name"],
            [
                (plans.client_id(c), COMPANY, 4, f"c{c}@example.com", "Client", str(c))
                for c in range(plan.clients)
            ]
            + [
                (plans.accountant_id(a), COMPANY, 3, plans.email_of(a), "Accountant", str(a))
                for a in range(plan.accountants)
            ],
        ),
        "services": (
            ["id", "company_id", "name"],
            [(s + 1, COMPANY, name) for s, name in enumerate(plans.SERVICES)],
        ),
        "service_requests": (
            [
                "id",
                "company_id",
                "user_id",
                "service_id",
                "assigned_to_id",
                "status",
                "created_at",
                "updated_at",
            ],
            [
                (
                    plans.request_id(n),
                    COMPANY,
                    plans.client_id(client),
                    service + 1,
                    None if accountant is None else plans.accountant_id(accountant),
                    status,
                    naive + timedelta(seconds=n),
                    naive + timedelta(seconds=n),
                )
                for n, client, service, accountant, status in plan.requests
            ],
        ),
        "job_links": (
            [
                "company_id",
                "request_id",
                "state",
                "xero_job_id",
                "crm_status_seen",
                "xero_status_seen",
                "xero_status_written",
                "version",
                "created_at",
                "updated_at",
            ],
            [
                (
                    COMPANY,
                    plans.request_id(n),
                    "missing" if deleted else ("pending" if job is None else "linked"),
                    None if job is None else plans.job_id(job),
                    crm,
                    seen,
                    written,
                    1,
                    START,
                    START + timedelta(seconds=n),
                )
                for n, job, crm, seen, written, deleted in plan.links
            ],
        ),
        "contact_mappings": (
            [
                "company_id",
                "crm_client_id",
                "xero_contact_id",
                "auto_created",
                "archived",
                "created_at",
                "updated_at",
            ],
            [
                (COMPANY, plans.client_id(c), plans.contact_id(c), False, False, START, START)
                for c in plan.contact_map
            ],
        ),
        "staff_mappings": (
            ["company_id", "crm_user_id", "xero_staff_id", "created_at", "updated_at"],
            [
                (COMPANY, plans.accountant_id(a), plans.staff_id(a), START, START)
                for a in plan.staff_map
            ],
        ),
        "service_template_mappings": (
            ["company_id", "crm_service_id", "xero_template_id", "created_at", "updated_at"],
            [(COMPANY, s + 1, f"template-{s}", START, START) for s in plan.service_map],
        ),
        "outbox_tasks": (
            [
                "company_id",
                "kind",
                "payload",
                "idempotency_key",
                "order_key",
                "state",
                "attempts",
                "run_after",
                "created_at",
                "updated_at",
            ],
            [
                (
                    COMPANY,
                    "set_job_state",
                    "{}",
                    f"bench:{n}",
                    f"request:{plans.request_id(n)}",
                    "pending",
                    0,
                    START,
                    START,
                    START,
                )
                for n in plan.busy
            ],
        ),
    }
    connection = await asyncpg.connect(dsn(url))
    try:
        # COPY is binary: json's binary form is its text.
        await connection.set_type_codec(
            "json", encoder=str.encode, decoder=bytes.decode, schema="pg_catalog", format="binary"
        )
        for table, (columns, records) in tables.items():
            await connection.copy_records_to_table(table, records=records, columns=columns)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return {table: len(records) for table, (_, records) in tables.items()}


# -- the two ways of reading ---------------------------------------------------------------------


async def previous(db: Database, crm: SqlCrm) -> object:
    """The runner's reads before streaming (syncd.pipeline.reconcile at issue 13's start)."""
    requests = await crm.list_requests(company=COMPANY)
    clients = await crm.list_clients(company=COMPANY)
    accountants = await crm.list_accountants(company=COMPANY)
    services = await crm.list_services(company=COMPANY)
    async with db.transaction() as session:
        links = await JobLinkRepository(session).list(company=COMPANY)
        contact_map = await ContactMappingRepository(session).list(company=COMPANY)
        staff_map = await StaffMappingRepository(session).list(company=COMPANY)
        service_map = await ServiceMappingRepository(session).list(company=COMPANY)
        busy = await TaskRepository(session).page(
            company=COMPANY, states=["pending", "running"], limit=100_000
        )
    mapping: StatusMapping = MAPPING
    reopened = {r.request_id for r in requests if mapping.crm_class(r.status) is StatusClass.OPEN}
    verify = frozenset(
        link.xero_job_id
        for link in links
        if link.xero_job_id is not None
        and link.request_id in reopened
        and mapping.xero_class(link.xero_status_seen or "") is StatusClass.CLOSED
    )
    changed_at = max((link.updated_at for link in links), default=None)
    values = (
        [
            CrmRequest(
                request_id=r.request_id,
                client_id=r.client_id,
                service_id=r.service_id,
                accountant_id=r.accountant_id,
                status=r.status,
                updated_at=r.updated_at,
            )
            for r in requests
        ],
        [
            CrmPerson(person_id=c.user_id, name=c.full_name, email=c.email, active=c.is_active)
            for c in clients
        ],
        [
            CrmPerson(person_id=a.user_id, name=a.full_name, email=a.email, active=a.is_active)
            for a in accountants
        ],
        [CrmService(service_id=s.service_id, name=s.name) for s in services],
        [
            Link(
                request_id=link.request_id,
                job_id=link.xero_job_id,
                crm_seen=link.crm_status_seen,
                xero_seen=link.xero_status_seen,
                xero_written=link.xero_status_written,
                deleted=link.state == "missing",
            )
            for link in links
        ],
        Mappings(
            contacts={m.crm_client_id: m.xero_contact_id for m in contact_map},
            staff={m.crm_user_id: m.xero_staff_id for m in staff_map},
            services={m.crm_service_id: m.xero_template_id for m in service_map},
        ),
        frozenset(
            t.order_key.removeprefix("request:")
            for t in busy[0]
            if t.order_key and t.order_key.startswith("request:")
        ),
        verify,
        changed_at,
    )
    return values, links  # the ORM links stay alive until the snapshot is built, as they did


async def streaming(db: Database, crm: SqlCrm) -> object:
    side = await read_crm(crm, COMPANY)
    return side, await read_store(db, COMPANY, mapping=MAPPING, requests=side.requests)


WAYS: dict[str, Callable[[Database, SqlCrm], Awaitable[object]]] = {
    "previous": previous,
    "streaming": streaming,
}


async def child(way: str, url: str) -> dict[str, float]:
    """One process, one way: a timed read, then a read under tracemalloc."""
    db, crm = Database(database_url(url)), SqlCrm(url)
    try:
        await crm.list_services(company=COMPANY)  # connections open, before measuring
        async with db.transaction() as session:
            await ContactMappingRepository(session).list(company=CompanyId("nobody"))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        wall, cpu = time.perf_counter(), time.process_time()
        result = await WAYS[way](db, crm)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        del result
        tracemalloc.start()
        result = await WAYS[way](db, crm)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del result
    finally:
        await db.dispose()
        await crm.dispose()
    return {"wall": wall, "cpu": cpu, "rss_mib": rss / 1024, "traced_mib": peak / 2**20}


def measure(way: str, url: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", way, "--url", url],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=sorted(WAYS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.url))))
        return 0
    name = f"syncd_bench_{uuid.uuid4().hex[:12]}"
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        started = time.perf_counter()
        rows = asyncio.run(seed(url, args.size))
        print(f"seeded {sum(rows.values()):,} rows in {time.perf_counter() - started:.1f} s: ")
        print("  " + ", ".join(f"{table} {n:,}" for table, n in rows.items()))
        runs: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
        for _ in range(args.rounds):
            for way in WAYS:  # interleaved, so both see the same load
                runs[way].append(measure(way, url))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.size:,} requests; median of {args.rounds}; load average {load}")
    print(f"{'way':<12}{'wall s':>9}{'CPU s':>9}{'peak RSS +MiB':>15}{'traced peak MiB':>17}")
    medians = {
        way: {k: statistics.median(r[k] for r in results) for k in results[0]}
        for way, results in runs.items()
    }
    for way, m in medians.items():
        print(
            f"{way:<12}{m['wall']:>9.2f}{m['cpu']:>9.2f}{m['rss_mib']:>15.0f}{m['traced_mib']:>17.0f}"
        )
    base, new = medians["previous"], medians["streaming"]
    print(
        "streaming / previous: "
        + ", ".join(f"{k} {new[k] / base[k]:.2f}" for k in ("wall", "cpu", "rss_mib", "traced_mib"))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
