"""The sample CRM: what it creates, that a rerun is harmless, and the demo's CRM actions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from syncd.crm.memory import MemoryCrm
from syncd.crm.port import ChangeCursor
from syncd.crm.schema import metadata
from syncd.crm.sql import SqlCrm
from syncd.sandbox.crm import (
    SampleCrm,
    assign_request,
    create_sample_crm,
    practice_name,
    set_request_status,
)

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
async def sample(crm_url: str) -> SampleCrm:
    return await create_sample_crm(crm_url, now=NOW)


@pytest.fixture
async def sql(crm_url: str, sample: SampleCrm) -> AsyncIterator[SqlCrm]:
    crm = SqlCrm(crm_url)
    yield crm
    await crm.dispose()


async def row_counts(crm: SqlCrm) -> dict[str, int]:
    async with crm.engine.connect() as connection:
        return {
            table.name: (
                await connection.execute(select(func.count()).select_from(table))
            ).scalar_one()
            for table in metadata.sorted_tables
        }


async def test_the_sample_has_practices_people_services_and_requests(
    sample: SampleCrm, sql: SqlCrm
) -> None:
    """Two named practices, each with an admin, 2 accountants, 4 clients, its own and the
    global services, and 6 requests, mostly pending and unassigned."""
    assert [p.name for p in sample.practices] == ["Harbour & Co Accountants", "Summit Tax Partners"]
    assert await row_counts(sql) == {
        "companies": 2,
        "roles": 4,
        "users": 2 * (1 + 2 + 4),
        "services": 2 + 2 * 2,
        "service_requests": 2 * 6,
    }
    for practice in sample.practices:
        clients = await sql.list_clients(company=practice.company_id)
        assert tuple(sorted(practice.client_ids)) == tuple(c.user_id for c in clients)
        assert all(re.fullmatch(r"[a-z]+\.[a-z]+@example\.com", c.email) for c in clients)
        assert all(c.first_name and c.last_name and c.phone for c in clients)
        accountants = await sql.list_accountants(company=practice.company_id)
        assert sorted(practice.accountant_ids) == [a.user_id for a in accountants]
        assert practice.admin_id not in practice.client_ids + practice.accountant_ids
        services = await sql.list_services(company=practice.company_id)
        assert practice.service_ids == tuple(s.service_id for s in services)
        prices = {s.name: s.base_price for s in services}
        assert prices["Individual Tax Return"] == Decimal("350.00")
        assert prices["BAS Preparation"] == Decimal("220.00")
        assert {"Company Tax Return", "Bookkeeping"} <= set(prices)
        requests = await sql.list_requests(company=practice.company_id)
        assert {r.request_id for r in requests} == set(practice.request_ids)
        pending = [r for r in requests if r.status == "pending"]
        assert len(pending) > len(requests) / 2
        assert all(r.accountant_id is None for r in pending)
        assert all(r.client_id in practice.client_ids for r in requests)
        assert all(r.service_id in practice.service_ids for r in requests)
        assert all(r.description and r.due_date for r in requests)
        assert all(r.updated_at < NOW for r in requests)
    emails = [
        c.email for p in sample.practices for c in await sql.list_clients(company=p.company_id)
    ]
    assert len(set(emails)) == len(emails)


async def test_a_second_run_inserts_nothing_and_returns_the_same_sample(
    crm_url: str, sample: SampleCrm, sql: SqlCrm
) -> None:
    """Rerunning (even later, after the demo assigned a request) adds no row, changes none
    and returns an equal `SampleCrm`."""
    practice = sample.practices[0]
    request_id = practice.request_ids[0]
    await assign_request(
        sql,
        company=practice.company_id,
        request_id=request_id,
        accountant_id=practice.accountant_ids[0],
        now=NOW,
    )
    before = await row_counts(sql)
    again = await create_sample_crm(crm_url, now=NOW + timedelta(days=3))
    assert again == sample
    assert await row_counts(sql) == before
    request = await sql.get_request(company=practice.company_id, request_id=request_id)
    assert request is not None
    assert (request.status, request.updated_at) == ("assigned", NOW)


async def test_ids_follow_the_seed(crm_url: str, sample: SampleCrm) -> None:
    """Another seed gives other practices in the same database; the services are shared."""
    other = await create_sample_crm(crm_url, seed=1, practices=1, now=NOW)
    assert other.practices[0].company_id not in sample.company_ids
    assert other.practices[0].name == practice_name(0)
    assert set(other.practices[0].request_ids).isdisjoint(sample.practices[0].request_ids)


async def test_sizes_are_parameters(crm_url: str) -> None:
    """Practices, clients, accountants and requests per practice follow the arguments."""
    sample = await create_sample_crm(
        crm_url,
        practices=7,
        clients_per_practice=1,
        accountants_per_practice=1,
        requests_per_practice=2,
        now=NOW,
    )
    assert len(sample.practices) == 7
    assert sample.practices[6].name == "Harbour & Co Accountants 2"
    assert all(len(p.client_ids) == 1 and len(p.request_ids) == 2 for p in sample.practices)


async def test_assign_request_moves_a_request_into_the_change_feed(
    crm_url: str, sample: SampleCrm, sql: SqlCrm
) -> None:
    """After the admin assigns, the request is the one change past the feed's end, with the
    accountant and times set; by URL or through a SqlCrm alike."""
    practice = sample.practices[1]
    company = practice.company_id
    feed = await sql.changed_requests(company=company, after=None, limit=100)
    end = ChangeCursor(feed[-1].updated_at, feed[-1].request_id)
    pending = [r.request_id for r in feed if r.status == "pending"]
    await assign_request(
        crm_url,
        company=company,
        request_id=pending[0],
        accountant_id=practice.accountant_ids[1],
        now=NOW,
    )
    (changed,) = await sql.changed_requests(company=company, after=end, limit=100)
    assert changed.request_id == pending[0]
    assert (changed.status, changed.accountant_id) == ("assigned", practice.accountant_ids[1])
    assert changed.assigned_at == changed.updated_at == NOW
    later = NOW + timedelta(minutes=5)
    await set_request_status(
        sql, company=company, request_id=pending[0], status="processing", now=later
    )
    moved = await sql.changed_requests(
        company=company, after=ChangeCursor(NOW, pending[0]), limit=100
    )
    assert [(r.request_id, r.status, r.updated_at) for r in moved] == [
        (pending[0], "processing", later)
    ]


async def test_the_demo_actions_refuse_another_company_request(
    sample: SampleCrm, sql: SqlCrm
) -> None:
    """A practice cannot assign or change another practice's request."""
    first, second = sample.practices
    with pytest.raises(LookupError):
        await set_request_status(
            sql,
            company=first.company_id,
            request_id=second.request_ids[0],
            status="cancelled",
            now=NOW,
        )
    with pytest.raises(ValueError, match="no accountant"):
        await assign_request(
            sql,
            company=first.company_id,
            request_id=first.request_ids[0],
            accountant_id=second.accountant_ids[0],
            now=NOW,
        )


async def test_the_demo_actions_work_on_the_in_memory_twin() -> None:
    """assign_request and set_request_status drive a MemoryCrm as well."""
    crm = MemoryCrm()
    company = crm.add_company(name="Harbour & Co Accountants")
    client = crm.add_person(company=company, role="client", email="olivia.chen@example.com")
    accountant = crm.add_person(company=company, role="accountant", email="grace@example.com")
    service = crm.add_service(company=None, name="BAS Preparation", base_price=Decimal(220))
    request = crm.add_request(company=company, client_id=client, service_id=service, now=NOW)
    later = NOW + timedelta(hours=1)
    await assign_request(
        crm, company=company, request_id=request, accountant_id=accountant, now=later
    )
    await set_request_status(
        crm, company=company, request_id=request, status="completed", now=later
    )
    found = await crm.get_request(company=company, request_id=request)
    assert found is not None
    assert (found.status, found.accountant_id, found.updated_at) == ("completed", accountant, later)
    assert crm.writes == []
