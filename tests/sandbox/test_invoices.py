"""The sandbox's Accounting invoices: raised in the world, read through the API (by id or number,
listed with filters, order and paging), behind the same gate as every other API call."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest

from syncd.sandbox.models import Contact, SandboxError, Tenant
from syncd.sandbox.state import SandboxState
from tests.fakes import ManualClock
from tests.sandbox.flow import ACCOUNTING, SCOPES, Session, connect

INVOICES = f"{ACCOUNTING}/Invoices"


@pytest.fixture
async def reader(client: httpx.AsyncClient, state: SandboxState, tenant: Tenant) -> Session:
    """A session allowed to read invoices."""
    state.consent_tenant_ids = [tenant.tenant_id]
    return await connect(client, scope=f"{SCOPES} accounting.transactions.read")


def test_invoices_are_numbered_and_due_in_30_days(
    state: SandboxState, tenant: Tenant, contact: Contact
) -> None:
    """INV-0001, INV-0002…; issued today (sandbox clock), due 30 days later, amounts in cents."""
    first = state.add_invoice(tenant.tenant_id, contact_id=contact.contact_id, total=Decimal(10))
    second = state.add_invoice(
        tenant.tenant_id, contact_id=contact.contact_id, total=Decimal("12.5"), reference="R-2"
    )
    assert (first.invoice_number, second.invoice_number) == ("INV-0001", "INV-0002")
    assert (first.issued_on, first.due_on) == (date(2026, 3, 2), date(2026, 4, 1))
    assert second.total == Decimal("12.50")
    assert (first.status, first.currency) == ("AUTHORISED", "AUD")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"total": Decimal(-1)}, "must not be negative"),
        ({"total": 1.5}, "must be a Decimal"),
        ({"status": "OPEN"}, "invoice status must be one of"),
        ({"invoice_number": "INV-0001"}, "already used"),
        ({"due_on": date(2020, 1, 1)}, "due before"),
        ({"contact_id": "nope"}, "unknown contact"),
    ],
)
def test_bad_invoices_are_refused(
    state: SandboxState,
    tenant: Tenant,
    contact: Contact,
    changes: dict[str, object],
    message: str,
) -> None:
    """Negative or non-Decimal totals, unknown statuses, reused numbers, bad dates are refused."""
    state.add_invoice(tenant.tenant_id, contact_id=contact.contact_id, total=Decimal(1))
    arguments: dict[str, object] = {"contact_id": contact.contact_id, "total": Decimal(5)}
    arguments.update(changes)
    with pytest.raises(SandboxError, match=message):
        state.add_invoice(tenant.tenant_id, **arguments)  # type: ignore[arg-type]
    with pytest.raises(SandboxError, match="invoice status"):
        state.update_invoice_status(tenant.tenant_id, next(iter(tenant.invoices)), "LOST")


async def test_get_by_id_and_by_number(
    client: httpx.AsyncClient,
    reader: Session,
    state: SandboxState,
    contact: Contact,
    clock: ManualClock,
) -> None:
    """GET /Invoices/{id} answers Xero's envelope with the invoice; its number works too."""
    invoice = state.add_invoice(
        reader.tenant_id, contact_id=contact.contact_id, total=Decimal("450.00"), reference="J-1"
    )
    answer = await client.get(f"{INVOICES}/{invoice.invoice_id}", headers=reader.headers())
    assert answer.status_code == 200
    body = answer.json()
    assert body["Status"] == "OK"
    [found] = body["Invoices"]
    assert {key: found[key] for key in ("InvoiceID", "InvoiceNumber", "Type", "Reference")} == {
        "InvoiceID": invoice.invoice_id,
        "InvoiceNumber": "INV-0001",
        "Type": "ACCREC",
        "Reference": "J-1",
    }
    assert found["Contact"] == {"ContactID": contact.contact_id, "Name": "Acme Ltd"}
    assert (found["Status"], found["Total"], found["AmountDue"], found["AmountPaid"]) == (
        "AUTHORISED",
        450.0,
        450.0,
        0.0,
    )
    assert found["CurrencyCode"] == "AUD"
    assert found["Date"] == "/Date(1772409600000+0000)/"
    assert found["DueDate"] == "/Date(1775001600000+0000)/"
    assert found["UpdatedDateUTC"] == "/Date(1772442000000+0000)/"
    by_number = await client.get(f"{INVOICES}/INV-0001", headers=reader.headers())
    assert by_number.json()["Invoices"] == [found]
    clock.advance(60)
    state.update_invoice_status(reader.tenant_id, invoice.invoice_id, "PAID")
    paid = (await client.get(f"{INVOICES}/INV-0001", headers=reader.headers())).json()
    assert (paid["Invoices"][0]["AmountDue"], paid["Invoices"][0]["AmountPaid"]) == (0.0, 450.0)
    assert paid["Invoices"][0]["FullyPaidOnDate"] == "/Date(1772442060000+0000)/"


