"""An in-memory twin of the SQL CRM adapter, for unit tests of syncd's handlers.

It answers every `CrmPort` call exactly as `SqlCrm` does over the reference schema (the shared
suite in tests/crm runs against both), and adds what the CRM application itself does: seeding
companies, people, services and requests, and changing a status as a user would. `writes` logs
every status write syncd attempted, `write_backs` every job write-back. Imports `syncd.crm`,
`syncd.domain` and `syncd.clock`.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from syncd.clock import ensure_aware
from syncd.crm.port import ChangeCursor, CrmPerson, CrmRequest, CrmService, StatusWrite
from syncd.crm.sql import require_company, require_status
from syncd.domain.ids import CompanyId

Role = Literal["super_admin", "practice_admin", "accountant", "client"]
CENTS = Decimal("0.01")  # NUMERIC(12, 2), rounded as PostgreSQL does


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusWriteAttempt:
    """One `apply_status` call syncd made, and whether it changed the request."""

    company: CompanyId
    request_id: str
    status: str
    expected: str
    at: datetime
    applied: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteBack:
    """One `write_back` call syncd made (`found`: the company had the request)."""

    company: CompanyId
    request_id: str
    job_id: str | None
    job_number: str | None
    synced_at: datetime | None
    error: str | None
    found: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _User:
    person: CrmPerson
    role: Role


def _stamp(value: datetime | None) -> datetime | None:
    return None if value is None else ensure_aware(value)


class MemoryCrm:
    """`CrmPort` in memory, plus the CRM application's own actions for seeding tests."""

    def __init__(self) -> None:
        self.companies: dict[str, str] = {}
        self._users: dict[str, _User] = {}
        self._services: dict[int, CrmService] = {}
        self._requests: dict[str, CrmRequest] = {}
        self.writes: list[StatusWriteAttempt] = []
        self.write_backs: list[WriteBack] = []

    @property
    def applied_writes(self) -> list[StatusWriteAttempt]:
        """The status writes that changed a request."""
        return [write for write in self.writes if write.applied]

    # -- the CRM application's side (seeding) -----------------------------------------------

    def add_company(self, *, name: str, company_id: str | None = None) -> CompanyId:
        company = company_id or str(uuid.uuid4())
        if company in self.companies:
            raise ValueError(f"company {company!r} exists")
        self.companies[company] = name
        return CompanyId(company)

    def add_person(
        self,
        *,
        company: CompanyId | None,
        role: Role,
        email: str,
        first_name: str | None = None,
        last_name: str | None = None,
        phone: str | None = None,
        is_active: bool = True,
        user_id: str | None = None,
    ) -> str:
        """A CRM user (client, accountant, practice admin; a super admin has no company)."""
        if company is not None:
            self._require_company_row(company)
        user = user_id or str(uuid.uuid4())
        if user in self._users:
            raise ValueError(f"user {user!r} exists")
        person = CrmPerson(
            user_id=user,
            company_id=company,
            email=email,
            first_name=first_name,
            last_name=last_name,
            phone=phone,
            is_active=is_active,
        )
        self._users[user] = _User(person=person, role=role)
        return user

    def update_person(
        self,
        *,
        company: CompanyId,
        user_id: str,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
    ) -> None:
        """Edit a CRM user's details as the CRM app would (None: unchanged)."""
        user = self._users.get(user_id)
        if user is None or user.person.company_id != company:
            raise ValueError(f"company {company!r} has no user {user_id!r}")
        person = user.person
        changed = dataclasses.replace(
            person,
            first_name=first_name if first_name is not None else person.first_name,
            last_name=last_name if last_name is not None else person.last_name,
            email=email if email is not None else person.email,
        )
        self._users[user_id] = _User(person=changed, role=user.role)

    def add_service(
        self, *, company: CompanyId | None, name: str, base_price: Decimal | None = None
    ) -> int:
        """A service of one practice, or of every practice (`company` None). Ids count up."""
        if company is not None:
            self._require_company_row(company)
        service_id = max(self._services, default=0) + 1
        price = None if base_price is None else base_price.quantize(CENTS, ROUND_HALF_UP)
        self._services[service_id] = CrmService(
            service_id=service_id, company_id=company, name=name, base_price=price
        )
        return service_id

    def add_request(
        self,
        *,
        company: CompanyId,
        client_id: str,
        service_id: int,
        now: datetime,
        status: str = "pending",
        accountant_id: str | None = None,
        assigned_at: datetime | None = None,
        description: str | None = None,
        due_date: date | None = None,
        request_id: str | None = None,
    ) -> str:
        """A new service request, created (and last updated) at `now`."""
        self._require_company_row(company)
        stamp = ensure_aware(now)
        if client_id not in self._users:
            raise ValueError(f"no user {client_id!r}")
        if service_id not in self._services:
            raise ValueError(f"no service {service_id!r}")
        if accountant_id is not None and accountant_id not in self._users:
            raise ValueError(f"no user {accountant_id!r}")
        request = request_id or str(uuid.uuid4())
        if request in self._requests:
            raise ValueError(f"request {request!r} exists")
        self._requests[request] = CrmRequest(
            request_id=request,
            company_id=company,
            client_id=client_id,
            service_id=service_id,
            accountant_id=accountant_id,
            status=require_status(status),
            description=description,
            due_date=due_date,
            assigned_at=_stamp(assigned_at),
            created_at=stamp,
            updated_at=stamp,
            xero_job_id=None,
            xero_job_number=None,
            xero_synced_at=None,
            xero_sync_error=None,
        )
        return request

    def set_status(
        self, *, company: CompanyId, request_id: str, status: str, now: datetime
    ) -> CrmRequest:
        """What the CRM does when a user changes a status: no compare, bumps updated_at."""
        target, stamp = require_status(status), ensure_aware(now)
        request = self._require_request(company, request_id)
        changed = dataclasses.replace(request, status=target, updated_at=stamp)
        self._requests[request_id] = changed
        return changed

    def assign(
        self, *, company: CompanyId, request_id: str, accountant_id: str, now: datetime
    ) -> CrmRequest:
        """What the CRM does when an admin assigns a request to an accountant."""
        stamp = ensure_aware(now)
        user = self._users.get(accountant_id)
        if user is None or user.role != "accountant" or user.person.company_id != company:
            raise ValueError(f"company {company!r} has no accountant {accountant_id!r}")
        request = self._require_request(company, request_id)
        changed = dataclasses.replace(
            request,
            status="assigned",
            accountant_id=accountant_id,
            assigned_at=stamp,
            updated_at=stamp,
        )
        self._requests[request_id] = changed
        return changed

    def _require_company_row(self, company: CompanyId) -> None:
        if company not in self.companies:
            raise ValueError(f"no company {company!r}")

    def peek(self, *, company: CompanyId, request_id: str) -> CrmRequest:
        """The request as stored now, synchronously (tests inspect the twin with it)."""
        return self._require_request(company, request_id)

    def _require_request(self, company: CompanyId, request_id: str) -> CrmRequest:
        request = self._requests.get(request_id)
        if request is None or request.company_id != require_company(company):
            raise LookupError(f"company {company!r} has no request {request_id!r}")
        return request

    # -- CrmPort ---------------------------------------------------------------------------

    def _company_requests(self, company: CompanyId) -> list[CrmRequest]:
        require_company(company)
        return [r for r in self._requests.values() if r.company_id == company]

    async def changed_requests(
        self, *, company: CompanyId, after: ChangeCursor | None, limit: int
    ) -> list[CrmRequest]:
        """Requests changed after the cursor, oldest first, in (updated_at, request_id) order."""
        if limit < 1:
            raise ValueError(f"limit must be positive, not {limit}")
        found = self._company_requests(company)
        if after is not None:
            cursor = (ensure_aware(after.updated_at), after.request_id)
            found = [r for r in found if (r.updated_at, r.request_id) > cursor]
        found.sort(key=lambda r: (r.updated_at, r.request_id))
        return found[:limit]

    async def get_request(self, *, company: CompanyId, request_id: str) -> CrmRequest | None:
        request = self._requests.get(request_id)
        if request is None or request.company_id != require_company(company):
            return None
        return request

    async def list_requests(
        self, *, company: CompanyId, statuses: Sequence[str] | None = None
    ) -> list[CrmRequest]:
        """The company's requests (optionally only those in `statuses`), oldest first."""
        found = self._company_requests(company)
        if statuses is not None:
            wanted = set(statuses)
            found = [r for r in found if r.status in wanted]
        found.sort(key=lambda r: (r.created_at, r.request_id))
        return found

    def _people(self, company: CompanyId, role: Role) -> list[CrmPerson]:
        require_company(company)
        found = [
            u.person
            for u in self._users.values()
            if u.role == role and u.person.company_id == company
        ]
        return sorted(found, key=lambda p: p.user_id)

    async def get_client(self, *, company: CompanyId, client_id: str) -> CrmPerson | None:
        user = self._users.get(client_id)
        if user is None or user.role != "client":
            return None
        return user.person if user.person.company_id == require_company(company) else None

    async def list_clients(self, *, company: CompanyId) -> list[CrmPerson]:
        """The company's clients, active or not, by user id."""
        return self._people(company, "client")

    async def list_accountants(self, *, company: CompanyId) -> list[CrmPerson]:
        """The company's accountants, active or not, by user id."""
        return self._people(company, "accountant")

    async def get_service(self, *, company: CompanyId, service_id: int) -> CrmService | None:
        service = self._services.get(service_id)
        if service is None or service.company_id not in (require_company(company), None):
            return None
        return service

    async def list_services(self, *, company: CompanyId) -> list[CrmService]:
        """The practice's services and the ones every practice offers, by service id."""
        require_company(company)
        return [s for _, s in sorted(self._services.items()) if s.company_id in (company, None)]

    async def apply_status(
        self, *, company: CompanyId, request_id: str, status: str, expected: str, now: datetime
    ) -> StatusWrite:
        """Set the status only if it is still `expected` (no lost update); bumps updated_at."""
        stamp = ensure_aware(now)
        target = require_status(status)
        require_status(expected)
        request = await self.get_request(company=company, request_id=request_id)
        applied = request is not None and request.status == expected
        self.writes.append(
            StatusWriteAttempt(
                company=company,
                request_id=request_id,
                status=target,
                expected=expected,
                at=stamp,
                applied=applied,
            )
        )
        if request is None:
            return StatusWrite(applied=False, current=None, updated_at=None)
        if not applied:
            return StatusWrite(applied=False, current=request.status, updated_at=request.updated_at)
        self._requests[request_id] = dataclasses.replace(request, status=target, updated_at=stamp)
        return StatusWrite(applied=True, current=target, updated_at=stamp)

    async def apply_due_date(
        self,
        *,
        company: CompanyId,
        request_id: str,
        due_date: date | None,
        expected: date | None,
        now: datetime,
    ) -> bool:
        request = await self.get_request(company=company, request_id=request_id)
        if request is None or request.due_date != expected:
            return False
        self._requests[request_id] = dataclasses.replace(
            request, due_date=due_date, updated_at=ensure_aware(now)
        )
        return True

    async def apply_accountant(
        self,
        *,
        company: CompanyId,
        request_id: str,
        accountant_id: str,
        expected: str | None,
        now: datetime,
    ) -> bool:
        if accountant_id not in {p.user_id for p in await self.list_accountants(company=company)}:
            raise ValueError(f"{accountant_id} is not an accountant of practice {company}")
        request = await self.get_request(company=company, request_id=request_id)
        if request is None or request.accountant_id != expected:
            return False
        self._requests[request_id] = dataclasses.replace(
            request, accountant_id=accountant_id, updated_at=ensure_aware(now)
        )
        return True

    async def write_back(
        self,
        *,
        company: CompanyId,
        request_id: str,
        job_id: str | None,
        job_number: str | None,
        synced_at: datetime | None,
        error: str | None,
    ) -> None:
        """Record the Xero job on the request: the integration columns only, never updated_at.
        A request the company does not have is left alone."""
        stamp = _stamp(synced_at)
        request = await self.get_request(company=company, request_id=request_id)
        self.write_backs.append(
            WriteBack(
                company=company,
                request_id=request_id,
                job_id=job_id,
                job_number=job_number,
                synced_at=stamp,
                error=error,
                found=request is not None,
            )
        )
        if request is not None:
            self._requests[request_id] = dataclasses.replace(
                request,
                xero_job_id=job_id,
                xero_job_number=job_number,
                xero_synced_at=stamp,
                xero_sync_error=error,
            )
