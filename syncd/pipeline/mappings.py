"""The three mappings as admins see and change them: CRM accountants beside Xero staff, services
beside job templates, clients beside contacts — with suggestions (by email, then name) marked as
such until saved, conflicts shown, and saves that check every id against Xero first and write all
rows or none.

Used by the mapping API and the admin pages alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from syncd.crm.port import CrmPort
from syncd.domain.backends import CAPABILITIES, Backend
from syncd.domain.ids import CompanyId
from syncd.domain.suggestions import Candidate, Suggestion, SuggestionIndex, conflicts
from syncd.domain.tasks import set_job_manager
from syncd.pipeline.outbox import enqueue, new_task
from syncd.services import Services, XeroSide
from syncd.store.connections import ConnectionRepository
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import (
    ContactMappingRepository,
    ServiceMappingRepository,
    StaffMappingRepository,
)
from syncd.xero.jobs import JobBackend


class MappingInvalid(Exception):
    """Rows that cannot be saved; nothing was written. Each row says which and why."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(rows)} row(s) cannot be saved")
        self.rows = rows


class NotConnected(Exception):
    """The practice has no active Xero connection to map against."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    crm_id: str
    name: str
    email: str | None
    mapped: Candidate | None
    suggestion: Suggestion | None
    detail: str | None = None  # e.g. "2 open requests", "archived in Xero"


@dataclass(frozen=True, slots=True, kw_only=True)
class MappingView:
    backend: str
    rows: list[Row]
    candidates: list[Candidate]
    available: bool = True  # False: this backend has no such records (Projects: templates)
    message: str | None = None
    conflicts: dict[str, list[str]] = field(default_factory=dict)


def _xero(services: Services) -> XeroSide:
    return services.require_xero()


def _crm(services: Services) -> CrmPort:
    if services.crm is None:
        raise NotConnected("no CRM is configured (SYNCD_CRM_DATABASE_URL)")
    return services.crm


async def _backend(services: Services, company: CompanyId) -> str:
    async with services.db.transaction() as session:
        connection = await ConnectionRepository(session).get_active(company=company)
    if connection is None:
        raise NotConnected("this practice is not connected to Xero: connect it first")
    return connection.backend


def _jobs(services: Services, backend: str) -> JobBackend:
    return _xero(services).backends.of(Backend(backend))


async def staff_candidates(services: Services, company: CompanyId, backend: str) -> list[Candidate]:
    """Practice Manager staff, or the Projects users who stand in for them."""
    return [
        Candidate(xero_id=s.staff_id, name=s.name, email=s.email)
        for s in await _jobs(services, backend).staff(company)
    ]


async def template_candidates(
    services: Services, company: CompanyId, backend: str
) -> list[Candidate] | None:
    """None: the backend has no job templates (Xero Projects)."""
    templates = await _jobs(services, backend).templates(company)
    if templates is None:
        return None
    return [Candidate(xero_id=t.choice_id, name=t.name, email=None) for t in templates]


async def contact_candidates(
    services: Services, company: CompanyId, backend: str
) -> list[Candidate]:
    """Accounting contacts (Projects) or Practice Manager clients, archived ones left out."""
    clients = await _jobs(services, backend).clients(company, include_archived=False)
    return [Candidate(xero_id=c.client_id, name=c.name, email=c.email) for c in clients]


# -- views -----------------------------------------------------------------------------------


async def staff_view(services: Services, company: CompanyId) -> MappingView:
    backend = await _backend(services, company)
    candidates = await staff_candidates(services, company, backend)
    people = await _crm(services).list_accountants(company=company)
    async with services.db.transaction() as session:
        saved = {
            m.crm_user_id: m for m in await StaffMappingRepository(session).list(company=company)
        }
    by_id = {c.xero_id: c for c in candidates}
    index = SuggestionIndex(candidates)
    rows = []
    for person in people:
        mapping = saved.get(person.user_id)
        mapped = None
        if mapping is not None:
            mapped = by_id.get(mapping.xero_staff_id) or Candidate(
                xero_id=mapping.xero_staff_id, name=mapping.xero_staff_name or "?", email=None
            )
        rows.append(
            Row(
                crm_id=person.user_id,
                name=person.full_name,
                email=person.email,
                mapped=mapped,
                suggestion=None
                if mapped
                else index.suggest(name=person.full_name, email=person.email),
                detail=None if person.is_active else "inactive in the CRM",
            )
        )
    return MappingView(backend=backend, rows=rows, candidates=candidates)


async def service_view(services: Services, company: CompanyId) -> MappingView:
    backend = await _backend(services, company)
    templates = await template_candidates(services, company, backend)
    offered = await _crm(services).list_services(company=company)
    async with services.db.transaction() as session:
        saved = {
            m.crm_service_id: m
            for m in await ServiceMappingRepository(session).list(company=company)
        }
    by_id = {c.xero_id: c for c in templates or []}
    index = SuggestionIndex(templates or [])
    rows = []
    for service in offered:
        mapping = saved.get(service.service_id)
        mapped = None
        if mapping is not None:
            mapped = by_id.get(mapping.xero_template_id) or Candidate(
                xero_id=mapping.xero_template_id,
                name=mapping.xero_template_name or "?",
                email=None,
            )
        rows.append(
            Row(
                crm_id=str(service.service_id),
                name=service.name,
                email=None,
                mapped=mapped,
                suggestion=None
                if mapped or templates is None
                else index.suggest(name=service.name, email=None),
            )
        )
    if templates is None:
        return MappingView(
            backend=backend,
            rows=rows,
            candidates=[],
            available=False,
            message="Xero Projects has no job templates: jobs are created without one. "
            "Service-to-template mapping applies to Xero Practice Manager practices.",
        )
    return MappingView(backend=backend, rows=rows, candidates=templates)


async def contact_view(services: Services, company: CompanyId) -> MappingView:
    backend = await _backend(services, company)
    candidates = await contact_candidates(services, company, backend)
    clients = await _crm(services).list_clients(company=company)
    async with services.db.transaction() as session:
        saved = {
            m.crm_client_id: m
            for m in await ContactMappingRepository(session).list(company=company)
        }
    by_id = {c.xero_id: c for c in candidates}
    index = SuggestionIndex(candidates)
    rows = []
    for client in clients:
        mapping = saved.get(client.user_id)
        mapped, detail = None, None
        if mapping is not None:
            mapped = by_id.get(mapping.xero_contact_id) or Candidate(
                xero_id=mapping.xero_contact_id, name=mapping.xero_contact_name or "?", email=None
            )
            if mapping.archived or mapping.xero_contact_id not in by_id:
                detail = "archived or missing in Xero"
        rows.append(
            Row(
                crm_id=client.user_id,
                name=client.full_name,
                email=client.email,
                mapped=mapped,
                suggestion=None
                if mapped
                else index.suggest(name=client.full_name, email=client.email),
                detail=detail,
            )
        )
    return MappingView(
        backend=backend,
        rows=rows,
        candidates=candidates,
        conflicts=conflicts({cid: m.xero_contact_id for cid, m in saved.items()}),
    )


# -- saving ----------------------------------------------------------------------------------


def _changes(raw: Any, crm_field: str, xero_field: str) -> list[tuple[int, str, str | None]]:
    if not isinstance(raw, list) or not raw:
        raise MappingInvalid([{"problem": 'send {"mappings": [ ... ]} with at least one row'}])
    rows, problems = [], []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append({"index": index, "problem": "each row must be an object"})
            continue
        crm_id, xero_id = item.get(crm_field), item.get(xero_field)
        if not isinstance(crm_id, str | int) or crm_id == "":
            problems.append({"index": index, "problem": f"{crm_field} is required"})
            continue
        if xero_id is not None and (not isinstance(xero_id, str) or not xero_id):
            problems.append(
                {
                    "index": index,
                    crm_field: crm_id,
                    "problem": f"{xero_field} must be an id or null (to unmap)",
                }
            )
            continue
        rows.append((index, str(crm_id), xero_id))
    if problems:
        raise MappingInvalid(problems)
    return rows


def _check(
    rows: Sequence[tuple[int, str, str | None]],
    crm_ids: set[str],
    xero: dict[str, Candidate],
    crm_field: str,
    xero_field: str,
    what: str,
) -> None:
    problems = []
    for index, crm_id, xero_id in rows:
        if crm_id not in crm_ids:
            problems.append(
                {
                    "index": index,
                    crm_field: crm_id,
                    "problem": f"no such {what} in this practice's CRM",
                }
            )
        elif xero_id is not None and xero_id not in xero:
            problems.append(
                {
                    "index": index,
                    crm_field: crm_id,
                    xero_field: xero_id,
                    "problem": "no such record in Xero",
                }
            )
    if problems:
        raise MappingInvalid(problems)


async def _store_staff(
    session: AsyncSession, company: CompanyId, crm_id: str, chosen: Candidate | None, now: datetime
) -> None:
    repository = StaffMappingRepository(session)
    if chosen is None:
        await repository.remove(company=company, user_id=crm_id)
    else:
        await repository.save(
            company=company,
            user_id=crm_id,
            staff_id=chosen.xero_id,
            staff_name=chosen.name,
            now=now,
        )


async def _store_service(
    session: AsyncSession, company: CompanyId, crm_id: str, chosen: Candidate | None, now: datetime
) -> None:
    repository = ServiceMappingRepository(session)
    if chosen is None:
        await repository.remove(company=company, service_id=int(crm_id))
    else:
        await repository.save(
            company=company,
            service_id=int(crm_id),
            template_id=chosen.xero_id,
            template_name=chosen.name,
            now=now,
        )


async def _store_contact(
    session: AsyncSession, company: CompanyId, crm_id: str, chosen: Candidate | None, now: datetime
) -> None:
    repository = ContactMappingRepository(session)
    if chosen is None:
        await repository.remove(company=company, client_id=crm_id)
    else:
        await repository.save(
            company=company,
            client_id=crm_id,
            contact_id=chosen.xero_id,
            contact_name=chosen.name,
            auto_created=False,
            now=now,
        )


async def _accountant_ids(crm: CrmPort, company: CompanyId) -> set[str]:
    return {p.user_id for p in await crm.list_accountants(company=company)}


async def _service_ids(crm: CrmPort, company: CompanyId) -> set[str]:
    return {str(s.service_id) for s in await crm.list_services(company=company)}


async def _client_ids(crm: CrmPort, company: CompanyId) -> set[str]:
    return {p.user_id for p in await crm.list_clients(company=company)}


@dataclass(frozen=True, slots=True)
class Kind:
    """What differs between the three mappings when saving."""

    crm_field: str
    xero_field: str
    what: str
    candidates: Callable[[Services, CompanyId, str], Awaitable[list[Candidate] | None]]
    crm_ids: Callable[[CrmPort, CompanyId], Awaitable[set[str]]]
    store: Callable[[AsyncSession, CompanyId, str, Candidate | None, datetime], Awaitable[None]]


STAFF = Kind(
    "accountant_id", "staff_id", "accountant", staff_candidates, _accountant_ids, _store_staff
)
SERVICES = Kind(
    "service_id", "template_id", "service", template_candidates, _service_ids, _store_service
)
CONTACTS = Kind(
    "client_id", "contact_id", "client", contact_candidates, _client_ids, _store_contact
)


async def save(services: Services, company: CompanyId, raw: Any, kind: Kind) -> None:
    """Check every row against the CRM and Xero, then write them all in one transaction."""
    rows = _changes(raw, kind.crm_field, kind.xero_field)
    backend = await _backend(services, company)
    found = await kind.candidates(services, company, backend)
    if found is None and any(xero_id is not None for _, _, xero_id in rows):
        raise MappingInvalid(
            [
                {
                    "problem": "this practice's Xero backend (Projects) has no "
                    f"{kind.xero_field.removesuffix('_id')}s to map to"
                }
            ]
        )
    by_id = {c.xero_id: c for c in found or []}
    crm_ids = await kind.crm_ids(_crm(services), company)
    _check(rows, crm_ids, by_id, kind.crm_field, kind.xero_field, kind.what)
    now = services.clock.now()
    async with services.db.transaction() as session:
        for _, crm_id, xero_id in rows:
            await kind.store(session, company, crm_id, by_id[xero_id] if xero_id else None, now)
        if kind is STAFF and CAPABILITIES[Backend(backend)].managers:
            await _reassign_managers(session, company, rows, now)


async def _reassign_managers(
    session: AsyncSession,
    company: CompanyId,
    rows: Sequence[tuple[int, str, str | None]],
    now: datetime,
) -> None:
    """An accountant newly mapped (or mapped to someone else) becomes the manager of the jobs
    syncd has for them: a manager task per job whose manager differs, in the mapping's
    transaction."""
    for _, accountant, staff_id in rows:
        if staff_id is None:
            continue
        for link in await JobLinkRepository(session).for_manager(
            company=company, accountant_id=accountant
        ):
            if link.xero_manager_written != staff_id or link.xero_manager_seen != staff_id:
                spec = set_job_manager(
                    link.request_id, accountant, f"mapped-{staff_id}-{int(now.timestamp())}"
                )
                await enqueue(session, new_task(company, spec), now=now)


async def save_staff(services: Services, company: CompanyId, raw: Any) -> None:
    await save(services, company, raw, STAFF)


async def save_services(services: Services, company: CompanyId, raw: Any) -> None:
    await save(services, company, raw, SERVICES)


async def save_contacts(services: Services, company: CompanyId, raw: Any) -> None:
    await save(services, company, raw, CONTACTS)


def view_json(view: MappingView, crm_field: str, xero_field: str) -> dict[str, Any]:
    def candidate(c: Candidate | None) -> dict[str, Any] | None:
        return None if c is None else {"id": c.xero_id, "name": c.name, "email": c.email}

    return {
        "backend": view.backend,
        "available": view.available,
        "message": view.message,
        "items": [
            {
                crm_field: row.crm_id,
                "name": row.name,
                "email": row.email,
                "mapped": candidate(row.mapped),
                "suggestion": None
                if row.suggestion is None
                else {
                    xero_field: row.suggestion.xero_id,
                    "name": row.suggestion.name,
                    "reason": row.suggestion.reason,
                    "suggested": True,
                },
                "detail": row.detail,
            }
            for row in view.rows
        ],
        "xero": [candidate(c) for c in view.candidates],
        "conflicts": [
            {xero_field: target, f"{crm_field}s": people}
            for target, people in view.conflicts.items()
        ],
    }
