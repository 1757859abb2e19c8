"""A sample CRM for the demo and the tests: the reference schema in any database, filled with
practices, people, services and requests, plus the CRM application's own actions (assign a
request, change its status) so a demo can make changes syncd then follows.

Ids are uuid5 of the seed, so creating the sample twice inserts nothing the second time.
Imports `syncd.crm`, `syncd.store.db`, `syncd.domain`, `syncd.clock` and `syncd.settings`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from syncd.clock import ensure_aware
from syncd.crm.memory import MemoryCrm, Role
from syncd.crm.schema import (
    ROLE_NAMES,
    companies,
    metadata,
    roles,
    service_requests,
    services,
    users,
)
from syncd.crm.sql import SqlCrm, require_company, require_status
from syncd.domain.ids import CompanyId
from syncd.settings import database_url
from syncd.store.db import create_engine

NAMESPACE = uuid.UUID("6f1c8f0e-2b1a-5c55-9a43-5d2c7c0e5a11")

PRACTICE_NAMES = (
    "Harbour & Co Accountants",
    "Summit Tax Partners",
    "Ledger Lane Advisory",
    "Bluegum Bookkeeping & Tax",
    "Northshore Chartered Accountants",
    "Riverbend Business Services",
)
FIRST_NAMES = (
    "Olivia", "Liam", "Charlotte", "Noah", "Amelia", "Jack", "Isla", "William", "Mia", "Oliver",
    "Ava", "Thomas", "Grace", "James", "Chloe", "Lucas", "Sophie", "Henry", "Zoe", "Ethan",
    "Priya", "Arjun", "Mei", "Hiroshi", "Aroha", "Tane", "Fatima", "Omar", "Elena", "Mateo",
)  # fmt: skip
LAST_NAMES = (
    "Chen", "Smith", "Nguyen", "Williams", "Brown", "Patel", "Taylor", "Wilson", "Kumar", "Lee",
    "Martin", "Anderson", "Walker", "Ngata", "Thompson", "White", "Singh", "Harris", "Wong",
    "Clarke", "Kelly", "Murphy", "Rossi", "Tanaka", "Hughes", "Campbell", "Evans", "Ali",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _ServiceSpec:
    name: str
    base_price: Decimal
    description: str  # formatted with the client's full name


GLOBAL_SERVICES = (
    _ServiceSpec("Individual Tax Return", Decimal("350.00"), "Individual tax return for {client}"),
    _ServiceSpec("BAS Preparation", Decimal("220.00"), "Quarterly BAS for {client}"),
)
PRACTICE_SERVICES = (
    _ServiceSpec("Company Tax Return", Decimal("1200.00"), "Company tax return: {client} Pty Ltd"),
    _ServiceSpec("Bookkeeping", Decimal("180.00"), "Monthly bookkeeping for {client}"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplePractice:
    company_id: CompanyId
    name: str
    admin_id: str
    accountant_ids: tuple[str, ...]
    client_ids: tuple[str, ...]
    service_ids: tuple[int, ...]  # the practice's own and the global ones, ascending
    request_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleCrm:
    practices: tuple[SamplePractice, ...]

    @property
    def company_ids(self) -> tuple[CompanyId, ...]:
        return tuple(p.company_id for p in self.practices)


# -- the CRM application's actions -------------------------------------------------------------


class CrmApp:
    """Does to a CRM database what the CRM application does: seed rows, assign, change status.

    Mirrors `MemoryCrm`'s seeding methods. Holds a connection; the caller owns the transaction
    (`crm_app(engine)` opens one).
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def create_tables(self) -> None:
        """The reference schema's tables and index, where missing."""
        await self.connection.run_sync(metadata.create_all)

    async def role_ids(self) -> dict[str, int]:
        """The roles by name, creating the missing ones."""
        found = await self._roles()
        missing = [name for name in ROLE_NAMES if name not in found]
        if missing:
            await self.connection.execute(insert(roles), [{"name": name} for name in missing])
            found = await self._roles()
        return found

    async def _roles(self) -> dict[str, int]:
        rows = (await self.connection.execute(select(roles.c.name, roles.c.id))).all()
        return {row.name: row.id for row in rows}

    async def add_company(self, *, name: str, company_id: str | None = None) -> CompanyId:
        company = company_id or str(uuid.uuid4())
        await self.connection.execute(insert(companies).values(id=company, name=name))
        return CompanyId(company)

    async def add_person(
        self,
        *,
        company: CompanyId | None,
        role: Role,
        email: str,
        first_name: str | None = None,
        last_name: str | None = None,
        phone: str | None = None,
        is_active: bool = True,
        user_id: str | None = None,
    ) -> str:
        """A CRM user (client, accountant, practice admin; a super admin has no company)."""
        role_id = (await self.role_ids())[role]
        user = user_id or str(uuid.uuid4())
        await self.connection.execute(
            insert(users).values(
                id=user,
                company_id=company,
                role_id=role_id,
                email=email,
                first_name=first_name,
                last_name=last_name,
                phone=phone,
                is_active=is_active,
            )
        )
        return user

    async def add_service(
        self, *, company: CompanyId | None, name: str, base_price: Decimal | None = None
    ) -> int:
        """A service of one practice, or of every practice (`company` None)."""
        result = await self.connection.execute(
            insert(services)
            .values(company_id=company, name=name, base_price=base_price)
            .returning(services.c.id)
        )
        return int(result.scalar_one())

    async def add_request(
        self,
        *,
        company: CompanyId,
        client_id: str,
        service_id: int,
        now: datetime,
        status: str = "pending",
        accountant_id: str | None = None,
        assigned_at: datetime | None = None,
        description: str | None = None,
        due_date: date | None = None,
        request_id: str | None = None,
    ) -> str:
        """A new service request, created (and last updated) at `now`."""
        stamp = ensure_aware(now)
        request = request_id or str(uuid.uuid4())
        await self.connection.execute(
            insert(service_requests).values(
                id=request,
                company_id=require_company(company),
                user_id=client_id,
                service_id=service_id,
                assigned_to_id=accountant_id,
                status=require_status(status),
                description=description,
                due_date=due_date,
                assigned_at=None if assigned_at is None else ensure_aware(assigned_at),
                created_at=stamp,
                updated_at=stamp,
            )
        )
        return request

    async def set_status(
        self, *, company: CompanyId, request_id: str, status: str, now: datetime
    ) -> None:
        """What the CRM does when a user changes a status: no compare, bumps updated_at."""
        await self._change(
            company, request_id, status=require_status(status), updated_at=ensure_aware(now)
        )

    async def assign(
        self, *, company: CompanyId, request_id: str, accountant_id: str, now: datetime
    ) -> None:
        """What the CRM does when an admin assigns a request to an accountant."""
        stamp = ensure_aware(now)
        accountant = (
            await self.connection.execute(
                select(users.c.id)
                .join(roles, roles.c.id == users.c.role_id)
                .where(
                    users.c.id == accountant_id,
                    users.c.company_id == require_company(company),
                    roles.c.name == "accountant",
                )
            )
        ).first()
        if accountant is None:
            raise ValueError(f"company {company!r} has no accountant {accountant_id!r}")
        await self._change(
            company,
            request_id,
            status="assigned",
            assigned_to_id=accountant_id,
            assigned_at=stamp,
            updated_at=stamp,
        )

    async def _change(self, company: CompanyId, request_id: str, **values: Any) -> None:
        result = await self.connection.execute(
            update(service_requests)
            .where(
                service_requests.c.id == request_id,
                service_requests.c.company_id == require_company(company),
            )
            .values(**values)
        )
        if result.rowcount != 1:
            raise LookupError(f"company {company!r} has no request {request_id!r}")


