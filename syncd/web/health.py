"""/healthz (the process is up) and /readyz (database reachable and migrated to head)."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from syncd.store.migrate import current_revision, head_revision
from syncd.web.auth import access
from syncd.web.context import services_of


@access("public")
async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@access("public")
async def readyz(request: Request) -> JSONResponse:
    services = services_of(request)
    try:
        await services.db.ping()
        revision = await current_revision(services.db)
    except (SQLAlchemyError, OSError) as exc:
        return JSONResponse(
            {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"},
            status_code=503,
        )
    head = head_revision()
    if revision != head:
        return JSONResponse(
            {
                "status": "unavailable",
                "database": "ok",
                "migrations": {"current": revision, "head": head},
                "hint": "run `syncd migrate`",
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok", "migrations": {"current": revision}})


routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
