"""The CRM port: the little syncd needs from the CRM, as a Protocol and frozen values.

Adapters: `sql.py` (the reference schema, any SQLAlchemy URL) and `memory.py` (an in-memory twin
for unit tests). Every method takes the company, keyword-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from syncd.domain.ids import CompanyId


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmRequest:
    request_id: str
    company_id: str
    client_id: str
    service_id: int
    accountant_id: str | None
    status: str
    description: str | None
    due_date: date | None
    assigned_at: datetime | None
    created_at: datetime
    updated_at: datetime
    xero_job_id: str | None
    xero_job_number: str | None
    xero_synced_at: datetime | None
    xero_sync_error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmPerson:
    """A CRM user: a client (the practice's customer) or an accountant."""

    user_id: str
    company_id: str | None
    email: str
    first_name: str | None
    last_name: str | None
    phone: str | None
    is_active: bool

    @property
    def full_name(self) -> str:
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or self.email


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmService:
    service_id: int
    company_id: str | None  # None: offered by every practice
    name: str
    base_price: Decimal | None


@dataclass(frozen=True, slots=True, order=True)
class ChangeCursor:
    """Where a change feed got to: requests are read in (updated_at, request_id) order."""

    updated_at: datetime
    request_id: str

    def encode(self) -> str:
        return f"{self.updated_at.isoformat()}|{self.request_id}"

    @classmethod
    def decode(cls, text: str) -> ChangeCursor:
        stamp, _, request_id = text.partition("|")
        return cls(datetime.fromisoformat(stamp), request_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusWrite:
    """The outcome of a compare-and-set status write."""

    applied: bool
    current: str | None  # the status the request has now (None: no such request)
    updated_at: datetime | None


class CrmPort(Protocol):
    async def changed_requests(
        self, *, company: CompanyId, after: ChangeCursor | None, limit: int
    ) -> list[CrmRequest]:
        """Requests changed after the cursor, oldest first, in (updated_at, request_id) order."""
        ...

    async def get_request(self, *, company: CompanyId, request_id: str) -> CrmRequest | None: ...

    async def list_requests(
        self, *, company: CompanyId, statuses: Sequence[str] | None = None
    ) -> list[CrmRequest]: ...

    async def get_client(self, *, company: CompanyId, client_id: str) -> CrmPerson | None: ...

    async def list_clients(self, *, company: CompanyId) -> list[CrmPerson]: ...

    async def list_accountants(self, *, company: CompanyId) -> list[CrmPerson]: ...

    async def get_service(self, *, company: CompanyId, service_id: int) -> CrmService | None: ...

    async def list_services(self, *, company: CompanyId) -> list[CrmService]:
        """The practice's services and the ones every practice offers."""
        ...

    async def apply_status(
        self, *, company: CompanyId, request_id: str, status: str, expected: str, now: datetime
    ) -> StatusWrite:
        """Set the status only if it is still `expected` (no lost update); bumps updated_at."""
        ...

    async def apply_due_date(
        self,
        *,
        company: CompanyId,
        request_id: str,
        due_date: date | None,
        expected: date | None,
        now: datetime,
    ) -> bool:
        """Set the due date only if it is still `expected`; bumps updated_at. Applied?"""
        ...

    async def apply_accountant(
        self,
        *,
        company: CompanyId,
        request_id: str,
        accountant_id: str,
        expected: str | None,
        now: datetime,
    ) -> bool:
        """Assign the request to `accountant_id` (one of the practice's accountants)
        only if it is still assigned to `expected`; bumps updated_at. Applied?"""
        ...

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
        """Record the Xero job on the request. Integration columns only: updated_at is left
        alone, so syncd's own bookkeeping never shows up in the change feed."""
        ...
