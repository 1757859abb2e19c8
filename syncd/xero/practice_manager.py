"""Xero Practice Manager API v3.1 (XML): clients, jobs (create, list, get, state, manager),
staff, job templates and categories. The contract is docs/practice-manager.md.

Pure request builders (`syncd.xero.xml`'s writer) and parsers (defusedxml), plus
`PracticeManagerApi`, which calls through XeroHttp: limits, tokens, the sync log and error
translation (including XPM's Status ERROR on HTTP 200) happen there, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from urllib.parse import quote
from xml.etree.ElementTree import Element, SubElement

from syncd.domain.errors import PermanentError
from syncd.domain.ids import CompanyId
from syncd.xero import xml
from syncd.xero.http import XeroHttp

BASE = "/practicemanager/3.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobTemplate:
    template_id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffMember:
    staff_id: str
    name: str
    email: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Category:
    category_id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class XpmClient:
    client_id: str
    name: str
    email: str | None
    archived: bool  # archived or deleted in XPM


@dataclass(frozen=True, slots=True, kw_only=True)
class XpmJob:
    number: str  # `ID`, e.g. J000309: how XPM addresses a job
    job_id: str  # `UUID`
    name: str
    state: str
    client_id: str | None
    client_order_number: str | None
    due: date | None
    manager_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJob:
    name: str
    description: str
    client_id: str
    start: date
    due: date
    reference: str | None  # the client's order number: where syncd keeps its request id
    template_id: str | None
    category_id: str | None
    budget: Decimal | None


# -- parsing ----------------------------------------------------------------------------------


def _items(root: Element, container: str, item: str) -> list[Element]:
    found = root.find(container)
    if found is None:
        raise PermanentError(f"Practice Manager answered OK without <{container}>")
    return found.findall(item)


def _one(root: Element, tag: str) -> Element:
    found = root.find(tag)
    if found is None:
        raise PermanentError(f"Practice Manager answered OK without <{tag}>")
    return found


def _uuid(element: Element, what: str) -> str:
    value = xml.text(element, "UUID")
    if not value:
        raise PermanentError(f"Practice Manager returned a {what} without a UUID")
    return value


def parse_templates(body: bytes) -> list[JobTemplate]:
    """`template.api/list`: `<Templates><Template><UUID/><Name/></Template>…</Templates>`."""
    return [
        JobTemplate(template_id=_uuid(t, "template"), name=xml.text(t, "Name"))
        for t in _items(xml.response(body), "Templates", "Template")
    ]


def parse_staff(body: bytes) -> list[StaffMember]:
    """`staff.api/list`: `<StaffList><Staff><UUID/><Name/><Email/>…</Staff>…</StaffList>`."""
    return [
        StaffMember(
            staff_id=_uuid(s, "staff member"),
            name=xml.text(s, "Name"),
            email=xml.optional(s, "Email"),
        )
        for s in _items(xml.response(body), "StaffList", "Staff")
    ]


def parse_categories(body: bytes) -> list[Category]:
    """`category.api/list`: `<Categories><Category><UUID/><Name/></Category>…</Categories>`."""
    return [
        Category(category_id=_uuid(c, "category"), name=xml.text(c, "Name"))
        for c in _items(xml.response(body), "Categories", "Category")
    ]


def _client(element: Element) -> XpmClient:
    return XpmClient(
        client_id=_uuid(element, "client"),
        name=xml.text(element, "Name"),
        email=xml.optional(element, "Email"),
        archived=xml.yes(element, "IsArchived") or xml.yes(element, "IsDeleted"),
    )


def parse_clients(body: bytes) -> list[XpmClient]:
    """`client.api/search` and `client.api/list`: `<Clients><Client>…</Client>…</Clients>`."""
    return [_client(c) for c in _items(xml.response(body), "Clients", "Client")]


def parse_client(body: bytes) -> XpmClient:
    """`client.api/get/{uuid}`, `client.api/add` and `client.api/update`: `<Client>…</Client>`."""
    return _client(_one(xml.response(body), "Client"))


def _job(element: Element) -> XpmJob:
    number = xml.text(element, "ID")
    if not number:
        raise PermanentError("Practice Manager returned a job without an ID (job number)")
    client = element.find("Client")
    manager = element.find("Manager")
    return XpmJob(
        number=number,
        job_id=_uuid(element, "job"),
        name=xml.text(element, "Name"),
        state=xml.text(element, "State"),
        client_id=xml.optional(client, "UUID") if client is not None else None,
        client_order_number=xml.optional(element, "ClientOrderNumber"),
        due=xml.answer_date(element, "DueDate"),
        manager_id=xml.optional(manager, "UUID") if manager is not None else None,
    )


def parse_jobs(body: bytes) -> list[XpmJob]:
    """`job.api/current` and `job.api/client/{uuid}`: `<Jobs><Job>…</Job>…</Jobs>`."""
    return [_job(j) for j in _items(xml.response(body), "Jobs", "Job")]


def parse_job(body: bytes) -> XpmJob:
    """`job.api/get/{number}` and `job.api/add`: the job, `<Job>…</Job>`."""
    return _job(_one(xml.response(body), "Job"))


def parse_ok(body: bytes) -> None:
    """Writes that answer only `<Status>OK</Status>` (state, assign)."""
    xml.response(body)


# -- request bodies -----------------------------------------------------------------------------


def client_add_body(*, name: str, email: str | None, phone: str | None) -> bytes:
    """`client.api/add`: the client and the same person as its primary contact."""
    client = xml.node("Client", {"Name": " ".join(name.split()), "Email": email, "Phone": phone})
    contacts = SubElement(client, "Contacts")
    contacts.append(
        xml.node(
            "Contact",
            {"Name": " ".join(name.split()), "IsPrimary": "Yes", "Email": email, "Phone": phone},
        )
    )
    return xml.document(client)


def client_update_body(*, client_id: str, name: str, email: str | None) -> bytes:
    return xml.document(
        xml.node("Client", {"UUID": client_id, "Name": " ".join(name.split()), "Email": email})
    )


def job_add_body(job: NewJob) -> bytes:
    """`job.api/add`, elements in the documented order."""
    return xml.document(
        xml.node(
            "Job",
            {
                "Name": job.name,
                "Description": job.description,
                "ClientUUID": job.client_id,
                "StartDate": job.start,
                "DueDate": job.due,
                "ClientNumber": job.reference,
                "TemplateUUID": job.template_id,
                "CategoryUUID": job.category_id,
                "Budget": job.budget,
            },
        )
    )


def job_state_body(*, number: str, job_id: str, state: str) -> bytes:
    return xml.document(xml.node("Job", {"ID": number, "UUID": job_id, "State": state}))


def job_assign_body(*, number: str, job_id: str, manager_id: str | None, replace: bool) -> bytes:
    """`job.api/assign`: drop the current manager (`replace`) and/or add `manager_id`."""
    job = xml.node("Job", {"ID": number, "UUID": job_id})
    if replace:
        SubElement(job, "remove-manager")
    if manager_id is not None:
        SubElement(job, "add-manager", uuid=manager_id)
    return xml.document(job)


# -- calls --------------------------------------------------------------------------------------


class PracticeManagerApi:
    def __init__(self, http: XeroHttp) -> None:
        self.http = http

    async def _get(self, company: CompanyId, path: str, **params: str) -> bytes:
        response = await self.http.request(company, "GET", f"{BASE}/{path}", params=params or None)
        return response.content

    async def templates(self, company: CompanyId) -> list[JobTemplate]:
        """The practice's job templates (what a job may be created from)."""
        return parse_templates(await self._get(company, "template.api/list"))

    async def staff(self, company: CompanyId) -> list[StaffMember]:
        """The practice's staff (the people jobs are assigned to), for mapping."""
        return parse_staff(await self._get(company, "staff.api/list"))

    async def categories(self, company: CompanyId) -> list[Category]:
        return parse_categories(await self._get(company, "category.api/list"))

    async def search_clients(self, company: CompanyId, query: str) -> list[XpmClient]:
        return parse_clients(await self._get(company, "client.api/search", query=query))

    async def client(self, company: CompanyId, client_id: str) -> XpmClient:
        """One client; NotFound when it no longer exists."""
        return parse_client(await self._get(company, f"client.api/get/{quote(client_id, safe='')}"))

    async def clients(self, company: CompanyId) -> list[XpmClient]:
        """Every client, archived ones flagged."""
        return parse_clients(await self._get(company, "client.api/list"))

    async def add_client(
        self,
        company: CompanyId,
        *,
        name: str,
        email: str | None,
        phone: str | None,
        idempotency_key: str,
    ) -> XpmClient:
        response = await self.http.request(
            company,
            "POST",
            f"{BASE}/client.api/add",
            xml=client_add_body(name=name, email=email, phone=phone),
            idempotency_key=idempotency_key,
        )
        return parse_client(response.content)

    async def update_client(
        self,
        company: CompanyId,
        client_id: str,
        *,
        name: str,
        email: str | None,
        idempotency_key: str,
    ) -> XpmClient:
        response = await self.http.request(
            company,
            "PUT",
            f"{BASE}/client.api/update",
            xml=client_update_body(client_id=client_id, name=name, email=email),
            idempotency_key=idempotency_key,
        )
        return parse_client(response.content)

    async def add_job(self, company: CompanyId, job: NewJob, *, idempotency_key: str) -> XpmJob:
        response = await self.http.request(
            company,
            "POST",
            f"{BASE}/job.api/add",
            xml=job_add_body(job),
            idempotency_key=idempotency_key,
        )
        return parse_job(response.content)

    async def client_jobs(self, company: CompanyId, client_id: str) -> list[XpmJob]:
        return parse_jobs(await self._get(company, f"job.api/client/{quote(client_id, safe='')}"))

    async def current_jobs(self, company: CompanyId) -> list[XpmJob]:
        """Jobs not in a completed state (completed and cancelled ones leave this list)."""
        return parse_jobs(await self._get(company, "job.api/current"))

    async def job(self, company: CompanyId, number: str) -> XpmJob:
        """One job by number; NotFound when it was deleted."""
        return parse_job(await self._get(company, f"job.api/get/{quote(number, safe='')}"))

    async def set_state(
        self, company: CompanyId, *, number: str, job_id: str, state: str, idempotency_key: str
    ) -> None:
        response = await self.http.request(
            company,
            "PUT",
            f"{BASE}/job.api/state",
            xml=job_state_body(number=number, job_id=job_id, state=state),
            idempotency_key=idempotency_key,
        )
        parse_ok(response.content)

    async def assign_manager(
        self,
        company: CompanyId,
        *,
        number: str,
        job_id: str,
        manager_id: str | None,
        replace: bool,
        idempotency_key: str,
    ) -> None:
        response = await self.http.request(
            company,
            "PUT",
            f"{BASE}/job.api/assign",
            xml=job_assign_body(
                number=number, job_id=job_id, manager_id=manager_id, replace=replace
            ),
            idempotency_key=idempotency_key,
        )
        parse_ok(response.content)
