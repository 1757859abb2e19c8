"""The CRM port's behaviour, one suite for `SqlCrm` (SQLite, PostgreSQL) and `MemoryCrm`."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from syncd.crm.port import ChangeCursor, CrmPerson, CrmRequest
from syncd.domain.ids import CompanyId
from tests.crm.apps import Crm
from tests.crm.world import T0, A, B, seed_world


def cursor_of(request: CrmRequest) -> ChangeCursor:
    return ChangeCursor(request.updated_at, request.request_id)


def ids(requests: list[CrmRequest]) -> list[str]:
    return [r.request_id for r in requests]


# -- change feed ---------------------------------------------------------------------------------


async def test_change_feed_lists_the_company_requests_oldest_first(crm: Crm) -> None:
    """From the start, the feed is the company's requests in (updated_at, id) order."""
    await seed_world(crm.app)
    feed = await crm.port.changed_requests(company=A, after=None, limit=100)
    assert ids(feed) == ["a-req-1", "a-req-2", "a-req-3"]
    assert [r.updated_at for r in feed] == [
        T0,
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=2),
    ]


async def test_change_feed_pages_by_keyset_strictly_after_the_cursor(crm: Crm) -> None:
    """Pages of `limit` rows, each strictly after the last row of the previous page."""
    await seed_world(crm.app)
    first = await crm.port.changed_requests(company=A, after=None, limit=2)
    assert ids(first) == ["a-req-1", "a-req-2"]
    second = await crm.port.changed_requests(company=A, after=cursor_of(first[-1]), limit=2)
    assert ids(second) == ["a-req-3"]
    assert await crm.port.changed_requests(company=A, after=cursor_of(second[-1]), limit=2) == []


async def test_change_feed_breaks_ties_by_request_id_in_byte_order(crm: Crm) -> None:
    """Rows changed at the same instant come in request-id byte order, one page at a time."""
    world = await seed_world(crm.app)
    same = T0 + timedelta(hours=1)
    for request_id in ["r-a", "r-B", "r-9", "r-10"]:
        await crm.app.add_request(
            company=A,
            client_id="a-client-1",
            service_id=world.a_service,
            now=same,
            request_id=request_id,
        )
    after = ChangeCursor(T0 + timedelta(minutes=2), "a-req-3")
    seen = []
    while page := await crm.port.changed_requests(company=A, after=after, limit=1):
        seen.extend(ids(page))
        after = cursor_of(page[-1])
    assert seen == ["r-10", "r-9", "r-B", "r-a"]  # Python's order: digits < upper < lower


async def test_change_feed_cursor_inside_a_tie_resumes_after_that_id(crm: Crm) -> None:
    """A cursor at one of several rows with the same time skips only the rows up to it."""
    world = await seed_world(crm.app)
    same = T0 + timedelta(hours=1)
    for request_id in ["t-1", "t-2", "t-3"]:
        await crm.app.add_request(
            company=A, client_id="a-client-1", service_id=world.a_service, now=same,
            request_id=request_id,
        )  # fmt: skip
    page = await crm.port.changed_requests(company=A, after=ChangeCursor(same, "t-2"), limit=10)
    assert ids(page) == ["t-3"]


async def test_a_status_change_moves_the_request_to_the_end_of_the_feed(crm: Crm) -> None:
    """A request changed by the CRM reappears after a cursor that had passed it."""
    await seed_world(crm.app)
    feed = await crm.port.changed_requests(company=A, after=None, limit=100)
    later = T0 + timedelta(hours=2)
    await crm.app.assign(company=A, request_id="a-req-1", accountant_id="a-acct-1", now=later)
    changed = await crm.port.changed_requests(company=A, after=cursor_of(feed[-1]), limit=100)
    assert ids(changed) == ["a-req-1"]
    assert changed[0].status == "assigned"
    assert changed[0].accountant_id == "a-acct-1"
    assert changed[0].assigned_at == later
    assert changed[0].updated_at == later
    assert changed[0].created_at == T0


