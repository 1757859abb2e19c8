"""The CRM application's hands over both adapters, so one suite can seed either the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from syncd.crm.memory import MemoryCrm, Role
from syncd.crm.port import CrmPort
from syncd.crm.sql import SqlCrm
from syncd.domain.ids import CompanyId
from syncd.sandbox.crm import crm_app


class App(Protocol):
    """The CRM application's own actions, as both `MemoryCrm` and `sandbox.crm.CrmApp` offer."""

    async def add_company(self, *, name: str, company_id: str | None = None) -> CompanyId: ...

    async def add_person(
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
    ) -> str: ...

    async def add_service(
        self, *, company: CompanyId | None, name: str, base_price: Decimal | None = None
    ) -> int: ...

    async def add_request(
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
    ) -> str: ...

    async def set_status(
        self, *, company: CompanyId, request_id: str, status: str, now: datetime
    ) -> None: ...

    async def assign(
        self, *, company: CompanyId, request_id: str, accountant_id: str, now: datetime
    ) -> None: ...


class MemoryApp:
    """`App` over a `MemoryCrm`'s (synchronous) seeding methods."""

    def __init__(self, crm: MemoryCrm) -> None:
        self.crm = crm

    async def add_company(self, *, name: str, company_id: str | None = None) -> CompanyId:
        return self.crm.add_company(name=name, company_id=company_id)

    async def add_person(
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
        return self.crm.add_person(
            company=company,
            role=role,
            email=email,
            first_name=first_name,
            last_name=last_name,
            phone=phone,
            is_active=is_active,
            user_id=user_id,
        )

    async def add_service(
        self, *, company: CompanyId | None, name: str, base_price: Decimal | None = None
    ) -> int:
        return self.crm.add_service(company=company, name=name, base_price=base_price)

    async def add_request(
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
        return self.crm.add_request(
            company=company,
            client_id=client_id,
            service_id=service_id,
            now=now,
            status=status,
            accountant_id=accountant_id,
            assigned_at=assigned_at,
            description=description,
            due_date=due_date,
            request_id=request_id,
        )

    async def set_status(
        self, *, company: CompanyId, request_id: str, status: str, now: datetime
    ) -> None:
        self.crm.set_status(company=company, request_id=request_id, status=status, now=now)

    async def assign(
        self, *, company: CompanyId, request_id: str, accountant_id: str, now: datetime
    ) -> None:
        self.crm.assign(
            company=company, request_id=request_id, accountant_id=accountant_id, now=now
        )


class SqlApp:
    """`App` over a CRM database: each action in its own transaction, as the CRM commits it."""

    def __init__(self, crm: SqlCrm) -> None:
        self.engine = crm.engine

    async def add_company(self, *, name: str, company_id: str | None = None) -> CompanyId:
        async with crm_app(self.engine) as app:
            return await app.add_company(name=name, company_id=company_id)

    async def add_person(
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
        async with crm_app(self.engine) as app:
            return await app.add_person(
                company=company,
                role=role,
                email=email,
                first_name=first_name,
                last_name=last_name,
                phone=phone,
                is_active=is_active,
                user_id=user_id,
            )

    async def add_service(
        self, *, company: CompanyId | None, name: str, base_price: Decimal | None = None
    ) -> int:
        async with crm_app(self.engine) as app:
            return await app.add_service(company=company, name=name, base_price=base_price)

    async def add_request(
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
        async with crm_app(self.engine) as app:
            return await app.add_request(
                company=company,
                client_id=client_id,
                service_id=service_id,
                now=now,
                status=status,
                accountant_id=accountant_id,
                assigned_at=assigned_at,
                description=description,
                due_date=due_date,
                request_id=request_id,
            )

    async def set_status(
        self, *, company: CompanyId, request_id: str, status: str, now: datetime
    ) -> None:
        async with crm_app(self.engine) as app:
            await app.set_status(company=company, request_id=request_id, status=status, now=now)

    async def assign(
        self, *, company: CompanyId, request_id: str, accountant_id: str, now: datetime
    ) -> None:
        async with crm_app(self.engine) as app:
            await app.assign(
                company=company, request_id=request_id, accountant_id=accountant_id, now=now
            )


@dataclass(frozen=True, slots=True)
class Crm:
    """A CRM under test: the port syncd uses and the application's hands."""

    kind: str
    port: CrmPort
    app: App
