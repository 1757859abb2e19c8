"""Xero Projects API (projects.xro/2.0): create, get, list (paged), update, set status, users.

Request building and response parsing are plain functions; `ProjectsApi` performs the calls
through XeroHttp, which owns limits, tokens, logging and error translation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from syncd.domain.errors import PermanentError
from syncd.domain.ids import CompanyId
from syncd.xero.http import XeroHttp

BASE = "/projects.xro/2.0"
MAX_PAGE_SIZE = 500
ProjectStatus = Literal["INPROGRESS", "CLOSED"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    project_id: str
    contact_id: str | None
    name: str
    status: str
    deadline: datetime | None
    estimate: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectPage:
    items: list[Project]
    page: int
    page_count: int
    item_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectUser:
    user_id: str
    name: str
    email: str | None


def deadline_utc(due: date | None) -> str | None:
    """A CRM due date as Projects' `deadlineUtc`: the end of that day, UTC."""
    if due is None:
        return None
    return datetime.combine(due, time(23, 59, 59), tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_body(
    *, contact_id: str, name: str, deadline: date | None, estimate: Decimal | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"contactId": contact_id, "name": name}
    if deadline is not None:
        body["deadlineUtc"] = deadline_utc(deadline)
    if estimate is not None:
        body["estimateAmount"] = float(estimate)
    return body


def list_params(
    *,
    page: int,
    page_size: int,
    contact_id: str | None = None,
    states: Sequence[ProjectStatus] | None = None,
    project_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """GET /Projects' query as the spec declares it: `projectIds` is an exploded array (one
    `projectIds=` per id, as Xero's own SDK sends it; httpx repeats a list value), `states` is
    a single string (one state; both states mean no filter), `contactID` has a capital D."""
    params: dict[str, Any] = {"page": page, "pageSize": max(1, min(page_size, MAX_PAGE_SIZE))}
    if contact_id:
        params["contactID"] = contact_id
    wanted = set(states or ())
    if len(wanted) == 1:
        params["states"] = wanted.pop()
    if project_ids:
        params["projectIds"] = list(dict.fromkeys(project_ids))
    return params


def _parse_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _money(value: Any) -> Decimal | None:
    if isinstance(value, Mapping) and value.get("value") is not None:
        return Decimal(str(value["value"]))
    if isinstance(value, int | float):
        return Decimal(str(value))
    return None


def parse_project(data: Any) -> Project:
    if not isinstance(data, Mapping) or not data.get("projectId"):
        raise PermanentError("Xero returned a project without a projectId")
    return Project(
        project_id=str(data["projectId"]),
        contact_id=str(data["contactId"]) if data.get("contactId") else None,
        name=str(data.get("name") or ""),
        status=str(data.get("status") or "INPROGRESS").upper(),
        deadline=_parse_datetime(data.get("deadlineUtc")),
        estimate=_money(data.get("estimate")) or _money(data.get("estimateAmount")),
    )


def parse_page(data: Any) -> ProjectPage:
    if not isinstance(data, Mapping):
        raise PermanentError("Xero returned an unreadable project list")
    pagination = data.get("pagination") or {}
    items = [parse_project(item) for item in data.get("items") or []]
    return ProjectPage(
        items=items,
        page=int(pagination.get("page") or 1),
        page_count=int(pagination.get("pageCount") or 1),
        item_count=int(pagination.get("itemCount") or len(items)),
    )


class ProjectsApi:
    def __init__(self, http: XeroHttp) -> None:
        self.http = http

    async def create(
        self,
        company: CompanyId,
        *,
        contact_id: str,
        name: str,
        deadline: date | None,
        estimate: Decimal | None,
        idempotency_key: str,
    ) -> Project:
        response = await self.http.request(
            company,
            "POST",
            f"{BASE}/Projects",
            json=create_body(
                contact_id=contact_id, name=name, deadline=deadline, estimate=estimate
            ),
            idempotency_key=idempotency_key,
        )
        return parse_project(response.json())

    async def get(self, company: CompanyId, project_id: str) -> Project:
        response = await self.http.request(company, "GET", f"{BASE}/Projects/{project_id}")
        return parse_project(response.json())

    async def list_page(
        self,
        company: CompanyId,
        *,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        contact_id: str | None = None,
        states: list[ProjectStatus] | None = None,
        project_ids: list[str] | None = None,
    ) -> ProjectPage:
        params = list_params(
            page=page,
            page_size=page_size,
            contact_id=contact_id,
            states=states,
            project_ids=project_ids,
        )
        response = await self.http.request(company, "GET", f"{BASE}/Projects", params=params)
        return parse_page(response.json())

    async def list_all(
        self,
        company: CompanyId,
        *,
        contact_id: str | None = None,
        states: list[ProjectStatus] | None = None,
    ) -> AsyncIterator[Project]:
        """Every matching project, page by page (500 per call: ceil(N/500) calls)."""
        page = 1
        while True:
            batch = await self.list_page(company, page=page, contact_id=contact_id, states=states)
            for project in batch.items:
                yield project
            if page >= batch.page_count or not batch.items:
                return
            page += 1

    async def update(
        self,
        company: CompanyId,
        project_id: str,
        *,
        name: str,
        deadline: date | None,
        estimate: Decimal | None,
        idempotency_key: str,
    ) -> None:
        body: dict[str, Any] = {"name": name}
        if deadline is not None:
            body["deadlineUtc"] = deadline_utc(deadline)
        if estimate is not None:
            body["estimateAmount"] = float(estimate)
        await self.http.request(
            company,
            "PUT",
            f"{BASE}/Projects/{project_id}",
            json=body,
            idempotency_key=idempotency_key,
        )

    async def set_status(
        self, company: CompanyId, project_id: str, status: ProjectStatus, *, idempotency_key: str
    ) -> None:
        await self.http.request(
            company,
            "PATCH",
            f"{BASE}/Projects/{project_id}",
            json={"status": status},
            idempotency_key=idempotency_key,
        )

    async def users(self, company: CompanyId) -> list[ProjectUser]:
        """People who can be assigned time in Projects (the staff list for mapping)."""
        found: list[ProjectUser] = []
        page = 1
        while True:
            response = await self.http.request(
                company,
                "GET",
                f"{BASE}/ProjectsUsers",
                params={"page": page, "pageSize": MAX_PAGE_SIZE},
            )
            data = response.json()
            for item in data.get("items") or []:
                found.append(
                    ProjectUser(
                        user_id=str(item["userId"]),
                        name=str(item.get("name") or ""),
                        email=item.get("email"),
                    )
                )
            if page >= int((data.get("pagination") or {}).get("pageCount") or 1):
                return found
            page += 1