async def test_change_feed_refuses_a_non_positive_limit(crm: Crm) -> None:
    """`limit` must be at least 1."""
    with pytest.raises(ValueError, match="limit"):
        await crm.port.changed_requests(company=A, after=None, limit=0)


async def test_change_feed_refuses_a_naive_cursor(crm: Crm) -> None:
    """A cursor without a time zone is refused rather than guessed."""
    await seed_world(crm.app)
    with pytest.raises(ValueError, match="naive"):
        await crm.port.changed_requests(
            company=A, after=ChangeCursor(datetime(2026, 11, 25, 9), "a-req-1"), limit=10
        )


async def test_change_feed_cursor_in_another_time_zone_means_the_same_instant(crm: Crm) -> None:
    """A cursor in +10:00 is compared as the UTC instant it denotes."""
    await seed_world(crm.app)
    sydney = timezone(timedelta(hours=10))
    after = ChangeCursor((T0 + timedelta(minutes=1)).astimezone(sydney), "a-req-2")
    assert ids(await crm.port.changed_requests(company=A, after=after, limit=10)) == ["a-req-3"]


async def test_a_decoded_cursor_resumes_the_feed(crm: Crm) -> None:
    """A cursor stored as text (encode/decode) resumes exactly where it left off."""
    await seed_world(crm.app)
    first = await crm.port.changed_requests(company=A, after=None, limit=1)
    resumed = ChangeCursor.decode(cursor_of(first[0]).encode())
    assert ids(await crm.port.changed_requests(company=A, after=resumed, limit=10)) == [
        "a-req-2",
        "a-req-3",
    ]


# -- requests ----------------------------------------------------------------------------------


async def test_get_request_returns_every_field(crm: Crm) -> None:
    """A request reads back with its client, service, status, dates and empty Xero columns."""
    world = await seed_world(crm.app)
    request = await crm.port.get_request(company=A, request_id="a-req-2")
    assert request == CrmRequest(
        request_id="a-req-2",
        company_id=A,
        client_id="a-client-1",
        service_id=world.a_service,
        accountant_id=None,
        status="pending",
        description="request 2",
        due_date=date(2026, 12, 16),
        assigned_at=None,
        created_at=T0 + timedelta(minutes=1),
        updated_at=T0 + timedelta(minutes=1),
        xero_job_id=None,
        xero_job_number=None,
        xero_synced_at=None,
        xero_sync_error=None,
    )
    assert request.updated_at.tzinfo is UTC


async def test_list_requests_filters_by_status(crm: Crm) -> None:
    """All requests oldest first; `statuses` narrows them; an empty filter matches nothing."""
    await seed_world(crm.app)
    await crm.app.set_status(
        company=A, request_id="a-req-2", status="cancelled", now=T0 + timedelta(hours=1)
    )
    assert ids(await crm.port.list_requests(company=A)) == ["a-req-1", "a-req-2", "a-req-3"]
    pending = await crm.port.list_requests(company=A, statuses=["pending"])
    assert ids(pending) == ["a-req-1", "a-req-3"]
    both = await crm.port.list_requests(company=A, statuses=["pending", "cancelled"])
    assert ids(both) == ["a-req-1", "a-req-2", "a-req-3"]
    assert await crm.port.list_requests(company=A, statuses=[]) == []


# -- tenant scoping ----------------------------------------------------------------------------


async def test_requests_of_another_company_are_invisible(crm: Crm) -> None:
    """Company A never sees B's request: not in the feed, not by id, not in a list."""
    await seed_world(crm.app)
    assert ids(await crm.port.changed_requests(company=B, after=None, limit=100)) == ["b-req-1"]
    assert "b-req-1" not in ids(await crm.port.changed_requests(company=A, after=None, limit=100))
    assert await crm.port.get_request(company=A, request_id="b-req-1") is None
    assert "b-req-1" not in ids(await crm.port.list_requests(company=A))
    assert await crm.port.changed_requests(company=CompanyId("nobody"), after=None, limit=9) == []


