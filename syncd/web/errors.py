"""JSON error answers for the API: one shape, `{"error": message}`, with the right status.

An expected rejection (any HTTPException) is logged as one line without a traceback; only an
unexpected exception reaches `server_error`, which logs the traceback."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from syncd.logs import get_logger
from syncd.pipeline.connect import ConnectError

log = get_logger("syncd.web")


class ApiError(HTTPException):
    """An answer with a status, a message and optional details (e.g. the offending rows)."""

    def __init__(self, status_code: int, message: str, **details: object) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.details = details


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code >= 400:
        log.info(
            "web.rejected",
            method=request.method,
            path=request.url.path,
            status=exc.status_code,
            error=exc.detail,
        )
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code)
    body: dict[str, object] = {"error": exc.detail}
    if isinstance(exc, ApiError):
        body.update(exc.details)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def connect_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConnectError)
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


async def client_disconnected(request: Request, exc: Exception) -> Response:
    """The client went away (or was cut off for being too slow) before its body was in: one
    line, and an answer nobody will receive."""
    log.info("web.client_disconnected", method=request.method, path=request.url.path)
    return Response(status_code=400)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("web.unhandled_error", path=request.url.path, error=type(exc).__name__, exc_info=exc)
    return JSONResponse({"error": "internal error; see the server log"}, status_code=500)


exception_handlers = {
    HTTPException: http_error,
    ClientDisconnect: client_disconnected,
    ConnectError: connect_error,
    Exception: server_error,
}
