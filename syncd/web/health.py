"""/healthz (the process is up) and /readyz (the database is reachable, migrated to head and
takes a write). A failed readiness check is logged once when it starts and once when it ends,
not on every probe."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from syncd.logs import get_logger
from syncd.store.db import Database
from syncd.store.migrate import current_revision, head_revision, known_revision
from syncd.web.auth import access
from syncd.web.context import services_of

log = get_logger("syncd.web")

# Rewrites the one row of Alembic's table with itself, then rolls back: it takes the write lock
# and touches the file (SQLite) or needs a writable transaction (PostgreSQL), and changes nothing.
_WRITE_PROBE = text("UPDATE alembic_version SET version_num = version_num")


class NotWritable(Exception):
    """The database answers reads but refuses a write (read-only file, replica, gone file)."""


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
        return _unready(request, {"database": f"unreachable: {type(exc).__name__}"})
    head = head_revision()
    # A revision this code does not know is a newer release's migration (expand-only, see
    # docs/deploy.md): this process still works against it until it is replaced, so it stays
    # ready; an older revision (or none) needs `syncd migrate` first.
    if revision != head and (revision is None or known_revision(revision)):
        return _unready(
            request,
            {
                "database": "ok",
                "migrations": {"current": revision, "head": head},
                "hint": "run `syncd migrate`",
            },
        )
    try:
        await probe_write(services.db)
    except NotWritable as exc:
        return _unready(request, {"database": f"not writable: {exc}"})
    if getattr(request.app.state, "unready", None) is not None:
        request.app.state.unready = None
        log.info("web.ready_again")
    migrations = {"current": revision} if revision == head else {"current": revision, "newer": True}
    return JSONResponse({"status": "ok", "database": "ok", "migrations": migrations})


async def probe_write(db: Database) -> None:
    """Raise NotWritable unless the database takes a write (rolled back: nothing changes)."""
    missing = _missing_sqlite_file(db.url)
    if missing is not None:
        # An open SQLite connection goes on "writing" to a deleted file; only a look at the
        # folder tells that the data is going nowhere.
        raise NotWritable(f"the database file is gone ({missing.name})")
    try:
        async with db.engine.connect() as connection:
            transaction = await connection.begin()
            try:
                if db.dialect == "postgresql":
                    # Readiness must answer, not queue behind a long migration's row lock.
                    await connection.execute(text("SET LOCAL lock_timeout = '2s'"))
                await connection.execute(_WRITE_PROBE)
            finally:
                await transaction.rollback()
    except (SQLAlchemyError, OSError) as exc:
        raise NotWritable(_first_line(exc)) from exc


def _missing_sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return None
    if str(parsed.query.get("uri", "")).lower() in {"true", "1"}:
        if parsed.query.get("mode") == "memory" or name.startswith("file::memory:"):
            return None
        name = name.removeprefix("file:")
    path = Path(name)
    return None if path.exists() else path


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


def _unready(request: Request, details: dict[str, object]) -> JSONResponse:
    problem = str(details)
    if getattr(request.app.state, "unready", None) != problem:
        request.app.state.unready = problem
        log.warning("web.not_ready", **details)
    return JSONResponse({"status": "unavailable", **details}, status_code=503)


routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
