"""Xero Accounting API invoices (`/api.xro/2.0/Invoices`), read-only: get by id (or number) and
list with `where`, `IDs`, `InvoiceNumbers`, `ContactIDs`, `Statuses`, `order`, paging and
`If-Modified-Since`.

Shapes follow the official `xero_accounting.yaml`. Invoices are raised and changed through the
state (a Xero user's doing); JSON only, as for contacts.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.sandbox import contact_query, errors, pages
from syncd.sandbox.accounting import (
    BASE,
    UUID,
    Refused,
    accepts_json,
    envelope,
    modified_since,
    not_found,
    paging,
)
from syncd.sandbox.models import INVOICE_STATUSES, Contact, Invoice, ms_date, ms_day
from syncd.sandbox.state import SandboxState

_ZERO = Decimal("0.00")
# `where` fields (lower-case, as Xero matches them) and how to read them off an invoice.
_FIELDS: dict[str, Callable[[tuple[Invoice, str]], str | None]] = {
    "invoiceid": lambda pair: pair[0].invoice_id,
    "invoicenumber": lambda pair: pair[0].invoice_number,
    "reference": lambda pair: pair[0].reference,
    "status": lambda pair: pair[0].status,
    "type": lambda pair: "ACCREC",
    "currencycode": lambda pair: pair[0].currency,
    "contact.contactid": lambda pair: pair[0].contact_id,
    "contact.name": lambda pair: pair[1],
}
_ORDER: dict[str, Callable[[Invoice], Any]] = {
    "invoicenumber": lambda i: i.invoice_number,
    "date": lambda i: i.issued_on,
    "duedate": lambda i: i.due_on,
    "total": lambda i: i.total,
    "status": lambda i: i.status,
    "updateddateutc": lambda i: i.updated_at,
}


def _money(value: Decimal) -> float:
    return float(value)


def invoice_json(invoice: Invoice, contact: Contact | None) -> dict[str, Any]:
    """An ACCREC invoice as Xero answers it: one total, no tax, no line items, no payments
    (a PAID invoice reports its total as paid)."""
    paid = invoice.total if invoice.status == "PAID" else _ZERO
    due = invoice.total if invoice.status in ("DRAFT", "SUBMITTED", "AUTHORISED") else _ZERO
    body: dict[str, Any] = {
        "Type": "ACCREC",
        "InvoiceID": invoice.invoice_id,
        "InvoiceNumber": invoice.invoice_number,
        "Reference": invoice.reference or "",
        "Payments": [],
        "CreditNotes": [],
        "Prepayments": [],
        "Overpayments": [],
        "AmountDue": _money(due),
        "AmountPaid": _money(paid),
        "AmountCredited": 0.0,
        "CurrencyRate": 1.0,
        "IsDiscounted": False,
        "HasAttachments": False,
        "HasErrors": False,
        "Contact": {
            "ContactID": invoice.contact_id,
            "Name": contact.name if contact is not None else "",
        },
        "DateString": invoice.issued_on.isoformat() + "T00:00:00",
        "Date": ms_day(invoice.issued_on),
        "DueDateString": invoice.due_on.isoformat() + "T00:00:00",
        "DueDate": ms_day(invoice.due_on),
        "Status": invoice.status,
        "LineAmountTypes": "NoTax",
        "LineItems": [],
        "SubTotal": _money(invoice.total),
        "TotalTax": 0.0,
        "Total": _money(invoice.total),
        "UpdatedDateUTC": ms_date(invoice.updated_at),
        "CurrencyCode": invoice.currency,
    }
    if invoice.status == "PAID":
        body["FullyPaidOnDate"] = ms_date(invoice.updated_at)
    return body


def _order(invoices: list[Invoice], order: str | None) -> list[Invoice]:
    """Sort by `order` ("InvoiceNumber ASC, Date DESC"); by default UpdatedDateUTC, then id."""
    ordered = sorted(invoices, key=lambda i: (i.updated_at, i.invoice_id))
    if not order or not order.strip():
        return ordered
    keys: list[tuple[str, bool]] = []
    for part in order.split(","):
        words = part.split()
        if not 1 <= len(words) <= 2 or words[0].lower() not in _ORDER:
            raise contact_query.QueryError(f"cannot order invoices by {part.strip()!r}")
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise contact_query.QueryError(f"cannot parse order {order!r}")
        keys.append((words[0].lower(), direction == "DESC"))
    for field, descending in reversed(keys):
        ordered.sort(key=_ORDER[field], reverse=descending)
    return ordered


def routes(state: SandboxState) -> list[Route]:
    def as_json(tenant_id: str, invoice: Invoice) -> dict[str, Any]:
        return invoice_json(invoice, state.tenant(tenant_id).contacts.get(invoice.contact_id))

    async def list_invoices(request: Request) -> Response:
        tenant = state.tenant(request.state.tenant_id)
        query = request.query_params
        try:
            accepts_json(request)
            where = pages.first(query, "where")
            predicate = (
                contact_query.parse_where_over(where, _FIELDS) if where and where.strip() else None
            )
            ids = {value.lower() for value in pages.values(query, "IDs")}
            numbers = set(pages.values(query, "InvoiceNumbers"))
            contact_ids = {value.lower() for value in pages.values(query, "ContactIDs")}
            statuses = {value.upper() for value in pages.values(query, "Statuses")}
            for status in statuses:
                if status not in INVOICE_STATUSES:
                    raise pages.BadParameter("Statuses", f"unknown status {status!r}")
            page = pages.integer(query, "page", default=None)
            size = pages.integer(query, "pageSize", default=None)
            since = modified_since(request.headers.get("if-modified-since"))
        except Refused as exc:
            return exc.response
        except (contact_query.QueryError, pages.BadParameter) as exc:
            return errors.accounting_error(400, "QueryParseException", str(exc))
        names = {c.contact_id: c.name for c in tenant.contacts.values()}
        found = [
            invoice
            for invoice in tenant.invoices.values()
            if (not ids or invoice.invoice_id in ids)
            and (not numbers or invoice.invoice_number in numbers)
            and (not contact_ids or invoice.contact_id in contact_ids)
            and (not statuses or invoice.status in statuses)
            and (predicate is None or predicate((invoice, names.get(invoice.contact_id, ""))))
            and (since is None or invoice.updated_at > since)
        ]
        try:
            ordered = _order(found, pages.first(query, "order"))
        except contact_query.QueryError as exc:
            return errors.accounting_error(400, "QueryParseException", str(exc))
        extra: dict[str, Any] = {}
        window = paging(page, size)
        if window is not None:
            ordered, found_page = pages.paginate(ordered, *window)
            extra["pagination"] = found_page.as_json()
        items = [as_json(tenant.tenant_id, invoice) for invoice in ordered]
        return envelope(state, request, "Invoices", items, **extra)

    async def get_invoice(request: Request) -> Response:
        """By InvoiceID, or by InvoiceNumber as Xero also allows."""
        try:
            accepts_json(request)
        except Refused as exc:
            return exc.response
        tenant = state.tenant(request.state.tenant_id)
        key = str(request.path_params["invoice_id"])
        if UUID.match(key.lower()):
            found = tenant.invoices.get(key.lower())
        else:
            found = next((i for i in tenant.invoices.values() if i.invoice_number == key), None)
        if found is None:
            return not_found()
        return envelope(state, request, "Invoices", [as_json(tenant.tenant_id, found)])

    return [
        pages.route(f"{BASE}/Invoices", list_invoices, methods=["GET"]),
        pages.route(f"{BASE}/Invoices/{{invoice_id}}", get_invoice, methods=["GET"]),
    ]
