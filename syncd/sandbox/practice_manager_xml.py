"""Practice Manager's XML for the sandbox, both ways: the answers (ElementTree, so user data is
only ever element text, escaped by the library) and the request bodies (defusedxml only, with
DTDs, entity declarations and external references refused). Shapes: docs/practice-manager.md.

Pure; imports only the sandbox's models and the practice world's `Unset`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from syncd.sandbox.models import Category, ClientContact, Job, PracticeClient, SandboxError, Tenant
from syncd.sandbox.practice_world import UNSET, Unset

MEDIA_TYPE = "text/xml"
# ASCII digits only: `\d` would also take other scripts' digits, which XPM's parser refuses.
_REQUEST_DATE = re.compile(r"[0-9]{8}")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


class Refused(SandboxError):
    """A request XPM answers with HTTP 200 and Status ERROR; the message is the
    ErrorDescription."""


# -- answers ----------------------------------------------------------------------------------


def document(root: Element) -> bytes:
    return bytes(tostring(root, encoding="utf-8", xml_declaration=True))


def ok_xml(*body: Element) -> bytes:
    """`<Response><Status>OK</Status>{body}</Response>`."""
    root = Element("Response")
    SubElement(root, "Status").text = "OK"
    root.extend(body)
    return document(root)


def error_xml(description: str) -> bytes:
    """`<Response><Status>ERROR</Status><ErrorDescription>…</ErrorDescription></Response>`."""
    root = Element("Response")
    SubElement(root, "Status").text = "ERROR"
    SubElement(root, "ErrorDescription").text = description
    return document(root)


def _text(parent: Element, tag: str, value: str | None) -> Element:
    child = SubElement(parent, tag)
    child.text = value or ""
    return child


def _rows(
    container: str, item: str, rows: Iterable[Mapping[str, str]], fields: tuple[str, ...]
) -> Element:
    found = Element(container)
    for row in rows:
        element = SubElement(found, item)
        for name in fields:
            _text(element, name, row.get(name))
    return found


def templates_xml(templates: Sequence[Mapping[str, str]]) -> bytes:
    """`<Templates><Template><UUID/><Name/></Template>…</Templates>`, in an OK answer."""
    return ok_xml(_rows("Templates", "Template", templates, ("UUID", "Name")))


def staff_xml(staff: Sequence[Mapping[str, str]]) -> bytes:
    """`<StaffList><Staff><UUID/><Name/><Email/></Staff>…</StaffList>`, in an OK answer."""
    return ok_xml(_rows("StaffList", "Staff", staff, ("UUID", "Name", "Email")))


def categories_xml(categories: Sequence[Category]) -> bytes:
    """`<Categories><Category><UUID/><Name/></Category>…</Categories>`, in an OK answer."""
    rows = [{"UUID": c.uuid, "Name": c.name} for c in categories]
    return ok_xml(_rows("Categories", "Category", rows, ("UUID", "Name")))


def _yes(value: bool) -> str:
    return "Yes" if value else "No"


def client_element(client: PracticeClient) -> Element:
    """`<Client><UUID/><Name/><Email/><Phone/><IsArchived/><IsDeleted/><Contacts>…`."""
    element = Element("Client")
    _text(element, "UUID", client.uuid)
    _text(element, "Name", client.name)
    _text(element, "Email", client.email)
    _text(element, "Phone", client.phone)
    _text(element, "IsArchived", _yes(client.archived))
    _text(element, "IsDeleted", _yes(client.deleted))
    contacts = SubElement(element, "Contacts")
    for contact in client.contacts:
        person = SubElement(contacts, "Contact")
        _text(person, "UUID", contact.contact_uuid)
        _text(person, "Name", contact.name)
        _text(person, "Email", contact.email)
        _text(person, "IsPrimary", _yes(contact.is_primary))
    return element


def clients_xml(clients: Iterable[PracticeClient]) -> bytes:
    """`<Clients><Client>…</Client>…</Clients>`, in an OK answer."""
    container = Element("Clients")
    container.extend(client_element(client) for client in clients)
    return ok_xml(container)


def client_xml(client: PracticeClient) -> bytes:
    return ok_xml(client_element(client))


def answer_date(value: date) -> str:
    """XPM's answer form, no zone: `2026-12-31T00:00:00`."""
    return f"{value.isoformat()}T00:00:00"


