"""Xero Projects API (`/projects.xro/2.0`): projects list/create/get/update/patch and users.

Shapes follow the official `xero-projects.yaml`; routes are matched on lower-cased paths.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.sandbox import errors, pages
from syncd.sandbox.models import PROJECT_STATUSES, Project, parse_iso, utc_iso
from syncd.sandbox.state import SandboxState

BASE = "/projects.xro/2.0"
_UUID = re.compile(r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$")
_MONEY_FIELDS = (
    "totalTaskAmount",
    "totalExpenseAmount",
    "taskAmountToBeInvoiced",
    "taskAmountInvoiced",
    "expenseAmountToBeInvoiced",
    "expenseAmountInvoiced",
    "projectAmountInvoiced",
    "deposit",
    "depositApplied",
    "creditNoteAmount",
    "totalInvoiced",
    "totalToBeInvoiced",
)


def _money(currency: str, value: Decimal | int) -> dict[str, Any]:
    return {"currency": currency, "value": float(value)}


def project_json(project: Project) -> dict[str, Any]:
    """A Project as Xero answers it. The spec also lists `estimateAmount`; Xero's examples (and
    the live API) answer `estimate`, so that is what the sandbox sends."""
    body: dict[str, Any] = {
        "projectId": project.project_id,
        "contactId": project.contact_id,
        "name": project.name,
        "currencyCode": project.currency,
        "minutesLogged": 0,
        "minutesToBeInvoiced": 0,
    }
    for name in _MONEY_FIELDS:
        body[name] = _money(project.currency, 0)
    if project.deadline is not None:
        body["deadlineUtc"] = utc_iso(project.deadline)
    if project.estimate is not None:
        body["estimate"] = _money(project.currency, project.estimate)
    body["status"] = project.status
    return body


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise _Invalid("model", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _Invalid("model", "A JSON object is required.")
    return body


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _Invalid("model.Name", "The Name field is required.")
    return name.strip()


def _deadline(body: dict[str, Any]) -> datetime | None:
    raw = body.get("deadlineUtc")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _Invalid("model.DeadlineUtc", "The DeadlineUtc field must be an ISO-8601 date.")
    try:
        return parse_iso(raw)
    except ValueError:
        raise _Invalid("model.DeadlineUtc", f"Could not convert {raw!r} to a date.") from None


def _estimate(body: dict[str, Any]) -> Decimal | None:
    raw = body.get("estimateAmount")
    if raw is None:
        return None
    # The spec's own request example sends the amount as a JSON string; accept that too.
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise _Invalid("model.EstimateAmount", "The EstimateAmount field must be a number.")
    try:
        amount = Decimal(str(raw))
    except InvalidOperation:
        raise _Invalid("model.EstimateAmount", f"Could not convert {raw!r} to a number.") from None
    if not amount.is_finite() or amount < 0:
        raise _Invalid("model.EstimateAmount", "The EstimateAmount must not be negative.")
    return amount


def _invalid(exc: _Invalid) -> JSONResponse:
    return errors.projects_error("The request is invalid.", {exc.field: [exc.message]})


def routes(state: SandboxState) -> list[Route]:
    def not_found(project_id: str) -> JSONResponse:
        return errors.projects_error(f"Project {project_id} was not found.", status=404)

    async def list_projects(request: Request) -> Response:
        tenant = state.tenant(request.state.tenant_id)
        query = request.query_params
        try:
            ids = {value.lower() for value in pages.values(query, "projectIds")}
            contact_id = (pages.first(query, "contactID") or "").strip().lower()
            wanted = pages.values(query, "states")
            for status in wanted:
                if status.upper() not in PROJECT_STATUSES:
                    raise pages.BadParameter("states", "must be INPROGRESS or CLOSED")
            page = pages.integer(query, "page", default=1)
            size = pages.integer(query, "pageSize", default=50)
            if page is None or page < 1:
                raise pages.BadParameter("page", "must be 1 or more")
            if size is None or not 1 <= size <= 500:
                raise pages.BadParameter("pageSize", "must be from 1 to 500")
        except pages.BadParameter as exc:
            return errors.projects_error(str(exc))
        states = {status.upper() for status in wanted}
        found = [
            project
            for project in tenant.projects.values()
            if (not ids or project.project_id in ids)
            and (not contact_id or project.contact_id == contact_id)
            and (not states or project.status in states)
        ]
        items, paging = pages.paginate(found, page, size)
        return JSONResponse(
            {"pagination": paging.as_json(), "items": [project_json(p) for p in items]}
        )

    async def create_project(request: Request) -> Response:
        tenant_id: str = request.state.tenant_id
        try:
            body = await _body(request)
            name = _name(body)
            contact_id = body.get("contactId")
            if not isinstance(contact_id, str) or not contact_id.strip():
                raise _Invalid("model.ContactId", "The ContactId field is required.")
            contact_id = contact_id.strip().lower()
            if contact_id not in state.tenant(tenant_id).contacts:
                raise _Invalid("model.ContactId", f"The contact {contact_id} does not exist.")
            deadline = _deadline(body)
            estimate = _estimate(body)
        except _Invalid as exc:
            return _invalid(exc)
        project = state.add_project(
            tenant_id, contact_id=contact_id, name=name, deadline=deadline, estimate=estimate
        )
        return JSONResponse(project_json(project), status_code=201)

    async def get_project(request: Request) -> Response:
        project_id = str(request.path_params["project_id"]).lower()
        project = state.tenant(request.state.tenant_id).projects.get(project_id)
        if project is None:
            return not_found(project_id)
        return JSONResponse(project_json(project))

    async def update_project(request: Request) -> Response:
        """PUT: name (required), deadline and estimate; contactId is only settable on create,
        so it is ignored here."""
        tenant_id: str = request.state.tenant_id
        project_id = str(request.path_params["project_id"]).lower()
        project = state.tenant(tenant_id).projects.get(project_id)
        if project is None:
            return not_found(project_id)
        try:
            body = await _body(request)
            changed = replace(
                project, name=_name(body), deadline=_deadline(body), estimate=_estimate(body)
            )
        except _Invalid as exc:
            return _invalid(exc)
        state.save_project(tenant_id, changed)
        return Response(status_code=204)

    async def patch_project(request: Request) -> Response:
        tenant_id: str = request.state.tenant_id
        project_id = str(request.path_params["project_id"]).lower()
        project = state.tenant(tenant_id).projects.get(project_id)
        if project is None:
            return not_found(project_id)
        try:
            body = await _body(request)
        except _Invalid as exc:
            return _invalid(exc)
        status = body.get("status")
        if status not in PROJECT_STATUSES:
            return errors.projects_error(
                "The request is invalid.",
                {"model.Status": ["The status must be INPROGRESS or CLOSED."]},
            )
        state.set_project_status(tenant_id, project_id, str(status))
        return Response(status_code=204)

    async def list_users(request: Request) -> Response:
        tenant = state.tenant(request.state.tenant_id)
        try:
            page = pages.integer(request.query_params, "page", default=1)
            size = pages.integer(request.query_params, "pageSize", default=50)
            if page is None or page < 1:
                raise pages.BadParameter("page", "must be 1 or more")
            if size is None or not 1 <= size <= 500:
                raise pages.BadParameter("pageSize", "must be from 1 to 500")
        except pages.BadParameter as exc:
            return errors.projects_error(str(exc))
        items, paging = pages.paginate(tenant.users, page, size)
        return JSONResponse({"pagination": paging.as_json(), "items": [dict(u) for u in items]})

    async def one_project(request: Request) -> Response:
        if not _UUID.match(str(request.path_params["project_id"]).lower()):
            return errors.projects_error(
                "The request is invalid.", {"projectId": ["The projectId must be a GUID."]}
            )
        handler = {"GET": get_project, "PUT": update_project, "PATCH": patch_project}
        return await handler[request.method](request)

    base = BASE
    return [
        pages.route(f"{base}/Projects", list_projects, methods=["GET"]),
        pages.route(f"{base}/Projects", create_project, methods=["POST"]),
        pages.route(
            f"{base}/Projects/{{project_id}}", one_project, methods=["GET", "PUT", "PATCH"]
        ),
        pages.route(f"{base}/ProjectsUsers", list_users, methods=["GET"]),
    ]
