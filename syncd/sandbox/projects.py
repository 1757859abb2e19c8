"""Xero Projects API (`/projects.xro/2.0`): projects list/create/get/update/patch and users.

Shapes follow the official `xero-projects.yaml`; routes are matched on lower-cased paths.
Requests are checked as strictly as that spec says (syncd.sandbox.validation) before the rules
Xero documents in prose (a contact is required on create, names are not blank).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.sandbox import errors, pages, validation
from syncd.sandbox.models import PROJECT_STATUSES, Project, parse_iso, utc_iso
from syncd.sandbox.state import SandboxState

BASE = "/projects.xro/2.0"
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


class _Malformed(Exception):
    """A body that disagrees with the spec's schema (wrong type, format, enum or absence)."""

    def __init__(self, problems: list[validation.Problem]) -> None:
        super().__init__("malformed body")
        self.problems = problems


async def _body(request: Request, operation: str) -> dict[str, Any]:
    """The JSON body of a Projects write, checked against the spec's schema for `operation`."""
    raw = await request.body()
    if not raw.strip():
        raise _Invalid("model", "A JSON object is required.")
    try:
        body = validation.parse_json(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Invalid("model", "The request body is not valid JSON.") from None
    problems = validation.body_problems(operation, body)
    if problems:
        raise _Malformed(problems)
    if not isinstance(body, dict):  # the schemas are objects, so this is already refused
        raise _Invalid("model", "A JSON object is required.")
    return body


def _name(body: dict[str, Any]) -> str:
    name = str(body["name"])
    if not name.strip():
        raise _Invalid("model.Name", "The Name field is required.")
    return name.strip()


def _deadline(body: dict[str, Any]) -> datetime | None:
    """`deadlineUtc`, already an RFC 3339 date-time with a zone (checked against the spec)."""
    raw = body.get("deadlineUtc")
    if raw is None:
        return None
    try:
        return parse_iso(str(raw).upper())
    except (ValueError, OverflowError):
        raise _Invalid("model.DeadlineUtc", f"{raw!r} is out of range.") from None


def _estimate(body: dict[str, Any]) -> Decimal | None:
    """`estimateAmount`, already a JSON number (the spec: `type: number`, so a string such as
    the spec's own create example's "99.99" is refused)."""
    raw = body.get("estimateAmount")
    if raw is None:
        return None
    amount = Decimal(str(raw))
    if amount < 0:
        raise _Invalid("model.EstimateAmount", "The EstimateAmount must not be negative.")
    return amount


def _invalid(exc: _Invalid) -> JSONResponse:
    return errors.projects_error("The request is invalid.", {exc.field: [exc.message]})


def _malformed(exc: _Malformed) -> JSONResponse:
    model_state: dict[str, list[str]] = {}
    for problem in exc.problems:
        label = validation.field_label(problem.path)
        field = f"{label.removeprefix('model.')} field" if problem.path else "request body"
        model_state.setdefault(label, []).append(f"The {field} {problem.message}.")
    return errors.projects_error("The request is invalid.", model_state)


def _paging(params: dict[str, Any]) -> tuple[int, int]:
    """page (from 1, as the spec's description says) and pageSize (1-500, checked already)."""
    page: int = params.get("page", 1)
    if page < 1:
        raise pages.BadParameter("page", "must be 1 or more")
    size: int = params.get("pageSize", 50)
    return page, size


def routes(state: SandboxState) -> list[Route]:
    def not_found(project_id: str) -> JSONResponse:
        return errors.projects_error(f"Project {project_id} was not found.", status=404)

    async def list_projects(request: Request) -> Response:
        tenant = state.tenant(request.state.tenant_id)
        try:
            params = validation.read_parameters(
                "getProjects", request.query_params, request.headers
            )
            # `states` is one string (not a list) in the spec; comma-separated states are read.
            wanted = {part.strip().upper() for part in str(params.get("states", "")).split(",")}
            wanted.discard("")
            if not wanted <= set(PROJECT_STATUSES):
                raise pages.BadParameter("states", "must be INPROGRESS or CLOSED")
            page, size = _paging(params)
        except pages.BadParameter as exc:
            return errors.projects_error(str(exc))
        ids = {value.lower() for value in params.get("projectIds", [])}
        contact_id = str(params.get("contactID", "")).lower()
        found = [
            project
            for project in tenant.projects.values()
            if (not ids or project.project_id in ids)
            and (not contact_id or project.contact_id == contact_id)
            and (not wanted or project.status in wanted)
        ]
        items, paging = pages.paginate(found, page, size)
        return JSONResponse(
            {"pagination": paging.as_json(), "items": [project_json(p) for p in items]}
        )

    async def create_project(request: Request) -> Response:
        tenant_id: str = request.state.tenant_id
        try:
            body = await _body(request, "createProject")
            name = _name(body)
            # The spec requires only `name`; Xero refuses a create without a contact.
            contact_id = str(body.get("contactId") or "").lower()
            if not contact_id:
                raise _Invalid("model.ContactId", "The ContactId field is required.")
            if contact_id not in state.tenant(tenant_id).contacts:
                raise _Invalid("model.ContactId", f"The contact {contact_id} does not exist.")
            deadline = _deadline(body)
            estimate = _estimate(body)
        except _Malformed as exc:
            return _malformed(exc)
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
            body = await _body(request, "updateProject")
            changed = replace(
                project, name=_name(body), deadline=_deadline(body), estimate=_estimate(body)
            )
        except _Malformed as exc:
            return _malformed(exc)
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
            body = await _body(request, "patchProject")
        except _Malformed as exc:
            return _malformed(exc)
        except _Invalid as exc:
            return _invalid(exc)
        state.set_project_status(tenant_id, project_id, str(body["status"]))
        return Response(status_code=204)

    async def list_users(request: Request) -> Response:
        tenant = state.tenant(request.state.tenant_id)
        try:
            page, size = _paging(
                validation.read_parameters("getProjectUsers", request.query_params, request.headers)
            )
        except pages.BadParameter as exc:
            return errors.projects_error(str(exc))
        items, paging = pages.paginate(tenant.users, page, size)
        return JSONResponse({"pagination": paging.as_json(), "items": [dict(u) for u in items]})

    async def one_project(request: Request) -> Response:
        if not validation.is_uuid(str(request.path_params["project_id"])):
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