async def test_people_of_another_company_are_invisible(crm: Crm) -> None:
    """Company A's clients and accountants are its own; B's client is not A's client."""
    await seed_world(crm.app)
    assert [p.user_id for p in await crm.port.list_clients(company=A)] == [
        "a-client-1",
        "a-client-2",
    ]
    assert [p.user_id for p in await crm.port.list_accountants(company=A)] == ["a-acct-1"]
    assert [p.user_id for p in await crm.port.list_clients(company=B)] == ["b-client-1"]
    assert [p.user_id for p in await crm.port.list_accountants(company=B)] == ["b-acct-1"]
    assert await crm.port.get_client(company=A, client_id="b-client-1") is None
    assert await crm.port.get_client(company=B, client_id="b-client-1") is not None


async def test_services_of_another_company_are_invisible(crm: Crm) -> None:
    """A practice sees its own services and the global ones, never another practice's."""
    world = await seed_world(crm.app)
    a_services = await crm.port.list_services(company=A)
    assert [s.service_id for s in a_services] == [world.global_service, world.a_service]
    b_services = await crm.port.list_services(company=B)
    assert [s.service_id for s in b_services] == [world.global_service, world.b_service]
    assert await crm.port.get_service(company=A, service_id=world.b_service) is None
    assert await crm.port.get_service(company=A, service_id=world.global_service) is not None
    assert await crm.port.get_service(company=A, service_id=9999) is None


async def test_every_call_needs_a_company(crm: Crm) -> None:
    """An empty company is refused rather than read as 'all companies'."""
    await seed_world(crm.app)
    nobody = CompanyId("")
    with pytest.raises(ValueError, match="company"):
        await crm.port.changed_requests(company=nobody, after=None, limit=10)
    with pytest.raises(ValueError, match="company"):
        await crm.port.list_clients(company=nobody)
    with pytest.raises(ValueError, match="company"):
        await crm.port.list_services(company=nobody)


# -- people and services -----------------------------------------------------------------------


async def test_people_are_found_by_role(crm: Crm) -> None:
    """Clients have the client role; an accountant or admin is not returned as a client."""
    await seed_world(crm.app)
    assert await crm.port.get_client(company=A, client_id="a-acct-1") is None
    assert await crm.port.get_client(company=A, client_id="a-admin") is None
    everyone = await crm.port.list_clients(company=A) + await crm.port.list_accountants(company=A)
    assert "a-admin" not in [p.user_id for p in everyone]


async def test_a_person_reads_back_whole_and_inactive_people_are_flagged(crm: Crm) -> None:
    """Clients come back with every field; inactive ones are listed with is_active False."""
    await seed_world(crm.app)
    olivia, liam = await crm.port.list_clients(company=A)
    assert olivia == CrmPerson(
        user_id="a-client-1",
        company_id=A,
        email="olivia.chen@example.com",
        first_name="Olivia",
        last_name="Chen",
        phone="+61 400 000 001",
        is_active=True,
    )
    assert liam.is_active is False
    assert await crm.port.get_client(company=A, client_id="a-client-2") == liam


async def test_full_name_joins_first_and_last_or_falls_back_to_email(crm: Crm) -> None:
    """`full_name` is 'First Last', or the one name given, or the email when neither is."""
    await seed_world(crm.app)
    await crm.app.add_person(company=A, role="client", email="x@example.com", first_name="Ava")
    await crm.app.add_person(company=A, role="client", email="y@example.com", last_name="Lee")
    names = {p.email: p.full_name for p in await crm.port.list_clients(company=A)}
    assert names["olivia.chen@example.com"] == "Olivia Chen"
    assert names["x@example.com"] == "Ava"
    assert names["y@example.com"] == "Lee"
    (accountant,) = await crm.port.list_accountants(company=B)
    assert accountant.full_name == "mia.lee@summit.example.com"