@asynccontextmanager
async def crm_app(engine: AsyncEngine) -> AsyncIterator[CrmApp]:
    """A `CrmApp` in one transaction: committed when the block ends, rolled back if it raises."""
    async with engine.begin() as connection:
        yield CrmApp(connection)


@asynccontextmanager
async def _engine_of(url_or_crm: str | SqlCrm) -> AsyncIterator[AsyncEngine]:
    if isinstance(url_or_crm, SqlCrm):
        yield url_or_crm.engine
        return
    engine = create_engine(database_url(url_or_crm))
    try:
        yield engine
    finally:
        await engine.dispose()


async def assign_request(
    url_or_crm: str | SqlCrm | MemoryCrm,
    *,
    company: CompanyId,
    request_id: str,
    accountant_id: str,
    now: datetime,
) -> None:
    """Assign a request as a practice admin does in the CRM: status `assigned`, the
    accountant, `assigned_at` and `updated_at` set to `now` (so it enters the change feed)."""
    if isinstance(url_or_crm, MemoryCrm):
        url_or_crm.assign(
            company=company, request_id=request_id, accountant_id=accountant_id, now=now
        )
        return
    async with _engine_of(url_or_crm) as engine, crm_app(engine) as app:
        await app.assign(
            company=company, request_id=request_id, accountant_id=accountant_id, now=now
        )


