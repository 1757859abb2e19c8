"""Xero Accounting API contacts (`/api.xro/2.0/Contacts`): find, create, create-or-update,
get by id (or contact number) and update, with Xero's validation and envelope.

Shapes follow the official `xero_accounting.yaml`, and requests are checked as strictly as it
says (syncd.sandbox.validation) before Xero's documented rules (unique active names, valid
email addresses). The sandbox answers JSON only: a request that does not accept JSON gets 406
(Xero would answer XML, which syncd must never parse).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.sandbox import contact_query, errors, pages, validation
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
from syncd.sandbox.models import Contact, ms_date
from syncd.sandbox.state import SandboxState

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TEXT_FIELDS = {
    # JSON name: Contact attribute (lengths and types are the spec's, syncd.sandbox.schemas)
    "Name": "name",
    "FirstName": "first_name",
    "LastName": "last_name",
    "EmailAddress": "email",
    "ContactNumber": "contact_number",
    "AccountNumber": "account_number",
    "CompanyNumber": "company_number",
    "TaxNumber": "tax_number",
}
_LIST_FIELDS = {"Phones": "phones", "Addresses": "addresses", "ContactPersons": "contact_persons"}
_DEFAULT_ADDRESSES = tuple(
    {"AddressType": kind, "City": "", "Region": "", "PostalCode": "", "Country": ""}
    for kind in ("STREET", "POBOX")
)
_DEFAULT_PHONES = tuple(
    {"PhoneType": kind, "PhoneNumber": "", "PhoneAreaCode": "", "PhoneCountryCode": ""}
    for kind in ("DEFAULT", "DDI", "FAX", "MOBILE")
)


def contact_json(contact: Contact, *, summary: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"ContactID": contact.contact_id}
    if contact.contact_number:
        body["ContactNumber"] = contact.contact_number
    if contact.account_number:
        body["AccountNumber"] = contact.account_number
    body["ContactStatus"] = contact.status
    body["Name"] = contact.name
    for key, value in (
        ("FirstName", contact.first_name),
        ("LastName", contact.last_name),
        ("CompanyNumber", contact.company_number),
        ("EmailAddress", contact.email),
        ("TaxNumber", contact.tax_number),
    ):
        if value is not None:
            body[key] = value
    body["BankAccountDetails"] = ""
    if not summary:
        body["Addresses"] = [dict(a) for a in contact.addresses or _DEFAULT_ADDRESSES]
    body["Phones"] = [dict(p) for p in contact.phones or _DEFAULT_PHONES]
    body["UpdatedDateUTC"] = ms_date(contact.updated_at)
    if not summary:
        body["ContactGroups"] = []
        body["IsSupplier"] = False
        body["IsCustomer"] = False
        body["ContactPersons"] = [dict(p) for p in contact.contact_persons]
    body["HasAttachments"] = False
    body["HasValidationErrors"] = False
    return body


def _apply_fields(contact: Contact, item: dict[str, Any], problems: list[str]) -> Contact:
    """`contact` with the fields present in `item` (already checked against the spec's types,
    formats and lengths); problems Xero finds beyond those are appended."""
    changes: dict[str, Any] = {}
    for key, attribute in _TEXT_FIELDS.items():
        if key in item:
            value: str = item[key]
            changes[attribute] = " ".join(value.split()) if key == "Name" else value
    email = changes.get("email")
    if email and not _EMAIL.match(email):
        problems.append("Email address must be valid.")
    if "ContactStatus" in item:
        changes["status"] = item["ContactStatus"]
    for key, attribute in _LIST_FIELDS.items():
        if key in item:
            changes[attribute] = tuple(dict(v) for v in item[key])
    return replace(contact, **changes)


def _conflicts(contact: Contact, others: Sequence[Contact]) -> list[str]:
    problems: list[str] = []
    if not contact.name:
        return ["The contact name must be specified."]
    if contact.status != "ACTIVE":
        return problems
    for other in others:
        if other.contact_id == contact.contact_id or other.status != "ACTIVE":
            continue
        if contact_query.fold(other.name) == contact_query.fold(contact.name):
            problems.append(
                f"The name {contact.name} is already used by another active contact; "
                "active contacts need distinct names."
            )
        if contact.contact_number and other.contact_number == contact.contact_number:
            problems.append(
                f"The contact number {contact.contact_number} is already used by another contact."
            )
    return problems


def routes(state: SandboxState) -> list[Route]:
    def answer(request: Request, contacts: list[dict[str, Any]], **extra: Any) -> Response:
        return envelope(state, request, "Contacts", contacts, **extra)

    async def items(request: Request, operation: str) -> list[tuple[dict[str, Any], list[str]]]:
        """The body's contacts, each with the problems Xero reports per item (lengths over the
        spec's limits). A body the spec's types, formats or enums refuse is refused whole, as
        Xero does when it cannot read the JSON (PostDataInvalidException)."""
        raw = await request.body()
        try:
            body = validation.parse_json(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError):
            body = None
        problems = validation.body_problems(operation, body) if body is not None else []
        malformed = [p for p in problems if p.malformed]
        if malformed:
            raise Refused(
                errors.post_data_invalid(
                    "; ".join(f"{validation.dotted(p.path)} {p.message}" for p in malformed)
                )
            )
        found = body.get("Contacts") if isinstance(body, dict) else None
        if not isinstance(found, list) or not found:
            raise Refused(
                errors.accounting_error(
                    400, "ValidationException", 'Send {"Contacts": [ {...} ]} as JSON.'
                )
            )
        per_item: list[list[str]] = [[] for _ in found]
        for problem in problems:
            if problem.path[:1] == ("Contacts",) and len(problem.path) > 2:
                index = int(problem.path[1])
                per_item[index].append(f"{validation.dotted(problem.path[2:])} {problem.message}.")
        return list(zip(found, per_item, strict=True))

    def summarized(request: Request, operation: str) -> bool:
        """summarizeErrors: absent or true fails the whole batch on one bad item."""
        params = validation.read_parameters(operation, request.query_params, request.headers)
        return bool(params.get("summarizeErrors", True))

    def lookup(tenant_id: str, key: str) -> Contact | None:
        contacts = state.tenant(tenant_id).contacts
        if UUID.match(key.lower()):
            return contacts.get(key.lower())
        return next((c for c in contacts.values() if c.contact_number == key), None)

    def save_batch(
        request: Request,
        tenant_id: str,
        batch: list[tuple[dict[str, Any], list[str]]],
        target: Callable[[dict[str, Any], list[Contact]], Contact | None],
        *,
        summarize_errors: bool,
        ids_must_exist: bool = True,
    ) -> Response:
        """Validate and save each item; all-or-nothing unless summarizeErrors=false. (The spec
        gives summarizeErrors a default of false, but Xero's documented behaviour without it,
        and the spec's own 400 example, is to fail the whole batch.)"""
        working = list(state.tenant(tenant_id).contacts.values())
        results: list[tuple[Contact, list[str], dict[str, Any]]] = []
        for item, found in batch:
            problems: list[str] = list(found)
            existing = target(item, working)
            if existing is None and ids_must_exist and item.get("ContactID"):
                problems.append(f"Contact {item['ContactID']} could not be found.")
            base = existing or Contact(
                contact_id=state.new_id(), name="", updated_at=state.clock.now()
            )
            contact = _apply_fields(base, item, problems)
            problems.extend(_conflicts(contact, working))
            if not problems:
                working = [c for c in working if c.contact_id != contact.contact_id] + [contact]
            results.append((contact, problems, item))
        failed = [(c, p, i) for c, p, i in results if p]
        if failed and summarize_errors:
            return errors.accounting_validation(
                [
                    {
                        **item,
                        "ValidationErrors": [{"Message": m} for m in problems],
                        "HasValidationErrors": True,
                    }
                    for _, problems, item in failed
                ]
            )
        answered: list[dict[str, Any]] = []
        for contact, problems, item in results:
            if problems:
                answered.append(
                    {
                        **item,
                        "StatusAttributeString": "ERROR",
                        "ValidationErrors": [{"Message": m} for m in problems],
                        "HasValidationErrors": True,
                    }
                )
                continue
            saved = state.save_contact(tenant_id, contact)
            answered.append(
                {**contact_json(saved), "StatusAttributeString": "OK"}
                if not summarize_errors
                else contact_json(saved)
            )
        return answer(request, answered)

    async def list_contacts(request: Request) -> Response:
        tenant = state.tenant(request.state.tenant_id)
        query = request.query_params
        try:
            accepts_json(request)
            params = validation.read_parameters("getContacts", query, request.headers)
            where: str | None = params.get("where")
            predicate = contact_query.parse_where(where) if where and where.strip() else None
            ids = {value.lower() for value in params.get("IDs", [])}
            term: str | None = params.get("searchTerm")
            include_archived = bool(params.get("includeArchived")) or bool(
                where and contact_query.mentions_status(where)
            )
            summary = bool(params.get("summaryOnly"))
            page: int | None = params.get("page")
            size: int | None = params.get("pageSize")
            since = modified_since(params.get("If-Modified-Since"))
        except Refused as exc:
            return exc.response
        except (contact_query.QueryError, pages.BadParameter) as exc:
            return errors.accounting_error(400, "QueryParseException", str(exc))
        found = [
            c
            for c in tenant.contacts.values()
            if (include_archived or c.status == "ACTIVE")
            and (not ids or c.contact_id in ids)
            and (predicate is None or predicate(c))
            and (not term or contact_query.matches_search(c, term))
            and (since is None or c.updated_at > since)
        ]
        try:
            ordered = contact_query.order_contacts(found, params.get("order"))
        except contact_query.QueryError as exc:
            return errors.accounting_error(400, "QueryParseException", str(exc))
        extra: dict[str, Any] = {}
        window = paging(page, size, forced=summary)
        if window is not None:
            ordered, found_page = pages.paginate(ordered, *window)
            extra["pagination"] = found_page.as_json()
        return answer(request, [contact_json(c, summary=summary) for c in ordered], **extra)

    async def create_contacts(request: Request) -> Response:
        """PUT: create only; a name or contact number already in use is a validation error."""
        try:
            accepts_json(request)
            summarize = summarized(request, "createContacts")
            batch = await items(request, "createContacts")
        except Refused as exc:
            return exc.response
        except pages.BadParameter as exc:
            return errors.accounting_error(400, "QueryParseException", str(exc))

        def nothing(item: dict[str, Any], working: list[Contact]) -> Contact | None:
            return None

        return save_batch(
            request,
            request.state.tenant_id,
            batch,
            nothing,
            summarize_errors=summarize,
            ids_must_exist=False,
        )

    async def upsert_contacts(request: Request) -> Response:
        """POST: update the contact matched by ContactID, ContactNumber or Name, else create."""
        try:
            accepts_json(request)
            summarize = summarized(request, "updateOrCreateContacts")
            batch = await items(request, "updateOrCreateContacts")
        except Refused as exc:
            return exc.response
        except pages.BadParameter as exc:
            return errors.accounting_error(400, "QueryParseException", str(exc))
        return save_batch(
            request, request.state.tenant_id, batch, _match, summarize_errors=summarize
        )

    async def get_contact(request: Request) -> Response:
        try:
            accepts_json(request)
        except Refused as exc:
            return exc.response
        found = lookup(request.state.tenant_id, str(request.path_params["contact_id"]))
        if found is None:
            return not_found()
        return answer(request, [contact_json(found)])

    async def update_contact(request: Request) -> Response:
        tenant_id: str = request.state.tenant_id
        key = str(request.path_params["contact_id"])
        try:
            accepts_json(request)
            if not validation.is_uuid(key):
                raise Refused(errors.accounting_error(404, "NotFoundException", "Unknown id"))
            batch = await items(request, "updateContact")
        except Refused as exc:
            return exc.response
        found = lookup(tenant_id, key)
        if found is None:
            return not_found()

        def this_one(item: dict[str, Any], working: list[Contact]) -> Contact | None:
            return next((c for c in working if c.contact_id == found.contact_id), None)

        return save_batch(request, tenant_id, batch[:1], this_one, summarize_errors=True)

    async def one_contact(request: Request) -> Response:
        handler = get_contact if request.method == "GET" else update_contact
        return await handler(request)

    base = BASE
    return [
        pages.route(f"{base}/Contacts", list_contacts, methods=["GET"]),
        pages.route(f"{base}/Contacts", create_contacts, methods=["PUT"]),
        pages.route(f"{base}/Contacts", upsert_contacts, methods=["POST"]),
        pages.route(f"{base}/Contacts/{{contact_id}}", one_contact, methods=["GET", "POST"]),
    ]


def _match(item: dict[str, Any], working: list[Contact]) -> Contact | None:
    contact_id = item.get("ContactID")
    if isinstance(contact_id, str) and contact_id.strip():
        return next((c for c in working if c.contact_id == contact_id.strip().lower()), None)
    number = item.get("ContactNumber")
    if isinstance(number, str) and number:
        by_number = next((c for c in working if c.contact_number == number), None)
        if by_number is not None:
            return by_number
    name = item.get("Name")
    if isinstance(name, str) and name.strip():
        wanted = contact_query.fold(" ".join(name.split()))
        return next(
            (c for c in working if c.status == "ACTIVE" and contact_query.fold(c.name) == wanted),
            None,
        )
    return None
