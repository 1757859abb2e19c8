"""Xero Accounting invoices (api.xro/2.0/Invoices): read one, to tie it to a request's job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from syncd.domain.errors import NotFound, PermanentError
from syncd.domain.ids import CompanyId
from syncd.xero.http import XeroHttp

BASE = "/api.xro/2.0"
CENTS = Decimal("0.01")


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoice:
    invoice_id: str
    number: str | None
    contact_id: str | None
    reference: str | None
    status: str | None
    total: Decimal | None
    currency: str | None


def parse_invoice(data: Any) -> Invoice:
    if not isinstance(data, Mapping) or not data.get("InvoiceID"):
        raise PermanentError("Xero returned an invoice without an InvoiceID")
    contact = data.get("Contact") or {}
    total = data.get("Total")
    return Invoice(
        invoice_id=str(data["InvoiceID"]),
        number=data.get("InvoiceNumber") or None,
        contact_id=str(contact["ContactID"]) if contact.get("ContactID") else None,
        reference=data.get("Reference") or None,
        status=data.get("Status") or None,
        total=Decimal(str(total)).quantize(CENTS) if total is not None else None,
        currency=data.get("CurrencyCode") or None,
    )


class InvoicesApi:
    def __init__(self, http: XeroHttp) -> None:
        self.http = http

    async def get(self, company: CompanyId, invoice_id: str) -> Invoice:
        response = await self.http.request(company, "GET", f"{BASE}/Invoices/{invoice_id}")
        invoices = (response.json() or {}).get("Invoices") or []
        if not invoices:
            raise NotFound(f"invoice {invoice_id} not found")
        return parse_invoice(invoices[0])