async def test_services_carry_their_price_as_decimal_cents(crm: Crm) -> None:
    """Prices are Decimals with two places; a service without a price has None."""
    world = await seed_world(crm.app)
    individual = await crm.port.get_service(company=A, service_id=world.global_service)
    assert individual is not None
    assert individual.company_id is None
    assert individual.name == "Individual Tax Return"
    assert individual.base_price == Decimal("350.00")
    bookkeeping = await crm.port.get_service(company=A, service_id=world.a_service)
    assert bookkeeping is not None
    assert str(bookkeeping.base_price) == "180.00"
    assert bookkeeping.company_id == A
    company_tax = await crm.port.get_service(company=B, service_id=world.b_service)
    assert company_tax is not None
    assert company_tax.base_price is None


# -- compare-and-set status writes -------------------------------------------------------------


async def test_apply_status_sets_the_status_when_it_is_still_expected(crm: Crm) -> None:
    """The write applies, bumps updated_at to `now` and shows up in the change feed."""
    await seed_world(crm.app)
    feed = await crm.port.changed_requests(company=A, after=None, limit=100)
    now = T0 + timedelta(hours=3)
    write = await crm.port.apply_status(
        company=A, request_id="a-req-1", status="processing", expected="pending", now=now
    )
    assert (write.applied, write.current, write.updated_at) == (True, "processing", now)
    request = await crm.port.get_request(company=A, request_id="a-req-1")
    assert request is not None
    assert (request.status, request.updated_at) == ("processing", now)
    changed = await crm.port.changed_requests(company=A, after=cursor_of(feed[-1]), limit=10)
    assert ids(changed) == ["a-req-1"]


async def test_apply_status_writes_nothing_when_the_status_moved_on(crm: Crm) -> None:
    """A stale `expected` changes nothing and reports the request's current status."""
    await seed_world(crm.app)
    moved = T0 + timedelta(hours=1)
    await crm.app.set_status(company=A, request_id="a-req-1", status="cancelled", now=moved)
    write = await crm.port.apply_status(
        company=A,
        request_id="a-req-1",
        status="completed",
        expected="processing",
        now=T0 + timedelta(hours=2),
    )
    assert (write.applied, write.current, write.updated_at) == (False, "cancelled", moved)
    request = await crm.port.get_request(company=A, request_id="a-req-1")
    assert request is not None
    assert (request.status, request.updated_at) == ("cancelled", moved)


async def test_apply_status_on_an_unknown_or_foreign_request_finds_nothing(crm: Crm) -> None:
    """An unknown id, or another company's request, is not applied and has no current status."""
    await seed_world(crm.app)
    now = T0 + timedelta(hours=1)
    for request_id in ["no-such-request", "b-req-1"]:
        write = await crm.port.apply_status(
            company=A, request_id=request_id, status="assigned", expected="pending", now=now
        )
        assert (write.applied, write.current, write.updated_at) == (False, None, None)
    untouched = await crm.port.get_request(company=B, request_id="b-req-1")
    assert untouched is not None
    assert (untouched.status, untouched.updated_at) == ("pending", T0 + timedelta(seconds=30))


async def test_concurrent_writes_from_the_same_status_apply_once(crm: Crm) -> None:
    """Two writers expecting the same status race: exactly one applies."""
    await seed_world(crm.app)
    now = T0 + timedelta(hours=1)
    writes = await asyncio.gather(
        *(
            crm.port.apply_status(
                company=A, request_id="a-req-1", status=status, expected="pending", now=now
            )
            for status in ["assigned", "cancelled"]
        )
    )
    assert sorted(w.applied for w in writes) == [False, True]
    winner = next(w for w in writes if w.applied)
    loser = next(w for w in writes if not w.applied)
    assert loser.current == winner.current


async def test_apply_status_refuses_naive_times_and_unknown_statuses(crm: Crm) -> None:
    """A naive `now` or a status the CRM does not have is refused, and nothing is written."""
    await seed_world(crm.app)
    with pytest.raises(ValueError, match="naive"):
        await crm.port.apply_status(
            company=A,
            request_id="a-req-1",
            status="assigned",
            expected="pending",
            now=datetime(2026, 11, 25, 12),
        )
    with pytest.raises(ValueError, match="done"):
        await crm.port.apply_status(
            company=A, request_id="a-req-1", status="done", expected="pending", now=T0
        )
    request = await crm.port.get_request(company=A, request_id="a-req-1")
    assert request is not None
    assert (request.status, request.updated_at) == ("pending", T0)


