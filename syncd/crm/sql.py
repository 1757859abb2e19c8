"""The SQL CRM adapter: `CrmPort` over the CRM's own database (the reference schema), any
SQLAlchemy URL.

Every statement is scoped by the company; the CRM's naive UTC timestamps become aware UTC on the
way out (`schema.NaiveUTCDateTime`). Imports `syncd.crm`, `syncd.store.db`, `syncd.domain`,
`syncd.clock` and `syncd.settings` (URL normalisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from syncd.clock import ensure_aware
from syncd.crm.port import ChangeCursor, CrmPerson, CrmRequest, CrmService, StatusWrite
from syncd.crm.schema import roles, service_requests, services, users
from syncd.domain.ids import CompanyId
from syncd.domain.statuses import CrmStatus
from syncd.settings import database_url
from syncd.store.db import create_engine

_REQUEST_COLUMNS = (
    service_requests.c.id,
    service_requests.c.company_id,
    service_requests.c.user_id,
    service_requests.c.service_id,
    service_requests.c.assigned_to_id,
    service_requests.c.status,
    service_requests.c.description,
    service_requests.c.due_date,
    service_requests.c.assigned_at,
    service_requests.c.created_at,
    service_requests.c.updated_at,
    service_requests.c.xero_job_id,
    service_requests.c.xero_job_number,
    service_requests.c.xero_synced_at,
    service_requests.c.xero_sync_error,
)
_PERSON_COLUMNS = (
    users.c.id,
    users.c.company_id,
    users.c.email,
    users.c.first_name,
    users.c.last_name,
    users.c.phone,
    users.c.is_active,
)


def require_company(company: CompanyId) -> CompanyId:
    if not company:
        raise ValueError("a company is required for every CRM query")
    return company


def require_status(status: str) -> str:
    """A CRM status, or ValueError: the CRM's status column takes nothing else."""
    return CrmStatus(status).value


def _text_order(column: ColumnElement[str], byte_order: bool) -> ColumnElement[str]:
    # PostgreSQL orders text by the database's collation; "C" is byte order, the order Python
    # (and SQLite) give the same ids, so the change feed means the same everywhere.
    return column.collate("C") if byte_order else column


def scoped_requests(company: CompanyId) -> Select[Any]:
    return select(*_REQUEST_COLUMNS).where(
        service_requests.c.company_id == require_company(company)
    )


def change_feed(
    *, company: CompanyId, after: ChangeCursor | None, limit: int, byte_order: bool
) -> Select[Any]:
    """The company's requests strictly after the cursor in (updated_at, id) order, `limit` of
    them. `byte_order` (PostgreSQL) compares ids as bytes, like Python and SQLite."""
    if limit < 1:
        raise ValueError(f"limit must be positive, not {limit}")
    request_id = _text_order(service_requests.c.id, byte_order)
    statement = scoped_requests(company)
    if after is not None:
        stamp = ensure_aware(after.updated_at)
        # The leading `updated_at >= t` is the range the (company_id, updated_at) index serves.
        statement = statement.where(
            service_requests.c.updated_at >= stamp,
            or_(service_requests.c.updated_at > stamp, request_id > after.request_id),
        )
    return statement.order_by(service_requests.c.updated_at, request_id).limit(limit)


