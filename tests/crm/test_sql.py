"""What only the SQL adapter has: the CRM's naive UTC columns, database defaults, the index the
change feed uses, text ordering under a non-byte collation, and URL handling."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import DateTime, text
from sqlalchemy.engine import make_url

from syncd.crm.port import ChangeCursor
from syncd.crm.sql import SqlCrm, change_feed
from syncd.sandbox.crm import crm_app
from tests.conftest import DATABASES, POSTGRES_URL, asyncpg_dsn, drop_pg_database
from tests.crm.apps import SqlApp
from tests.crm.world import T0, A, seed_world


@pytest.fixture
async def sql(crm_url: str) -> AsyncIterator[SqlCrm]:
    crm = SqlCrm(crm_url)
    async with crm_app(crm.engine) as app:
        await app.create_tables()
    yield crm
    await crm.dispose()


async def test_timestamps_are_stored_as_naive_utc(sql: SqlCrm) -> None:
    """The CRM's columns hold naive UTC wall time: an aware 18:00+11:00 is stored as 07:00."""
    await seed_world(SqlApp(sql))
    await sql.apply_status(
        company=A,
        request_id="a-req-1",
        status="assigned",
        expected="pending",
        now=datetime(2026, 11, 26, 18, 0, tzinfo=timezone(timedelta(hours=11))),
    )
    async with sql.engine.connect() as connection:
        raw = (
            await connection.execute(
                text(
                    "SELECT created_at, updated_at FROM service_requests WHERE id = 'a-req-1'"
                ).columns(created_at=DateTime(), updated_at=DateTime())
            )
        ).one()
    assert raw.created_at == datetime(2026, 11, 25, 9, 0)
    assert raw.updated_at == datetime(2026, 11, 26, 7, 0)
    assert raw.updated_at.tzinfo is None


async def test_rows_timestamped_by_the_database_read_as_utc_and_page_correctly(
    sql: SqlCrm,
) -> None:
    """A request the CRM inserts without times gets the database's UTC now (whatever the
    session's time zone), and a cursor at exactly that time pages past it."""
    world = await seed_world(SqlApp(sql))
    before = datetime.now(UTC).replace(microsecond=0)
    async with sql.engine.begin() as connection:
        if sql.engine.dialect.name == "postgresql":
            await connection.execute(text("SET LOCAL TIME ZONE 'Pacific/Auckland'"))
        await connection.execute(
            text(
                "INSERT INTO service_requests (id, company_id, user_id, service_id) "
                "VALUES ('crm-made', :company, 'a-client-1', :service)"
            ),
            {"company": A, "service": world.a_service},
        )
    after = datetime.now(UTC) + timedelta(seconds=1)
    request = await sql.get_request(company=A, request_id="crm-made")
    assert request is not None
    assert request.status == "pending"
    assert request.updated_at.tzinfo is UTC
    assert before <= request.updated_at <= after
    assert request.created_at == request.updated_at
    at_row = ChangeCursor(request.updated_at, "crm-made")
    assert await sql.changed_requests(company=A, after=at_row, limit=10) == []
    just_before = ChangeCursor(request.updated_at, "")
    assert [
        r.request_id for r in await sql.changed_requests(company=A, after=just_before, limit=10)
    ] == ["crm-made"]


async def test_the_change_feed_uses_the_company_updated_index(sql: SqlCrm) -> None:
    """The feed's query can be answered from ix_service_requests_company_updated."""
    await seed_world(SqlApp(sql))
    dialect = sql.engine.dialect
    statement = change_feed(
        company=A,
        after=ChangeCursor(T0, "a-req-1"),
        limit=10,
        byte_order=dialect.name == "postgresql",
    )
    query = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    async with sql.engine.connect() as connection:
        if dialect.name == "postgresql":
            await connection.exec_driver_sql("SET enable_seqscan = off")
            plan = (await connection.exec_driver_sql(f"EXPLAIN {query}")).scalars().all()
        else:
            plan = [
                row[-1] for row in await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}")
            ]
    assert "ix_service_requests_company_updated" in " ".join(plan)


async def test_a_plain_database_url_is_normalised_to_an_async_driver(tmp_path: Path) -> None:
    """`sqlite:///…` works as well as `sqlite+aiosqlite:///…`."""
    crm = SqlCrm(f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        async with crm_app(crm.engine) as app:
            await app.create_tables()
        await seed_world(SqlApp(crm))
        assert len(await crm.list_requests(company=A)) == 3
    finally:
        await crm.dispose()


# -- PostgreSQL with a linguistic collation ----------------------------------------------------


async def _pg_admin(statement: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(POSTGRES_URL), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(params=[d for d in DATABASES if d == "postgresql"])
def icu_pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database whose text collation is ICU en-US, not byte order."""
    url = make_url(POSTGRES_URL)
    name = f"syncd_test_icu_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(
            _pg_admin(
                f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            )
        )
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"cannot create an ICU database at {POSTGRES_URL}: {exc}", pytrace=False)
    target = url.set(drivername="postgresql+asyncpg", database=name)
    yield target.render_as_string(hide_password=False)
    drop_pg_database(target.render_as_string(hide_password=False))


async def test_change_feed_orders_ids_by_bytes_under_a_linguistic_collation(
    icu_pg_url: str,
) -> None:
    """Under en-US ordering 'r-a' < 'r-B'; the feed still pages in byte order, as Python does."""
    crm = SqlCrm(icu_pg_url)
    try:
        async with crm_app(crm.engine) as app:
            await app.create_tables()
        async with crm.engine.connect() as connection:
            linguistic = (await connection.execute(text("SELECT 'r-a' < 'r-B'"))).scalar()
        assert linguistic is True
        world = await seed_world(SqlApp(crm))
        same = T0 + timedelta(hours=1)
        for request_id in ["r-a", "r-B", "r-9", "r-10"]:
            await SqlApp(crm).add_request(
                company=A,
                client_id="a-client-1",
                service_id=world.a_service,
                now=same,
                request_id=request_id,
            )
        after = ChangeCursor(same - timedelta(seconds=1), "")
        seen = []
        while page := await crm.changed_requests(company=A, after=after, limit=1):
            seen.append(page[0].request_id)
            after = ChangeCursor(page[0].updated_at, page[0].request_id)
        assert seen == ["r-10", "r-9", "r-B", "r-a"]
        listed = [r.request_id for r in await crm.list_requests(company=A)]
        assert listed[-4:] == ["r-10", "r-9", "r-B", "r-a"]
    finally:
        await crm.dispose()
