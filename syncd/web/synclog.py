"""The sync log, for admins: outbound tasks (filterable, paged) with the Xero call trail of
each, retrying dead tasks, and "sync this request now".

    GET  /api/integrations/xero/sync-logs              ?state=&kind=&request_id=&limit=&offset=
    GET  /api/integrations/xero/sync-logs/{id}          one task and its Xero calls
    POST /api/integrations/xero/sync-logs/{id}/retry    a dead task goes back to pending
    POST /api/integrations/xero/sync-job/{request_id}   enqueue a manual sync (202)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from syncd.domain.tasks import sync_request
from syncd.pipeline.outbox import TaskRepository, enqueue_spec
from syncd.store.connections import ConnectionRepository
from syncd.store.models import OutboxTask, SyncLogEntry
from syncd.store.sync_log import SyncLogRepository
from syncd.web.auth import access, admin_scope
from syncd.web.context import services_of
from syncd.web.errors import ApiError
from syncd.web.requests import path_int, query_int, query_list

PREFIX = "/api/integrations/xero"
STATES = ("pending", "running", "done", "dead")


def task_json(task: OutboxTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "kind": task.kind,
        "state": task.state,
        "request_id": (task.payload or {}).get("request_id"),
        "key": task.idempotency_key,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "last_error": task.last_error,
        "result": task.result,
        "run_after": task.run_after.isoformat(),
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
        "finished_at": task.finished_at.isoformat() if task.finished_at else None,
    }


def call_json(call: SyncLogEntry) -> dict[str, Any]:
    return {
        "at": call.created_at.isoformat(),
        "method": call.method,
        "path": call.path,
        "status": call.status,
        "duration_ms": call.duration_ms,
        "minute_remaining": call.min_remaining,
        "day_remaining": call.day_remaining,
        "error": call.error,
    }


def _task_id(request: Request) -> int:
    return path_int(request, "task_id", label="task id")


@access("admin")
async def list_tasks(request: Request) -> JSONResponse:
    _, company = admin_scope(request)
    limit = query_int(request, "limit", 50, 1, 200)
    offset = query_int(request, "offset", 0, 0, 10_000_000)
    states = query_list(request, "state", STATES)
    kinds = query_list(request, "kind")
    request_id = request.query_params.get("request_id") or None
    async with services_of(request).db.transaction() as session:
        tasks, total = await TaskRepository(session).page(
            company=company,
            states=states,
            kinds=kinds,
            request_id=request_id,
            limit=limit,
            offset=offset,
        )
        counts = await TaskRepository(session).counts(company=company)
    return JSONResponse(
        {
            "company_id": company,
            "items": [task_json(t) for t in tasks],
            "total": total,
            "limit": limit,
            "offset": offset,
            "counts": counts,
        }
    )


@access("admin")
async def show_task(request: Request) -> JSONResponse:
    _, company = admin_scope(request)
    task_id = _task_id(request)
    async with services_of(request).db.transaction() as session:
        task = await TaskRepository(session).get(company=company, task_id=task_id)
        calls = await SyncLogRepository(session).for_task(company=company, task_id=task_id)
    if task is None:
        raise ApiError(404, "no such task in this practice")
    return JSONResponse({**task_json(task), "calls": [call_json(c) for c in calls]})


@access("admin")
async def retry_task(request: Request) -> JSONResponse:
    _, company = admin_scope(request)
    task_id = _task_id(request)
    services = services_of(request)
    async with services.db.transaction() as session:
        tasks = TaskRepository(session)
        task = await tasks.get(company=company, task_id=task_id)
        if task is None:
            raise ApiError(404, "no such task in this practice")
        if task.state != "dead":
            raise ApiError(409, f"only dead tasks can be retried; this one is {task.state}")
        await tasks.retry_dead(company=company, task_id=task_id, now=services.clock.now())
        task = await tasks.get(company=company, task_id=task_id)
        assert task is not None
        await session.refresh(task)
        return JSONResponse(task_json(task))


@access("admin")
async def sync_job(request: Request) -> JSONResponse:
    _, company = admin_scope(request)
    services = services_of(request)
    request_id = str(request.path_params["request_id"])
    if services.crm is None:
        raise ApiError(503, "no CRM is configured (SYNCD_CRM_DATABASE_URL)")
    if await services.crm.get_request(company=company, request_id=request_id) is None:
        raise ApiError(404, f"request {request_id} is not in this practice")
    async with services.db.transaction() as session:
        connection = await ConnectionRepository(session).get_active(company=company)
    # A sync queued now would only wait behind the practice's parked tasks: say so instead.
    if connection is None:
        raise ApiError(409, "this practice is not connected to Xero: connect it first")
    if connection.needs_reconnect:
        raise ApiError(
            409,
            "the Xero connection needs reconnecting "
            f"({connection.reconnect_reason or 'no reason recorded'}): reconnect, then sync",
        )
    now = services.clock.now()
    async with services.db.transaction() as session:
        task = await enqueue_spec(session, company, sync_request(request_id, now), now=now)
    return JSONResponse(task_json(task), status_code=202)


routes = [
    Route(f"{PREFIX}/sync-logs", list_tasks, methods=["GET"]),
    Route(f"{PREFIX}/sync-logs/{{task_id}}", show_task, methods=["GET"]),
    Route(f"{PREFIX}/sync-logs/{{task_id}}/retry", retry_task, methods=["POST"]),
    Route(f"{PREFIX}/sync-job/{{request_id}}", sync_job, methods=["POST"]),
]
