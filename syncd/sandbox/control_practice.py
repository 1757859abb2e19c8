"""The control API's Practice Manager routes, under `/_sandbox/tenants/{tenant_id}/` of a
PRACTICEMANAGER tenant: templates, staff, categories, job states, clients and jobs, seeded and
edited as a user in XPM would (docs/practice-manager.md, "Sandbox control surface").

JSON in XPM's element names. Bad input 400 `{"error"}`, a tenant that is not a practice 400,
unknown tenants, clients and jobs 404 (the guard is `control_body.guarded`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from syncd.sandbox.control_body import Body, Handler, read_json
from syncd.sandbox.models import Category, Job, JobState, PracticeClient, SandboxError
from syncd.sandbox.practice_world import UNSET, Unset
from syncd.sandbox.state import SandboxState


def category_json(category: Category) -> dict[str, str]:
    return {"UUID": category.uuid, "Name": category.name}


def client_json(client: PracticeClient) -> dict[str, Any]:
    return {
        "UUID": client.uuid,
        "Name": client.name,
        "Email": client.email,
        "Phone": client.phone,
        "IsArchived": client.archived,
        "IsDeleted": client.deleted,
        "Contacts": [
            {
                "UUID": c.contact_uuid,
                "Name": c.name,
                "Email": c.email,
                "Phone": c.phone,
                "IsPrimary": c.is_primary,
            }
            for c in client.contacts
        ],
    }


def job_json(job: Job) -> dict[str, Any]:
    """A job with its references as UUIDs; dates as YYYY-MM-DD, money as a string."""
    return {
        "ID": job.number,
        "UUID": job.uuid,
        "Name": job.name,
        "Description": job.description,
        "ClientUUID": job.client_uuid,
        "ClientOrderNumber": job.client_order_number,
        "State": job.state,
        "StartDate": job.start_date.isoformat(),
        "DueDate": job.due_date.isoformat(),
        "CompletedDate": job.completed_date.isoformat() if job.completed_date else None,
        "Budget": f"{job.budget:.2f}",
        "TemplateUUID": job.template_uuid,
        "CategoryUUID": job.category_uuid,
        "ManagerUUID": job.manager_uuid,
        "CreatedAt": job.created_at.isoformat(),
    }


def _states_json(states: list[JobState]) -> dict[str, Any]:
    return {"states": [{"code": s.code, "completed": s.completed} for s in states]}


def _job_states(body: Body) -> list[JobState]:
    raw = body.data.get("states")
    if not isinstance(raw, list):
        raise SandboxError("states must be a list of {code, completed}")
    states: list[JobState] = []
    for item in raw:
        if not isinstance(item, dict):
            raise SandboxError("each state must be an object {code, completed}")
        entry = Body(item, {"code", "completed"})
        states.append(
            JobState(code=entry.text("code"), completed=bool(entry.optional_bool("completed")))
        )
    return states


def _manager(body: Body) -> str | Unset | None:
    if "manager_uuid" not in body.data:
        return UNSET
    return body.optional_text("manager_uuid")


def routes(state: SandboxState) -> list[tuple[str, Handler, list[str]]]:
    """(path under /_sandbox, handler, methods) rows for the control API's table."""

    async def templates(request: Request) -> Response:
        tenant = state.tenant(request.path_params["tenant_id"])
        if request.method == "GET":
            return JSONResponse(list(tenant.templates))
        body = await read_json(request, {"name"})
        template = state.add_template(tenant.tenant_id, body.text("name"))
        return JSONResponse(template, status_code=201)

    async def staff(request: Request) -> Response:
        tenant = state.tenant(request.path_params["tenant_id"])
        if request.method == "GET":
            return JSONResponse(list(tenant.staff))
        body = await read_json(request, {"name", "email"})
        member = state.add_staff(tenant.tenant_id, body.text("name"), body.text("email"))
        return JSONResponse(member, status_code=201)

    async def categories(request: Request) -> Response:
        tenant = state.practice(request.path_params["tenant_id"])
        if request.method == "GET":
            return JSONResponse([category_json(c) for c in tenant.categories])
        body = await read_json(request, {"name"})
        category = state.add_category(tenant.tenant_id, body.text("name"))
        return JSONResponse(category_json(category), status_code=201)

    async def job_states(request: Request) -> Response:
        tenant = state.practice(request.path_params["tenant_id"])
        if request.method == "PUT":
            body = await read_json(request, {"states"})
            state.set_job_states(tenant.tenant_id, _job_states(body))
        return JSONResponse(_states_json(tenant.job_states))

    async def clients(request: Request) -> Response:
        tenant = state.practice(request.path_params["tenant_id"])
        if request.method == "GET":
            return JSONResponse([client_json(c) for c in tenant.clients.values()])
        body = await read_json(request, {"name", "email"})
        client = state.add_client(tenant.tenant_id, body.text("name"), body.optional_text("email"))
        return JSONResponse(client_json(client), status_code=201)

    async def archive_client(request: Request) -> Response:
        client = state.archive_client(
            request.path_params["tenant_id"], request.path_params["client_uuid"]
        )
        return JSONResponse(client_json(client))

    async def jobs(request: Request) -> Response:
        tenant = state.practice(request.path_params["tenant_id"])
        return JSONResponse([job_json(j) for j in tenant.jobs.values()])

    async def one_job(request: Request) -> Response:
        tenant_id = request.path_params["tenant_id"]
        number = request.path_params["number"]
        if request.method == "DELETE":
            state.delete_job(tenant_id, number)
            return Response(status_code=204)
        if request.method == "PATCH":
            body = await read_json(request, {"state", "due_date", "manager_uuid"})
            due = body.optional_date("due_date")
            if "due_date" in body.data and due is None:
                raise SandboxError("due_date must be a date (YYYY-MM-DD)")
            job = state.update_job(
                tenant_id,
                number,
                state=body.text("state") if "state" in body.data else UNSET,
                due_date=due if due is not None else UNSET,
                manager_uuid=_manager(body),
            )
            return JSONResponse(job_json(job))
        return JSONResponse(job_json(state.job(tenant_id, number)))

    tenant = "/tenants/{tenant_id}"
    return [
        (f"{tenant}/templates", templates, ["GET", "POST"]),
        (f"{tenant}/staff", staff, ["GET", "POST"]),
        (f"{tenant}/categories", categories, ["GET", "POST"]),
        (f"{tenant}/job-states", job_states, ["GET", "PUT"]),
        (f"{tenant}/clients", clients, ["GET", "POST"]),
        (f"{tenant}/clients/{{client_uuid}}/archive", archive_client, ["POST"]),
        (f"{tenant}/jobs", jobs, ["GET"]),
        (f"{tenant}/jobs/{{number}}", one_job, ["GET", "PATCH", "DELETE"]),
    ]
