"""A small two-practice CRM the shared suite seeds through the CRM application's hands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from syncd.domain.ids import CompanyId
from tests.crm.apps import App

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
A = CompanyId("company-a")
B = CompanyId("company-b")


@dataclass(frozen=True, slots=True)
class World:
    global_service: int
    a_service: int
    b_service: int


async def seed_world(app: App) -> World:
    """Practice A: two clients (one inactive), an accountant, an admin, three requests a minute
    apart. Practice B: a client, an accountant, one request. One global service each side."""
    await app.add_company(name="Harbour & Co Accountants", company_id=A)
    await app.add_company(name="Summit Tax Partners", company_id=B)
    await app.add_person(
        company=A,
        role="client",
        email="olivia.chen@example.com",
        first_name="Olivia",
        last_name="Chen",
        phone="+61 400 000 001",
        user_id="a-client-1",
    )
    await app.add_person(
        company=A,
        role="client",
        email="liam.smith@example.com",
        first_name="Liam",
        last_name="Smith",
        is_active=False,
        user_id="a-client-2",
    )
    await app.add_person(
        company=A,
        role="accountant",
        email="grace.wong@harbour.example.com",
        first_name="Grace",
        last_name="Wong",
        user_id="a-acct-1",
    )
    await app.add_person(
        company=A, role="practice_admin", email="admin@harbour.example.com", user_id="a-admin"
    )
    await app.add_person(company=None, role="super_admin", email="root@crm.example.com")
    await app.add_person(
        company=B,
        role="client",
        email="noah.patel@example.com",
        first_name="Noah",
        last_name="Patel",
        user_id="b-client-1",
    )
    await app.add_person(
        company=B, role="accountant", email="mia.lee@summit.example.com", user_id="b-acct-1"
    )
    global_service = await app.add_service(
        company=None, name="Individual Tax Return", base_price=Decimal("350.00")
    )
    a_service = await app.add_service(company=A, name="Bookkeeping", base_price=Decimal("180"))
    b_service = await app.add_service(company=B, name="Company Tax Return", base_price=None)
    for i in range(3):
        await app.add_request(
            company=A,
            client_id="a-client-1",
            service_id=global_service if i % 2 == 0 else a_service,
            now=T0 + timedelta(minutes=i),
            description=f"request {i + 1}",
            due_date=date(2026, 12, 15 + i),
            request_id=f"a-req-{i + 1}",
        )
    await app.add_request(
        company=B,
        client_id="b-client-1",
        service_id=b_service,
        now=T0 + timedelta(seconds=30),
        request_id="b-req-1",
    )
    return World(global_service=global_service, a_service=a_service, b_service=b_service)
