"""What only the in-memory twin has: the logs of syncd's writes, for handler tests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncd.crm.memory import MemoryCrm, StatusWriteAttempt, WriteBack
from syncd.domain.ids import CompanyId
from tests.crm.apps import MemoryApp
from tests.crm.world import T0, A, B, seed_world


@pytest.fixture
async def memory() -> MemoryCrm:
    crm = MemoryCrm()
    await seed_world(MemoryApp(crm))
    return crm


async def test_every_status_write_is_logged_with_its_outcome(memory: MemoryCrm) -> None:
    """`writes` holds each apply_status call; `applied_writes` only those that changed a row."""
    now = T0 + timedelta(hours=1)
    await memory.apply_status(
        company=A, request_id="a-req-1", status="assigned", expected="pending", now=now
    )
    await memory.apply_status(
        company=A, request_id="a-req-1", status="completed", expected="pending", now=now
    )
    await memory.apply_status(
        company=A, request_id="b-req-1", status="assigned", expected="pending", now=now
    )
    assert memory.writes == [
        StatusWriteAttempt(
            company=A,
            request_id="a-req-1",
            status="assigned",
            expected="pending",
            at=now,
            applied=True,
        ),
        StatusWriteAttempt(
            company=A,
            request_id="a-req-1",
            status="completed",
            expected="pending",
            at=now,
            applied=False,
        ),
        StatusWriteAttempt(
            company=A,
            request_id="b-req-1",
            status="assigned",
            expected="pending",
            at=now,
            applied=False,
        ),
    ]
    assert [w.status for w in memory.applied_writes] == ["assigned"]


async def test_seeding_and_the_crm_own_changes_are_not_logged_as_syncd_writes(
    memory: MemoryCrm,
) -> None:
    """Changes made as the CRM application (set_status, assign) leave `writes` empty."""
    memory.set_status(company=A, request_id="a-req-1", status="cancelled", now=T0)
    memory.assign(company=A, request_id="a-req-2", accountant_id="a-acct-1", now=T0)
    assert memory.writes == []
    assert memory.write_backs == []


async def test_every_write_back_is_logged_with_whether_the_request_was_found(
    memory: MemoryCrm,
) -> None:
    """`write_backs` records each call, including one aimed at another company's request."""
    await memory.write_back(
        company=A, request_id="a-req-1", job_id="j1", job_number="J1", synced_at=T0, error=None
    )
    await memory.write_back(
        company=B, request_id="a-req-1", job_id="j2", job_number="J2", synced_at=T0, error=None
    )
    assert memory.write_backs == [
        WriteBack(
            company=A,
            request_id="a-req-1",
            job_id="j1",
            job_number="J1",
            synced_at=T0,
            error=None,
            found=True,
        ),
        WriteBack(
            company=B,
            request_id="a-req-1",
            job_id="j2",
            job_number="J2",
            synced_at=T0,
            error=None,
            found=False,
        ),
    ]


def test_seeding_generates_ids_when_none_are_given() -> None:
    """Companies, people and requests get fresh UUIDs; services count up from 1."""
    crm = MemoryCrm()
    company = crm.add_company(name="Harbour & Co Accountants")
    client = crm.add_person(company=company, role="client", email="a@example.com")
    first = crm.add_service(company=None, name="Individual Tax Return")
    second = crm.add_service(company=company, name="Bookkeeping")
    request = crm.add_request(company=company, client_id=client, service_id=second, now=T0)
    assert len(company) == len(client) == len(request) == 36
    assert (first, second) == (1, 2)


def test_seeding_refuses_rows_that_break_the_schema() -> None:
    """Unknown companies, clients or services and duplicate ids are refused, as the
    database's keys would refuse them."""
    crm = MemoryCrm()
    company = crm.add_company(name="Harbour", company_id="c1")
    with pytest.raises(ValueError, match="exists"):
        crm.add_company(name="Again", company_id="c1")
    with pytest.raises(ValueError, match="no company"):
        crm.add_person(company=CompanyId("nope"), role="client", email="x@example.com")
    client = crm.add_person(company=company, role="client", email="x@example.com")
    service = crm.add_service(company=None, name="Bookkeeping")
    with pytest.raises(ValueError, match="no service"):
        crm.add_request(company=company, client_id=client, service_id=99, now=T0)
    with pytest.raises(ValueError, match="no user"):
        crm.add_request(company=company, client_id="ghost", service_id=service, now=T0)
    with pytest.raises(ValueError, match="naive"):
        crm.add_request(
            company=company, client_id=client, service_id=service, now=T0.replace(tzinfo=None)
        )
