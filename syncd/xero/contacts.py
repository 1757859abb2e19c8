"""Xero Accounting contacts (api.xro/2.0/Contacts): find by email, get, list, create, update.

Pure request builders and parsers plus `ContactsApi`, which calls through XeroHttp.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from syncd.domain.errors import NotFound, PermanentError
from syncd.domain.ids import CompanyId
from syncd.xero.http import XeroHttp

BASE = "/api.xro/2.0"
PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    contact_id: str
    name: str
    email: str | None
    status: str  # ACTIVE | ARCHIVED | GDPRREQUEST
    contact_number: str | None

    @property
    def archived(self) -> bool:
        return self.status != "ACTIVE"


def where_email(email: str) -> str:
    """Xero's optimised exact-match filter (case-insensitive on Xero's side)."""
    return f'EmailAddress=="{_quote(email)}"'


def where_name(name: str) -> str:
    return f'Name=="{_quote(" ".join(name.split()))}"'


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def contact_body(
    *,
    name: str,
    email: str | None,
    first_name: str | None,
    last_name: str | None,
    contact_number: str | None,
) -> dict[str, Any]:
    """One contact for PUT/POST /Contacts. Xero rejects repeated or edge spaces in names."""
    contact: dict[str, Any] = {"Name": " ".join(name.split())}
    for key, value in (
        ("EmailAddress", email),
        ("FirstName", first_name),
        ("LastName", last_name),
        ("ContactNumber", contact_number),
    ):
        if value:
            contact[key] = value
    return contact


def parse_contact(data: Any) -> Contact:
    if not isinstance(data, Mapping) or not data.get("ContactID"):
        raise PermanentError("Xero returned a contact without a ContactID")
    return Contact(
        contact_id=str(data["ContactID"]),
        name=str(data.get("Name") or ""),
        email=data.get("EmailAddress") or None,
        status=str(data.get("ContactStatus") or "ACTIVE").upper(),
        contact_number=data.get("ContactNumber") or None,
    )


def parse_contacts(data: Any) -> list[Contact]:
    if not isinstance(data, Mapping):
        raise PermanentError("Xero returned an unreadable contact list")
    return [parse_contact(item) for item in data.get("Contacts") or []]


class ContactsApi:
    def __init__(self, http: XeroHttp) -> None:
        self.http = http

    async def find_by_email(self, company: CompanyId, email: str) -> Contact | None:
        """The active contact whose main email is `email`, if any (archived ones are skipped)."""
        response = await self.http.request(
            company, "GET", f"{BASE}/Contacts", params={"where": where_email(email)}
        )
        active = [c for c in parse_contacts(response.json()) if not c.archived]
        return active[0] if active else None

    async def find_by_name(self, company: CompanyId, name: str) -> Contact | None:
        """The active contact with exactly this name (Xero keeps names unique among them)."""
        response = await self.http.request(
            company, "GET", f"{BASE}/Contacts", params={"where": where_name(name)}
        )
        active = [c for c in parse_contacts(response.json()) if not c.archived]
        return active[0] if active else None

    async def get(self, company: CompanyId, contact_id: str) -> Contact:
        response = await self.http.request(company, "GET", f"{BASE}/Contacts/{contact_id}")
        contacts = parse_contacts(response.json())
        if not contacts:
            raise NotFound(f"contact {contact_id} not found")
        return contacts[0]

    async def list_all(
        self, company: CompanyId, *, include_archived: bool = True
    ) -> AsyncIterator[Contact]:
        page = 1
        while True:
            response = await self.http.request(
                company,
                "GET",
                f"{BASE}/Contacts",
                params={
                    "page": page,
                    "pageSize": PAGE_SIZE,
                    "includeArchived": str(include_archived).lower(),
                },
            )
            batch = parse_contacts(response.json())
            for contact in batch:
                yield contact
            if len(batch) < PAGE_SIZE:
                return
            page += 1

    async def create(
        self,
        company: CompanyId,
        *,
        name: str,
        email: str | None,
        first_name: str | None = None,
        last_name: str | None = None,
        contact_number: str | None = None,
        idempotency_key: str,
    ) -> Contact:
        body = {
            "Contacts": [
                contact_body(
                    name=name,
                    email=email,
                    first_name=first_name,
                    last_name=last_name,
                    contact_number=contact_number,
                )
            ]
        }
        response = await self.http.request(
            company, "PUT", f"{BASE}/Contacts", json=body, idempotency_key=idempotency_key
        )
        contacts = parse_contacts(response.json())
        if not contacts:
            raise PermanentError("Xero created no contact")
        return contacts[0]

    async def update(
        self,
        company: CompanyId,
        contact_id: str,
        *,
        name: str,
        email: str | None,
        idempotency_key: str,
    ) -> Contact:
        body = {
            "Contacts": [
                {
                    **contact_body(
                        name=name, email=email, first_name=None, last_name=None, contact_number=None
                    ),
                    "ContactID": contact_id,
                }
            ]
        }
        response = await self.http.request(
            company,
            "POST",
            f"{BASE}/Contacts/{contact_id}",
            json=body,
            idempotency_key=idempotency_key,
        )
        return parse_contacts(response.json())[0]