async def test_list_filters_order_and_paging(
    client: httpx.AsyncClient,
    reader: Session,
    state: SandboxState,
    contact: Contact,
    clock: ManualClock,
) -> None:
    """where, IDs, InvoiceNumbers, ContactIDs, Statuses, order, If-Modified-Since and paging."""
    tenant_id = reader.tenant_id
    other = state.add_contact(tenant_id, "Bolt & Co")
    made = []
    for number in range(5):
        clock.advance(10)
        made.append(
            state.add_invoice(
                tenant_id,
                contact_id=(contact if number % 2 == 0 else other).contact_id,
                total=Decimal(100 + number),
                reference=f"job-{number}",
                status="DRAFT" if number == 4 else "AUTHORISED",
            )
        )

    async def numbers(**params: str) -> list[str]:
        headers = reader.headers()
        since = params.pop("since", None)
        if since:
            headers["If-Modified-Since"] = since
        answer = await client.get(INVOICES, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return [i["InvoiceNumber"] for i in answer.json()["Invoices"]]

    assert await numbers() == ["INV-0001", "INV-0002", "INV-0003", "INV-0004", "INV-0005"]
    assert await numbers(where='Reference=="job-3"') == ["INV-0004"]
    assert await numbers(where='Status=="DRAFT" OR Reference=="JOB-0"') == ["INV-0001", "INV-0005"]
    assert await numbers(where=f'Contact.ContactID==Guid("{other.contact_id}")') == [
        "INV-0002",
        "INV-0004",
    ]
    assert await numbers(where='Contact.Name=="bolt & co" AND Type=="ACCREC"') == [
        "INV-0002",
        "INV-0004",
    ]
    assert await numbers(IDs=f"{made[0].invoice_id},{made[2].invoice_id}") == [
        "INV-0001",
        "INV-0003",
    ]
    assert await numbers(InvoiceNumbers="INV-0005,INV-0002") == ["INV-0002", "INV-0005"]
    assert await numbers(ContactIDs=contact.contact_id, Statuses="AUTHORISED") == [
        "INV-0001",
        "INV-0003",
    ]
    assert (await numbers(order="Total DESC"))[:2] == ["INV-0005", "INV-0004"]
    assert await numbers(since="2026-03-02T09:00:35") == ["INV-0004", "INV-0005"]
    paged = await client.get(
        INVOICES, params={"page": "2", "pageSize": "2"}, headers=reader.headers()
    )
    assert paged.json()["pagination"] == {"page": 2, "pageSize": 2, "pageCount": 3, "itemCount": 5}
    assert [i["InvoiceNumber"] for i in paged.json()["Invoices"]] == ["INV-0003", "INV-0004"]


@pytest.mark.parametrize(
    "params",
    [
        {"where": 'Colour=="red"'},
        {"where": "Status=="},
        {"Statuses": "OPEN"},
        {"order": "Colour ASC"},
        {"order": "Total SIDEWAYS"},
        {"page": "x"},
    ],
)
async def test_bad_queries_are_400(
    client: httpx.AsyncClient, reader: Session, params: dict[str, str]
) -> None:
    """Queries the sandbox cannot evaluate answer 400 QueryParseException."""
    answer = await client.get(INVOICES, params=params, headers=reader.headers())
    assert answer.status_code == 400
    assert answer.json()["Type"] == "QueryParseException"


async def test_invoices_sit_behind_the_gate(
    client: httpx.AsyncClient,
    session: Session,
    state: SandboxState,
    contact: Contact,
) -> None:
    """Without an invoice scope: 401; without Accept JSON: 406; unknown: 404; ledger counts."""
    invoice = state.add_invoice(session.tenant_id, contact_id=contact.contact_id, total=Decimal(1))
    url = f"{INVOICES}/{invoice.invoice_id}"
    refused = await client.get(url, headers=session.headers())
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'
    reader = await connect(client, scope=f"{SCOPES} accounting.invoices.read")
    assert (await client.get(url, headers=reader.headers())).status_code == 200
    xml = await client.get(url, headers=reader.headers(Accept="application/xml"))
    assert xml.status_code == 406
    missing = await client.get(f"{INVOICES}/{state.new_id()}", headers=reader.headers())
    assert (missing.status_code, missing.json()["Type"]) == (404, "NotFoundException")
    assert (await client.get(f"{INVOICES}/INV-9999", headers=reader.headers())).status_code == 404
    entry = state.ledger[-1]
    assert (entry.path, entry.tenant_id, entry.status, entry.counted) == (
        f"{INVOICES}/INV-9999",
        session.tenant_id,
        404,
        True,
    )
    assert "X-MinLimit-Remaining" in missing.headers


async def test_invoices_of_another_tenant_are_invisible(
    client: httpx.AsyncClient, reader: Session, state: SandboxState
) -> None:
    """An invoice in another organisation is 404 here and absent from the list."""
    other = next(t for t in state.tenants.values() if t.tenant_id != reader.tenant_id)
    stranger = state.add_contact(other.tenant_id, "Stranger")
    invoice = state.add_invoice(other.tenant_id, contact_id=stranger.contact_id, total=Decimal(1))
    answer = await client.get(f"{INVOICES}/{invoice.invoice_id}", headers=reader.headers())
    assert answer.status_code == 404
    listed = await client.get(INVOICES, headers=reader.headers())
    assert listed.json()["Invoices"] == []