async def test_apply_status_stores_an_aware_time_as_its_utc_instant(crm: Crm) -> None:
    """`now` in another time zone is stored and returned as the same instant in UTC."""
    await seed_world(crm.app)
    sydney = timezone(timedelta(hours=11))
    now = datetime(2026, 11, 26, 8, 30, tzinfo=sydney)
    await crm.port.apply_status(
        company=A, request_id="a-req-1", status="assigned", expected="pending", now=now
    )
    request = await crm.port.get_request(company=A, request_id="a-req-1")
    assert request is not None
    assert request.updated_at == datetime(2026, 11, 25, 21, 30, tzinfo=UTC)
    assert request.updated_at.tzinfo is UTC


# -- write-back --------------------------------------------------------------------------------


async def test_write_back_sets_the_xero_columns_and_leaves_updated_at_alone(crm: Crm) -> None:
    """The job id, number, sync time and error are stored; status and updated_at are not
    touched, so the write does not show up in the change feed."""
    await seed_world(crm.app)
    feed = await crm.port.changed_requests(company=A, after=None, limit=100)
    synced = datetime(2026, 11, 25, 23, 0, tzinfo=timezone(timedelta(hours=10)))
    await crm.port.write_back(
        company=A,
        request_id="a-req-1",
        job_id="job-123",
        job_number="J000123",
        synced_at=synced,
        error=None,
    )
    request = await crm.port.get_request(company=A, request_id="a-req-1")
    assert request is not None
    assert (request.xero_job_id, request.xero_job_number) == ("job-123", "J000123")
    assert request.xero_synced_at == datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    assert request.xero_synced_at.tzinfo is UTC
    assert request.xero_sync_error is None
    assert (request.status, request.updated_at) == ("pending", T0)
    assert await crm.port.changed_requests(company=A, after=cursor_of(feed[-1]), limit=10) == []


async def test_write_back_records_and_clears_an_error(crm: Crm) -> None:
    """An error is stored with no job; a later successful write-back clears it."""
    await seed_world(crm.app)
    await crm.port.write_back(
        company=A,
        request_id="a-req-2",
        job_id=None,
        job_number=None,
        synced_at=None,
        error="Xero said 400",
    )
    failed = await crm.port.get_request(company=A, request_id="a-req-2")
    assert failed is not None
    assert (failed.xero_job_id, failed.xero_sync_error) == (None, "Xero said 400")
    await crm.port.write_back(
        company=A, request_id="a-req-2", job_id="j", job_number="1", synced_at=T0, error=None
    )
    healed = await crm.port.get_request(company=A, request_id="a-req-2")
    assert healed is not None
    assert (healed.xero_job_id, healed.xero_sync_error, healed.xero_synced_at) == ("j", None, T0)


async def test_write_back_to_another_company_request_changes_nothing(crm: Crm) -> None:
    """Company A cannot write Xero columns onto B's request."""
    await seed_world(crm.app)
    await crm.port.write_back(
        company=A, request_id="b-req-1", job_id="x", job_number="1", synced_at=T0, error=None
    )
    request = await crm.port.get_request(company=B, request_id="b-req-1")
    assert request is not None
    assert (request.xero_job_id, request.xero_synced_at) == (None, None)


async def test_write_back_refuses_a_naive_sync_time(crm: Crm) -> None:
    """A naive `synced_at` is refused."""
    await seed_world(crm.app)
    with pytest.raises(ValueError, match="naive"):
        await crm.port.write_back(
            company=A,
            request_id="a-req-1",
            job_id="j",
            job_number="1",
            synced_at=datetime(2026, 11, 25, 12),
            error=None,
        )