async def set_request_status(
    url_or_crm: str | SqlCrm | MemoryCrm,
    *,
    company: CompanyId,
    request_id: str,
    status: str,
    now: datetime,
) -> None:
    """Change a request's status as a CRM user does (no compare-and-set), bumping updated_at."""
    if isinstance(url_or_crm, MemoryCrm):
        url_or_crm.set_status(company=company, request_id=request_id, status=status, now=now)
        return
    async with _engine_of(url_or_crm) as engine, crm_app(engine) as app:
        await app.set_status(company=company, request_id=request_id, status=status, now=now)


# -- the sample --------------------------------------------------------------------------------


def sample_id(seed: int, *parts: object) -> str:
    """The deterministic id of one sample row."""
    return str(uuid.uuid5(NAMESPACE, ":".join(str(p) for p in (seed, *parts))))


def practice_name(index: int) -> str:
    base = PRACTICE_NAMES[index % len(PRACTICE_NAMES)]
    round_ = index // len(PRACTICE_NAMES)
    return base if round_ == 0 else f"{base} {round_ + 1}"


@dataclass(frozen=True, slots=True)
class _Name:
    first: str
    last: str
    email: str


def _names(rng: random.Random, count: int) -> list[_Name]:
    """`count` distinct people; emails like olivia.chen@example.com (numbered past the pool)."""
    pool = [(f, last) for f in FIRST_NAMES for last in LAST_NAMES]
    rng.shuffle(pool)
    names = []
    for position in range(count):
        first, last = pool[position % len(pool)]
        suffix = "" if position < len(pool) else str(position // len(pool) + 1)
        email = f"{first}.{last}{suffix}@example.com".lower()
        names.append(_Name(first, last, email))
    return names


def _phone(rng: random.Random) -> str:
    return f"+61 4{rng.randrange(100):02d} {rng.randrange(1000):03d} {rng.randrange(1000):03d}"


async def _insert_missing(
    connection: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert the rows whose id the table does not hold yet."""
    if not rows:
        return
    ids = [row["id"] for row in rows]
    present = set(
        (await connection.execute(select(table.c.id).where(table.c.id.in_(ids)))).scalars()
    )
    missing = [dict(row) for row in rows if row["id"] not in present]
    if missing:
        await connection.execute(insert(table), missing)


async def _service_id(
    connection: AsyncConnection, company: CompanyId | None, spec: _ServiceSpec
) -> int:
    """The service of that name (one practice's or global), created when missing."""
    scope = services.c.company_id.is_(None) if company is None else services.c.company_id == company
    found = (
        await connection.execute(
            select(func.min(services.c.id)).where(scope, services.c.name == spec.name)
        )
    ).scalar()
    if found is not None:
        return int(found)
    return await CrmApp(connection).add_service(
        company=company, name=spec.name, base_price=spec.base_price
    )


async def create_sample_crm(
    url: str,
    *,
    practices: int = 2,
    clients_per_practice: int = 4,
    accountants_per_practice: int = 2,
    requests_per_practice: int = 6,
    seed: int = 0,
    now: datetime | None = None,
) -> SampleCrm:
    """Create the CRM's tables where missing and fill them with a sample (one transaction).

    Practices, a practice admin each, accountants, clients, global and practice services, and
    requests (mostly pending and unassigned; every fifth is assigned). Rows already there are
    left alone, so a second call inserts nothing and returns the same `SampleCrm`.
    """
    stamp = ensure_aware(now) if now is not None else datetime.now(UTC)
    rng = random.Random(seed)
    per_practice = 1 + accountants_per_practice + clients_per_practice
    people = _names(rng, practices * per_practice)
    engine = create_engine(database_url(url))
    try:
        async with crm_app(engine) as app:
            await app.create_tables()
            role_ids = await app.role_ids()
            global_services = {
                spec.name: await _service_id(app.connection, None, spec) for spec in GLOBAL_SERVICES
            }
            result = []
            for index in range(practices):
                result.append(
                    await _create_practice(
                        app.connection,
                        index=index,
                        seed=seed,
                        rng=rng,
                        people=iter(people[index * per_practice : (index + 1) * per_practice]),
                        role_ids=role_ids,
                        global_services=global_services,
                        accountants=accountants_per_practice,
                        clients=clients_per_practice,
                        requests=requests_per_practice,
                        now=stamp,
                    )
                )
    finally:
        await engine.dispose()
    return SampleCrm(practices=tuple(result))


async def _create_practice(
    connection: AsyncConnection,
    *,
    index: int,
    seed: int,
    rng: random.Random,
    people: Iterator[_Name],
    role_ids: Mapping[str, int],
    global_services: Mapping[str, int],
    accountants: int,
    clients: int,
    requests: int,
    now: datetime,
) -> SamplePractice:
    company = CompanyId(sample_id(seed, "practice", index))
    name = practice_name(index)
    await _insert_missing(connection, companies, [{"id": company, "name": name}])

    def person(key: str, role: str, with_phone: bool) -> dict[str, Any]:
        who: _Name = next(people)
        return {
            "id": sample_id(seed, "practice", index, key),
            "company_id": company,
            "role_id": role_ids[role],
            "email": who.email,
            "first_name": who.first,
            "last_name": who.last,
            "phone": _phone(rng) if with_phone else None,
            "is_active": True,
        }

    admin = person("admin", "practice_admin", with_phone=False)
    staff = [person(f"accountant:{i}", "accountant", False) for i in range(accountants)]
    customers = [person(f"client:{i}", "client", True) for i in range(clients)]
    await _insert_missing(connection, users, [admin, *staff, *customers])

    own = {spec.name: await _service_id(connection, company, spec) for spec in PRACTICE_SERVICES}
    offered = {**global_services, **own}
    specs = {spec.name: spec for spec in (*GLOBAL_SERVICES, *PRACTICE_SERVICES)}

    rows = []
    for i in range(requests if customers else 0):
        client = customers[i % len(customers)]
        spec = specs[rng.choice(sorted(offered))]
        created = now - timedelta(days=requests - i, hours=rng.randrange(1, 9))
        due = (created + timedelta(days=rng.randrange(14, 46))).date()
        assigned = bool(staff) and i % 5 == 4
        full_name = f"{client['first_name']} {client['last_name']}"
        rows.append(
            {
                "id": sample_id(seed, "practice", index, "request", i),
                "company_id": company,
                "user_id": client["id"],
                "service_id": offered[spec.name],
                "assigned_to_id": staff[i % len(staff)]["id"] if assigned else None,
                "status": "assigned" if assigned else "pending",
                "description": spec.description.format(client=full_name),
                "due_date": due,
                "assigned_at": created + timedelta(hours=2) if assigned else None,
                "created_at": created,
                "updated_at": created + timedelta(hours=2) if assigned else created,
            }
        )
    await _insert_missing(connection, service_requests, rows)

    return SamplePractice(
        company_id=company,
        name=name,
        admin_id=admin["id"],
        accountant_ids=tuple(s["id"] for s in staff),
        client_ids=tuple(c["id"] for c in customers),
        service_ids=tuple(sorted(offered.values())),
        request_ids=tuple(r["id"] for r in rows),
    )