def job_element(job: Job, tenant: Tenant) -> Element:
    """A job, its client, category (`Type`) and manager named from the practice's records;
    `Type`, `CompletedDate` and `Manager` only when the job has one."""
    element = Element("Job")
    _text(element, "ID", job.number)
    _text(element, "UUID", job.uuid)
    _text(element, "Name", job.name)
    _text(element, "Description", job.description)
    _text(element, "ClientOrderNumber", job.client_order_number)
    _text(element, "State", job.state)
    category = next((c for c in tenant.categories if c.uuid == job.category_uuid), None)
    if category is not None:
        _text(element, "Type", category.name)
    _text(element, "StartDate", answer_date(job.start_date))
    _text(element, "DueDate", answer_date(job.due_date))
    if job.completed_date is not None:
        _text(element, "CompletedDate", answer_date(job.completed_date))
    _text(element, "Budget", f"{job.budget:.2f}")
    client = SubElement(element, "Client")
    _text(client, "UUID", job.client_uuid)
    owner = tenant.clients.get(job.client_uuid)
    _text(client, "Name", owner.name if owner is not None else "")
    manager = next((s for s in tenant.staff if s["UUID"] == job.manager_uuid), None)
    if manager is not None:
        named = SubElement(element, "Manager")
        _text(named, "UUID", manager["UUID"])
        _text(named, "Name", manager["Name"])
    return element


def jobs_xml(jobs: Iterable[Job], tenant: Tenant) -> bytes:
    """`<Jobs><Job>…</Job>…</Jobs>`, in an OK answer."""
    container = Element("Jobs")
    container.extend(job_element(job, tenant) for job in jobs)
    return ok_xml(container)


def job_xml(job: Job, tenant: Tenant) -> bytes:
    return ok_xml(job_element(job, tenant))


# -- request bodies ---------------------------------------------------------------------------


def read_body(raw: bytes, root_tag: str) -> Element:
    """The body's root element, which must be `root_tag` (names are case-sensitive)."""
    try:
        root: Element = fromstring(raw, forbid_dtd=True)
    except DefusedXmlException:
        raise Refused("The request must not contain a DTD or entity declarations") from None
    except ParseError as exc:
        raise Refused(f"The request is not well-formed XML: {exc}") from None
    if root.tag != root_tag:
        raise Refused(f"The request must be a <{root_tag}> element, not <{root.tag}>")
    return root


def optional(element: Element, tag: str) -> str | None:
    """The stripped text of child `tag`; None when it is absent or empty."""
    child = element.find(tag)
    text = (child.text or "").strip() if child is not None else ""
    return text or None


def required(element: Element, tag: str, what: str | None = None) -> str:
    value = optional(element, tag)
    if value is None:
        raise Refused(f"{what or tag} is required")
    return value


def request_date(element: Element, tag: str) -> date:
    """A required `YYYYMMDD` date: exactly eight digits, and a real day."""
    value = required(element, tag)
    if _REQUEST_DATE.fullmatch(value):
        try:
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            pass
    raise Refused(f"{tag} must be a date in the form YYYYMMDD, not {value!r}")


