"""Xero Practice Manager API v3.1 (`/practicemanager/3.1`): clients (search, list, get, add,
update), jobs (add, current, of a client, get, state, assign), staff, templates and categories, as
docs/practice-manager.md describes them.

Every answer is XML (`text/xml`) whatever the request's Accept says, as XPM does; refusals are
HTTP 200 with Status ERROR. Only PRACTICEMANAGER tenants have a Practice Manager: any other
tenant is refused with 403 `AuthorizationUnsuccessful` in the platform's problem shape. Xero
does not document this case; the sandbox answers as it does for a tenant a call does not cover
(syncd: NeedsReconnect). XPM sends no webhooks, so nothing here queues one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.sandbox import errors, pages
from syncd.sandbox import practice_manager_xml as xpm
from syncd.sandbox.models import SandboxError, Tenant
from syncd.sandbox.practice_manager_xml import Refused
from syncd.sandbox.practice_world import UNSET
from syncd.sandbox.state import SandboxState

BASE = "/practicemanager/3.1"
MEDIA_TYPE = xpm.MEDIA_TYPE
Handler = Callable[[Request, Tenant], Awaitable[bytes]]


def xml_response(body: bytes, *, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=MEDIA_TYPE)


def routes(state: SandboxState) -> list[Route]:
    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The practice check, then the handler; a refusal is XPM's HTTP 200 Status ERROR
        (the state changes nothing before it refuses)."""

        async def serve(request: Request) -> Response:
            tenant = state.tenant(request.state.tenant_id)
            if tenant.tenant_type != "PRACTICEMANAGER":
                return errors.problem(403, "AuthorizationUnsuccessful")
            try:
                return xml_response(await handler(request, tenant))
            except SandboxError as exc:
                return xml_response(xpm.error_xml(str(exc)))

        return serve

    async def list_templates(request: Request, tenant: Tenant) -> bytes:
        return xpm.templates_xml(tenant.templates)

    async def list_staff(request: Request, tenant: Tenant) -> bytes:
        return xpm.staff_xml(tenant.staff)

    async def list_categories(request: Request, tenant: Tenant) -> bytes:
        return xpm.categories_xml(tenant.categories)

    async def search_clients(request: Request, tenant: Tenant) -> bytes:
        query = pages.first(request.query_params, "query") or ""
        if not query.strip():
            raise Refused("The query parameter is required")
        return xpm.clients_xml(state.search_clients(tenant.tenant_id, query))

    async def list_clients(request: Request, tenant: Tenant) -> bytes:
        return xpm.clients_xml(c for c in tenant.clients.values() if not c.deleted)

    async def get_client(request: Request, tenant: Tenant) -> bytes:
        return xpm.client_xml(state.client(tenant.tenant_id, str(request.path_params["uuid"])))

    async def add_client(request: Request, tenant: Tenant) -> bytes:
        new = xpm.parse_client_add(await request.body())
        client = state.add_client(
            tenant.tenant_id, new.name, new.email, phone=new.phone, contacts=new.contacts
        )
        return xpm.client_xml(client)

    async def update_client(request: Request, tenant: Tenant) -> bytes:
        change = xpm.parse_client_update(await request.body())
        client = state.update_client(
            tenant.tenant_id, change.uuid, name=change.name, email=change.email
        )
        return xpm.client_xml(client)

    async def add_job(request: Request, tenant: Tenant) -> bytes:
        new = xpm.parse_job_add(await request.body())
        job = state.add_job(
            tenant.tenant_id,
            client_uuid=new.client_uuid,
            name=new.name,
            description=new.description,
            start_date=new.start_date,
            due_date=new.due_date,
            client_order_number=new.client_order_number,
            template_uuid=new.template_uuid,
            category_uuid=new.category_uuid,
            budget=new.budget,
        )
        return xpm.job_xml(job, tenant)

    async def current_jobs(request: Request, tenant: Tenant) -> bytes:
        return xpm.jobs_xml(state.current_jobs(tenant.tenant_id), tenant)

    async def client_jobs(request: Request, tenant: Tenant) -> bytes:
        client_uuid = str(request.path_params["client_uuid"])
        return xpm.jobs_xml(state.client_jobs(tenant.tenant_id, client_uuid), tenant)

    async def get_job(request: Request, tenant: Tenant) -> bytes:
        job = state.job(tenant.tenant_id, str(request.path_params["number"]))
        return xpm.job_xml(job, tenant)

    def addressed(change: xpm.JobChange, tenant: Tenant) -> str:
        """The job's number, once `change` names it by both number and its own UUID."""
        job = state.job(tenant.tenant_id, change.number)
        if change.uuid.lower() != job.uuid:
            raise Refused(f"UUID {change.uuid} is not the UUID of job {job.number}")
        return job.number

    async def set_state(request: Request, tenant: Tenant) -> bytes:
        change = xpm.parse_job_state(await request.body())
        number = addressed(change, tenant)
        job = state.update_job(tenant.tenant_id, number, state=change.state or UNSET)
        return xpm.job_xml(job, tenant)

    async def assign(request: Request, tenant: Tenant) -> bytes:
        change = xpm.parse_job_assign(await request.body())
        number = addressed(change, tenant)
        job = state.update_job(tenant.tenant_id, number, manager_uuid=change.manager)
        return xpm.job_xml(job, tenant)

    table: list[tuple[str, Handler, str]] = [
        ("template.api/list", list_templates, "GET"),
        ("staff.api/list", list_staff, "GET"),
        ("category.api/list", list_categories, "GET"),
        ("client.api/search", search_clients, "GET"),
        ("client.api/list", list_clients, "GET"),
        ("client.api/get/{uuid}", get_client, "GET"),
        ("client.api/add", add_client, "POST"),
        ("client.api/update", update_client, "PUT"),
        ("job.api/add", add_job, "POST"),
        ("job.api/current", current_jobs, "GET"),
        ("job.api/client/{client_uuid}", client_jobs, "GET"),
        ("job.api/get/{number}", get_job, "GET"),
        ("job.api/state", set_state, "PUT"),
        ("job.api/assign", assign, "PUT"),
    ]
    return [
        pages.route(f"{BASE}/{path}", endpoint(handler), methods=[method])
        for path, handler, method in table
    ]