class SqlCrm:
    """`CrmPort` over the reference schema. One short transaction per call."""

    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_engine(database_url(url))
        self._byte_order = self.engine.dialect.name == "postgresql"

    async def dispose(self) -> None:
        await self.engine.dispose()

    # -- requests --------------------------------------------------------------------------

    async def changed_requests(
        self, *, company: CompanyId, after: ChangeCursor | None, limit: int
    ) -> list[CrmRequest]:
        """Requests changed after the cursor, oldest first, in (updated_at, request_id) order."""
        return await self._fetch_requests(
            change_feed(company=company, after=after, limit=limit, byte_order=self._byte_order)
        )

    async def get_request(self, *, company: CompanyId, request_id: str) -> CrmRequest | None:
        found = await self._fetch_requests(
            scoped_requests(company).where(service_requests.c.id == request_id)
        )
        return found[0] if found else None

    async def list_requests(
        self, *, company: CompanyId, statuses: Sequence[str] | None = None
    ) -> list[CrmRequest]:
        """The company's requests (optionally only those in `statuses`), oldest first."""
        statement = scoped_requests(company)
        if statuses is not None:
            if not statuses:
                return []
            statement = statement.where(service_requests.c.status.in_(list(statuses)))
        statement = statement.order_by(
            service_requests.c.created_at, _text_order(service_requests.c.id, self._byte_order)
        )
        return await self._fetch_requests(statement)

    async def _fetch_requests(self, statement: Select[Any]) -> list[CrmRequest]:
        async with self.engine.begin() as connection:
            rows = (await connection.execute(statement)).all()
        return [_request(row) for row in rows]

    # -- people ----------------------------------------------------------------------------

    def _people(self, company: CompanyId, role: str) -> Select[Any]:
        return (
            select(*_PERSON_COLUMNS)
            .join(roles, roles.c.id == users.c.role_id)
            .where(users.c.company_id == require_company(company), roles.c.name == role)
        )

    async def _fetch_people(self, statement: Select[Any]) -> list[CrmPerson]:
        async with self.engine.begin() as connection:
            rows = (await connection.execute(statement)).all()
        return [_person(row) for row in rows]

    async def get_client(self, *, company: CompanyId, client_id: str) -> CrmPerson | None:
        found = await self._fetch_people(
            self._people(company, "client").where(users.c.id == client_id)
        )
        return found[0] if found else None

    async def list_clients(self, *, company: CompanyId) -> list[CrmPerson]:
        """The company's clients, active or not, by user id."""
        return await self._fetch_people(
            self._people(company, "client").order_by(_text_order(users.c.id, self._byte_order))
        )

    async def list_accountants(self, *, company: CompanyId) -> list[CrmPerson]:
        """The company's accountants, active or not, by user id."""
        return await self._fetch_people(
            self._people(company, "accountant").order_by(_text_order(users.c.id, self._byte_order))
        )

    # -- services --------------------------------------------------------------------------

    def _services(self, company: CompanyId) -> Select[Any]:
        return select(
            services.c.id, services.c.company_id, services.c.name, services.c.base_price
        ).where(
            or_(services.c.company_id == require_company(company), services.c.company_id.is_(None))
        )

    async def get_service(self, *, company: CompanyId, service_id: int) -> CrmService | None:
        async with self.engine.begin() as connection:
            row = (
                await connection.execute(self._services(company).where(services.c.id == service_id))
            ).first()
        return None if row is None else _service(row)

    async def list_services(self, *, company: CompanyId) -> list[CrmService]:
        """The practice's services and the ones every practice offers, by service id."""
        async with self.engine.begin() as connection:
            rows = (await connection.execute(self._services(company).order_by(services.c.id))).all()
        return [_service(row) for row in rows]

    # -- writes ----------------------------------------------------------------------------

    async def apply_status(
        self, *, company: CompanyId, request_id: str, status: str, expected: str, now: datetime
    ) -> StatusWrite:
        """Set the status only if it is still `expected` (no lost update); bumps updated_at.

        One conditional UPDATE: it either applies whole or not at all. When it does not, the
        answer says what the request holds now (`current` None: the company has no such
        request).
        """
        stamp = ensure_aware(now)
        target = require_status(status)
        require_status(expected)
        where = and_(
            service_requests.c.id == request_id,
            service_requests.c.company_id == require_company(company),
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(service_requests)
                .where(where, service_requests.c.status == expected)
                .values(status=target, updated_at=stamp)
            )
            if result.rowcount == 1:
                return StatusWrite(applied=True, current=target, updated_at=stamp)
            row = (
                await connection.execute(
                    select(service_requests.c.status, service_requests.c.updated_at).where(where)
                )
            ).first()
        if row is None:
            return StatusWrite(applied=False, current=None, updated_at=None)
        return StatusWrite(applied=False, current=row.status, updated_at=row.updated_at)

    async def apply_due_date(
        self,
        *,
        company: CompanyId,
        request_id: str,
        due_date: date | None,
        expected: date | None,
        now: datetime,
    ) -> bool:
        column = service_requests.c.due_date
        unchanged = column.is_(None) if expected is None else column == expected
        return await self._compare_and_set(
            company, request_id, unchanged, {"due_date": due_date}, now
        )

    async def apply_accountant(
        self,
        *,
        company: CompanyId,
        request_id: str,
        accountant_id: str,
        expected: str | None,
        now: datetime,
    ) -> bool:
        column = service_requests.c.assigned_to_id
        unchanged = column.is_(None) if expected is None else column == expected
        accountants = [p.user_id for p in await self.list_accountants(company=company)]
        if accountant_id not in accountants:
            raise ValueError(f"{accountant_id} is not an accountant of practice {company}")
        return await self._compare_and_set(
            company, request_id, unchanged, {"assigned_to_id": accountant_id}, now
        )

    async def _compare_and_set(
        self,
        company: CompanyId,
        request_id: str,
        unchanged: ColumnElement[bool],
        values: dict[str, Any],
        now: datetime,
    ) -> bool:
        """One conditional UPDATE of the company's request: whole or not at all."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(service_requests)
                .where(
                    service_requests.c.id == request_id,
                    service_requests.c.company_id == require_company(company),
                    unchanged,
                )
                .values(**values, updated_at=ensure_aware(now))
            )
        return bool(result.rowcount == 1)

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
        stamp = None if synced_at is None else ensure_aware(synced_at)
        async with self.engine.begin() as connection:
            await connection.execute(
                update(service_requests)
                .where(
                    service_requests.c.id == request_id,
                    service_requests.c.company_id == require_company(company),
                )
                .values(
                    xero_job_id=job_id,
                    xero_job_number=job_number,
                    xero_synced_at=stamp,
                    xero_sync_error=error,
                )
            )


def _request(row: Row[Any]) -> CrmRequest:
    return CrmRequest(
        request_id=row.id,
        company_id=row.company_id,
        client_id=row.user_id,
        service_id=row.service_id,
        accountant_id=row.assigned_to_id,
        status=row.status,
        description=row.description,
        due_date=row.due_date,
        assigned_at=row.assigned_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        xero_job_id=row.xero_job_id,
        xero_job_number=row.xero_job_number,
        xero_synced_at=row.xero_synced_at,
        xero_sync_error=row.xero_sync_error,
    )


def _person(row: Row[Any]) -> CrmPerson:
    return CrmPerson(
        user_id=row.id,
        company_id=row.company_id,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        phone=row.phone,
        # The column defaults to TRUE; a NULL left by the CRM means it was never switched off.
        is_active=row.is_active is None or bool(row.is_active),
    )


def _service(row: Row[Any]) -> CrmService:
    return CrmService(
        service_id=row.id, company_id=row.company_id, name=row.name, base_price=row.base_price
    )