def budget(element: Element) -> Decimal | None:
    value = optional(element, "Budget")
    if value is None:
        return None
    if not _NUMBER.fullmatch(value):
        raise Refused(f"Budget must be a number, not {value!r}")
    return Decimal(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewClient:
    """A `client.api/add` body."""

    name: str
    email: str | None
    phone: str | None
    contacts: tuple[ClientContact, ...]


def parse_client_add(raw: bytes) -> NewClient:
    """`<Client><Name/>` (required), optional `<Email/>`, `<Phone/>` and
    `<Contacts><Contact><Name/><IsPrimary/><Email/><Phone/>…`; contacts get UUIDs later."""
    client = read_body(raw, "Client")
    contacts = tuple(
        ClientContact(
            contact_uuid="",
            name=optional(contact, "Name") or "",
            email=optional(contact, "Email"),
            phone=optional(contact, "Phone"),
            is_primary=(optional(contact, "IsPrimary") or "").lower() in ("yes", "true"),
        )
        for contact in client.findall("Contacts/Contact")
    )
    return NewClient(
        name=required(client, "Name", "Client Name"),
        email=optional(client, "Email"),
        phone=optional(client, "Phone"),
        contacts=contacts,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientChange:
    """A `client.api/update` body; `email` UNSET when the element is absent."""

    uuid: str
    name: str
    email: str | Unset | None


def parse_client_update(raw: bytes) -> ClientChange:
    client = read_body(raw, "Client")
    return ClientChange(
        uuid=required(client, "UUID", "Client UUID"),
        name=required(client, "Name", "Client Name"),
        email=optional(client, "Email") if client.find("Email") is not None else UNSET,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJob:
    """A `job.api/add` body, formats checked; the references are the practice world's to
    check."""

    name: str
    description: str
    client_uuid: str
    start_date: date
    due_date: date
    client_order_number: str | None
    template_uuid: str | None
    category_uuid: str | None
    budget: Decimal | None


def parse_job_add(raw: bytes) -> NewJob:
    """Required `<Name/><Description/><ClientUUID/><StartDate/><DueDate/>`, checked in that
    order; optional `<ClientNumber/>` (the order number), `<TemplateUUID/>`, `<CategoryUUID/>`,
    `<Budget/>`. Other elements are ignored."""
    job = read_body(raw, "Job")
    name = required(job, "Name", "Job Name")
    description = required(job, "Description", "Job Description")
    client_uuid = required(job, "ClientUUID")
    required(job, "StartDate")
    required(job, "DueDate")
    return NewJob(
        name=name,
        description=description,
        client_uuid=client_uuid,
        start_date=request_date(job, "StartDate"),
        due_date=request_date(job, "DueDate"),
        client_order_number=optional(job, "ClientNumber"),
        template_uuid=optional(job, "TemplateUUID"),
        category_uuid=optional(job, "CategoryUUID"),
        budget=budget(job),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class JobChange:
    """A `job.api/state` or `job.api/assign` body. `manager` is the manager after the
    `remove-manager`/`add-manager` elements, in document order (UNSET: untouched)."""

    number: str
    uuid: str
    state: str | None = None
    manager: str | Unset | None = UNSET


def _addressed(job: Element) -> tuple[str, str]:
    return required(job, "ID", "Job ID"), required(job, "UUID", "Job UUID")


def parse_job_state(raw: bytes) -> JobChange:
    """`<Job><ID/><UUID/><State/></Job>`. The state is kept exactly as sent (no stripping):
    it must equal one of the practice's codes."""
    job = read_body(raw, "Job")
    number, uuid = _addressed(job)
    element = job.find("State")
    if element is None or not element.text:
        raise Refused("State is required")
    return JobChange(number=number, uuid=uuid, state=element.text)


def parse_job_assign(raw: bytes) -> JobChange:
    """`<Job><ID/><UUID/><remove-manager/><add-manager uuid="…"/></Job>`; other assignment
    elements (staff, partner) are not simulated and ignored."""
    job = read_body(raw, "Job")
    number, uuid = _addressed(job)
    manager: str | Unset | None = UNSET
    for child in job:
        if child.tag == "remove-manager":
            manager = None
        elif child.tag == "add-manager":
            wanted = (child.get("uuid") or "").strip()
            if not wanted:
                raise Refused("add-manager needs a uuid attribute")
            manager = wanted
    return JobChange(number=number, uuid=uuid, manager=manager)
