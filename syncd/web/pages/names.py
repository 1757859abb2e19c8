"""What pages show instead of raw ids: a request as "client — service" with its Xero job number,
people by name, Xero jobs by number, a finding's CRM and Xero sides as readable lines. The id
stays available (as a `title` the browser shows on hover, and in the CSV and JSON).

Reads the CRM port and syncd's own tables, always for one practice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.crm.port import CrmPort
from syncd.domain.ids import CompanyId
from syncd.services import Services
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import ContactMappingRepository, StaffMappingRepository

# Finding and task keys, as an admin would say them.
FIELD_NAMES = {
    "request_id": "request",
    "request_ids": "requests",
    "client_id": "client",
    "accountant_id": "accountant",
    "service_id": "service",
    "job_id": "job",
    "job_ids": "jobs",
    "contact_id": "contact",
    "suggested_staff_id": "suggested staff member",
    "open_requests": "open requests",
    "status": "status",
    "name": "name",
    "email": "email",
    "exists": "exists",
    "archived": "archived",
}

NAMED_BY_SIDE = ("accountant_id", "client_id", "service_id")
SUBJECT_KEYS = {
    "accountant": "accountant_id",
    "client": "client_id",
    "request": "request_id",
    "job": "job_id",
    "service": "service_id",
    "contact": "contact_id",
}


@dataclass(frozen=True, slots=True)
class Named:
    """A label to show, and the id behind it for the hover title."""

    label: str
    id: str


@dataclass(slots=True)
class Names:
    """Labels for the ids on one page of one practice; unknown ids fall back to themselves."""

    requests: dict[str, str] = field(default_factory=dict)
    people: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, str] = field(default_factory=dict)
    staff: dict[str, str] = field(default_factory=dict)

    def request(self, request_id: str | None) -> Named | None:
        if not request_id:
            return None
        return Named(self.requests.get(request_id, f"request {request_id[:8]}…"), request_id)

    def subject(self, subject: str | None) -> Named:
        """A finding's subject ("accountant:<id>", "job:<id>", …) as "Accountant: Ann Lee"."""
        kind, _, ident = (subject or "").partition(":")
        key = SUBJECT_KEYS.get(kind)
        if key is None or not ident:
            return Named(subject or "", subject or "")
        named = self._one(key, ident)
        return Named(f"{kind.capitalize()}: {named.label}", ident)

    def lines(self, side: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """A finding's side as (field, value, id-or-empty) lines, ids replaced by names."""
        shown = []
        for key, value in side.items():
            if key in NAMED_BY_SIDE and side.get("name"):
                continue  # the side names the person itself: their id stays in the subject
            label = FIELD_NAMES.get(key, key.replace("_", " "))
            if isinstance(value, list):
                names = [self._one(key.removesuffix("s"), str(v)) for v in value]
                shown.append((label, ", ".join(n.label for n in names), " ".join(map(str, value))))
                continue
            if value is None or value == "":
                continue
            if isinstance(value, bool):
                shown.append((label, "yes" if value else "no", ""))
                continue
            named = self._one(key, str(value))
            shown.append((label, named.label, named.id if named.label != named.id else ""))
        return shown

    def _one(self, key: str, value: str) -> Named:
        table = {
            "request_id": self.requests,
            "client_id": self.people,
            "accountant_id": self.people,
            "service_id": self.services,
            "job_id": self.jobs,
            "contact_id": self.contacts,
            "suggested_staff_id": self.staff,
        }.get(key)
        if table is None:
            return Named(value, value)
        if value in table:
            return Named(table[value], value)
        return Named(f"{value[:8]}…" if len(value) > 12 else value, value)


def _ids(sides: Iterable[Mapping[str, Any]], *keys: str) -> set[str]:
    """Every id under `keys` (single or lists) in the sides."""
    found: set[str] = set()
    for side in sides:
        for key in keys:
            value = side.get(key)
            found.update(str(v) for v in (value if isinstance(value, list) else [value]) if v)
    return found


async def names_for(
    services: Services,
    company: CompanyId,
    *,
    request_ids: Iterable[str] = (),
    sides: Iterable[Mapping[str, Any]] = (),
) -> Names:
    """Names for the given requests and for the ids in `sides` (a finding's `crm` and `xero`,
    a task's result). Reads only those rows: one query or CRM read per id named (a page shows
    at most a few dozen), plus the practice's accountants, services and staff mappings."""
    names = Names()
    sides = list(sides)
    wanted = {r for r in request_ids if r} | _ids(sides, "request_id", "request_ids")
    async with services.db.transaction() as session:
        links = JobLinkRepository(session)
        found = await links.for_requests(company=company, request_ids=sorted(wanted))
        for job_id in sorted(_ids(sides, "job_id", "job_ids")):
            found.extend(await links.for_job(company=company, job_id=job_id))
        contacts = ContactMappingRepository(session)
        for contact_id in sorted(_ids(sides, "contact_id")):
            for mapping in await contacts.for_contact(company=company, contact_id=contact_id):
                if mapping.xero_contact_name:
                    names.contacts[contact_id] = mapping.xero_contact_name
        staff = await StaffMappingRepository(session).list(company=company)
    numbers = {link.request_id: link.xero_job_number for link in found if link.xero_job_number}
    names.jobs = {
        link.xero_job_id: f"job {link.xero_job_number}"
        for link in found
        if link.xero_job_id and link.xero_job_number
    }
    names.staff = {m.xero_staff_id: m.xero_staff_name for m in staff if m.xero_staff_name}
    if services.crm is not None:
        clients = _ids(sides, "client_id")
        await _crm_names(services.crm, company, names, wanted, clients, numbers)
    return names


async def _crm_names(
    crm: CrmPort,
    company: CompanyId,
    names: Names,
    wanted: set[str],
    clients: set[str],
    numbers: dict[str, str],
) -> None:
    names.people = {p.user_id: p.full_name for p in await crm.list_accountants(company=company)}
    names.services = {str(s.service_id): s.name for s in await crm.list_services(company=company)}
    requests = [await crm.get_request(company=company, request_id=r) for r in sorted(wanted)]
    found = [r for r in requests if r is not None]
    for client_id in sorted(clients | {r.client_id for r in found}):
        person = await crm.get_client(company=company, client_id=client_id)
        if person is not None:
            names.people[client_id] = person.full_name
    for request in found:
        client = names.people.get(request.client_id, "a client")
        service = names.services.get(str(request.service_id), "a service")
        number = request.xero_job_number or numbers.get(request.request_id)
        job = f" (job {number})" if number else ""
        names.requests[request.request_id] = f"{client} — {service}{job}"
