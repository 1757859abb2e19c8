"""The `syncd` command: serve, worker, migrate, keys.

Every command reads the settings once; a bad or missing setting ends the command with one line
naming the variable and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

from syncd import __version__
from syncd.logs import configure_logging, get_logger
from syncd.ports import PortInUse
from syncd.settings import Settings, SettingsError, load_settings
from syncd.vault import VaultError
from syncd.wording import counted

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

log = get_logger("syncd.cli")

_QUERY_PASSWORD = re.compile(r"(?i)(^|&)(password|passwd|pwd)=[^&#]*")

Handler = Callable[[Settings, argparse.Namespace], int]


class CommandError(Exception):
    """A command cannot do what was asked; the message says why and what to do."""


def _secrets_of(settings: Settings) -> list[str]:
    values = [
        settings.xero_client_secret,
        settings.xero_webhook_key,
        settings.xero_webhook_key_previous,
        settings.jwt_secret,
        *settings.encryption_keys,
    ]
    return [value.reveal() for value in values if value is not None]


def _setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_format, settings.log_level, secrets=_secrets_of(settings))


# -- serve / worker --------------------------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from syncd.web.app import create_app
    from syncd.web.limits import http_protocol

    settings.require("SYNCD_ENCRYPTION_KEYS")
    host = args.host or settings.host
    port = args.port or settings.port
    _setup_logging(settings)
    _check_database(settings.database_url)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        proxy_headers=True,
        server_header=False,
        # On SIGTERM uvicorn stops accepting at once and gives requests in flight this long;
        # the lifespan then flushes the inbox writer (docs/scale-out.md).
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        # Past SYNCD_HTTP_MAX_CONCURRENCY open connections or requests in flight, a new request
        # is answered 503 at once instead of queueing; idle keep-alive connections are closed,
        # and clients too slow to send their headers or body get 408 (see syncd.web.limits and
        # docs/operations.md).
        limit_concurrency=settings.http_max_concurrency,
        timeout_keep_alive=settings.http_keepalive_seconds,
        http=http_protocol(
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
        ),
    )
    # uvicorn installs SIGTERM/SIGINT handlers: it stops accepting, finishes requests, then runs
    # the lifespan shutdown (which drains the embedded scheduler).
    uvicorn.Server(config).run()
    return EXIT_OK


def cmd_worker(settings: Settings, _args: argparse.Namespace) -> int:
    settings.require("SYNCD_ENCRYPTION_KEYS")
    _setup_logging(settings)
    from syncd.observability.instruments import configure as configure_metrics

    configure_metrics(settings.metrics_multiproc_dir)  # counts shared with the host's /metrics
    _check_database(settings.database_url)
    return asyncio.run(_worker(settings))


async def _worker(settings: Settings) -> int:
    from syncd.scheduler import SchedulerRunner
    from syncd.services import open_services
    from syncd.store.migrate import head_revision, is_at_head

    async with open_services(settings) as services:
        with database_errors(settings.database_url):
            at_head = await is_at_head(services.db)
        if not at_head:
            raise CommandError(
                f"the database is not migrated to {head_revision()}: run `syncd migrate` first"
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        grace = settings.shutdown_grace_seconds
        runner = SchedulerRunner(services, shutdown_grace=grace)
        runner.start()
        log.info("worker.started")
        await stop.wait()
        # Stop claiming at once; work in flight gets the grace period, the rest is handed back
        # (docs/scale-out.md).
        log.info("worker.stopping", grace=grace)
        drained = await services.worker.drain(grace=grace)
        # The scheduler's own jobs (they only enqueue) get what is left of the grace period.
        runner.shutdown_grace = max(5.0, grace - drained.seconds)
        await runner.stop()
    log.info(
        "worker.stopped",
        finished=drained.finished,
        handed_back=drained.handed_back,
        seconds=drained.seconds,
    )
    return EXIT_OK


def _check_database(url: str) -> None:
    """One query before a command starts, so that an unreachable database stops it with one
    line: `serve` would otherwise look healthy and answer 500s. (Not migrated yet is fine for
    `serve`: /readyz says so until `syncd migrate` has run, as in a rolling deploy.)"""
    import sqlite3

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from syncd.store.db import Database

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # With the standard library: after a failed connect aiosqlite's thread may still hand
        # a result to the event loop once asyncio.run has closed it, and prints "Event loop is
        # closed" (omnilib/aiosqlite#241).
        database = parsed.database or ":memory:"
        try:
            with contextlib.closing(
                sqlite3.connect(database, uri=parsed.query.get("uri") == "true")
            ) as connection:
                connection.execute("SELECT 1")
        except sqlite3.Error as exc:
            raise CommandError(
                f"cannot use the database {hide_password(url)}: {_database_problem(url, exc)}"
            ) from None
        return

    async def query() -> None:
        db = Database(url)
        try:
            with database_errors(url):
                async with db.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        finally:
            await db.dispose()

    asyncio.run(query())


# -- migrate ---------------------------------------------------------------------------------


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    _check_database(settings.database_url)
    return asyncio.run(_migrate(settings, args.downgrade))


async def _migrate(settings: Settings, downgrade_to: str | None) -> int:
    from syncd.store.db import Database
    from syncd.store.migrate import downgrade, upgrade

    db = Database(settings.database_url)
    try:
        with database_errors(settings.database_url):
            result = await (downgrade(db, downgrade_to) if downgrade_to else upgrade(db))
    finally:
        await db.dispose()
    where = _describe_db(settings.database_url)
    if result.changed:
        print(f"{where}: migrated from {result.before or '(empty)'} to {result.after or 'base'}")
    else:
        print(f"{where}: already at {result.after or 'base'}; nothing to do")
    return EXIT_OK


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn a failure to use syncd's database into one line naming it (password hidden) and
    saying what went wrong, instead of a driver's bare `Connect call failed`."""
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        raise CommandError(
            f"cannot use the database {hide_password(url)}: {_database_problem(url, exc)}"
        ) from None


def _database_problem(url: str, exc: BaseException) -> str:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    reason = getattr(exc, "orig", None) or exc
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server running and listening there?)"
    if isinstance(reason, socket.gaierror):
        return "host not found"
    if isinstance(reason, TimeoutError):
        return "timed out connecting"
    text = _one_line(exc)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        folder = Path(parsed.database.removeprefix("file:")).parent
        if not folder.is_dir():
            return f"{text} (the folder {folder} does not exist)"
    return text


def hide_password(value: str) -> str:
    """`value` with any URL password (`user:PASSWORD@`, `?password=`) shown as ***; anything
    that is not a URL with a password comes back unchanged."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if not parts.scheme:
        return value
    shown = value
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.partition(":")[0]
        shown = shown.replace(f"//{userinfo}@", f"//{user}:***@", 1)
    if parts.query:
        head, _, query = shown.rpartition("?")
        shown = head + "?" + _QUERY_PASSWORD.sub(r"\1\2=***", query)
    return shown


def _describe_db(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite {parsed.database}"
    return f"PostgreSQL {parsed.host}:{parsed.port or 5432}/{parsed.database}"


# -- keys ------------------------------------------------------------------------------------


def cmd_keys_generate(_settings: Settings, _args: argparse.Namespace) -> int:
    from syncd.vault import generate_key

    print(generate_key())
    return EXIT_OK


def cmd_keys_rotate(settings: Settings, _args: argparse.Namespace) -> int:
    settings.require("SYNCD_ENCRYPTION_KEYS")
    _check_database(settings.database_url)
    from syncd.store.db import Database
    from syncd.store.keys import rotate_all
    from syncd.vault import Vault

    async def run() -> int:
        db = Database(settings.database_url)
        try:
            with database_errors(settings.database_url):
                report = await rotate_all(db, Vault(settings.encryption_keys))
        finally:
            await db.dispose()
        print(
            f"re-encrypted {counted(report.secrets, 'secret')} in {counted(report.rows, 'row')} "
            f"under key 1 ({counted(report.grants, 'grant')}, "
            f"{counted(report.states, 'pending OAuth state')}); "
            f"{report.were_old} {'was' if report.were_old == 1 else 'were'} under an older key"
        )
        return EXIT_OK

    return asyncio.run(run())


# -- token / sandbox -------------------------------------------------------------------------


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import timedelta
    from urllib.parse import urlencode

    from syncd.web.auth import Role, mint_token
    from syncd.web.pages.handoff import HANDOFF_MAX_SECONDS, LOGIN_PATH

    settings.require("SYNCD_JWT_SECRET")
    if args.role is None and not args.sign_in:
        raise CommandError("--role is required (or --sign-in, for a practice admin's link)")
    role = Role(args.role or Role.PRACTICE_ADMIN)
    if role is not Role.SUPER_ADMIN and not args.company:
        raise CommandError(f"--company is required for the {role.value} role")
    ttl = args.ttl or (HANDOFF_MAX_SECONDS if args.sign_in else 3600)
    if args.sign_in:
        if not args.company:
            raise CommandError("--company is required: a sign-in link opens one practice")
        if role not in {Role.PRACTICE_ADMIN, Role.SUPER_ADMIN}:
            raise CommandError(f"the {role.value} role cannot sign in to the console")
        if ttl > HANDOFF_MAX_SECONDS:
            raise CommandError(
                f"a sign-in link lives at most {HANDOFF_MAX_SECONDS} seconds (--ttl {ttl})"
            )
    token = mint_token(
        settings, user=args.user, role=role, company=args.company, ttl=timedelta(seconds=ttl)
    )
    if not args.sign_in:
        print(token)
        return EXIT_OK
    query = {"token": token}
    if role is Role.SUPER_ADMIN and args.company:
        query["company_id"] = args.company
    # Listening on every interface: this machine's browser reaches it on loopback.
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host  # noqa: S104
    base = (args.url or f"http://{host}:{settings.port}").rstrip("/")
    print(f"{base}{LOGIN_PATH}?{urlencode(query)}")
    return EXIT_OK


def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.ports import address, listen
    from syncd.sandbox.server import serve_sandbox

    _setup_logging(settings)
    sock = listen(args.host, args.port, option="--port")
    tenants = args.tenant or ["Demo Practice"]
    print(
        f"sandbox serving on {address(sock)}: OAuth app {args.client_id}, "
        f"{counted(len(tenants), 'organisation')} ({', '.join(tenants)}); "
        "each request is logged below; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        serve_sandbox(
            sock=sock,
            client_id=args.client_id,
            client_secret=args.client_secret,
            redirect_uris=args.redirect_uri,
            webhook_key=args.webhook_key,
            webhook_url=args.webhook_url,
            tenants=tenants,
            time_scale=args.time_scale,
        )
    finally:
        sock.close()
    return EXIT_OK


def cmd_sample_crm(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.sandbox.crm import create_sample_crm

    url = args.database or settings.crm_database_url
    if not url:
        raise CommandError("say where: --database URL, or set SYNCD_CRM_DATABASE_URL")
    sample = asyncio.run(
        create_sample_crm(url, practices=args.practices, requests_per_practice=args.requests)
    )
    for practice in sample.practices:
        print(
            f"{practice.name}: company {practice.company_id}, admin {practice.admin_id}, "
            f"{counted(len(practice.accountant_ids), 'accountant')}, "
            f"{counted(len(practice.client_ids), 'client')}, "
            f"{counted(len(practice.request_ids), 'request')}"
        )
    return EXIT_OK


# -- sync-job ---------------------------------------------------------------------------------


def cmd_sync_job(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("SYNCD_ENCRYPTION_KEYS", "XERO_CLIENT_ID", "SYNCD_CRM_DATABASE_URL")
    _setup_logging(settings)
    return asyncio.run(
        _sync_job(settings, args.request_id, args.company, args.timeout, as_json=args.json)
    )


async def _sync_job(
    settings: Settings, request_id: str, company_text: str, wait: int, *, as_json: bool
) -> int:
    import json
    import time

    from syncd.domain.ids import CompanyId
    from syncd.domain.tasks import sync_request
    from syncd.pipeline.outbox import TaskRepository, enqueue_spec
    from syncd.services import open_services

    def show(line: str) -> None:
        if not as_json:
            print(line, flush=True)

    def outcome(state: str, attempts: int, result: Any, error: str | None) -> None:
        if as_json:
            document = {
                "task_id": task.id,
                "request_id": request_id,
                "company": company,
                "state": state,
                "attempts": attempts,
                "result": result,
                "error": error,
            }
            print(json.dumps(document, indent=2, default=str), flush=True)

    company = CompanyId(company_text)
    async with open_services(settings) as services:
        assert services.crm is not None
        if await services.crm.get_request(company=company, request_id=request_id) is None:
            raise CommandError(f"request {request_id} is not in practice {company}")
        now = services.clock.now()
        async with services.db.transaction() as session:
            task = await enqueue_spec(session, company, sync_request(request_id, now), now=now)
        show(f"task {task.id} queued: sync request {request_id} of practice {company}")
        deadline, shown, current = time.monotonic() + wait, "", task
        while time.monotonic() < deadline:
            await services.worker.tick_outbox()
            await asyncio.sleep(0.2)
            async with services.db.transaction() as session:
                found = await TaskRepository(session).get(company=company, task_id=task.id)
            assert found is not None
            current = found
            line = f"  {current.state} (attempt {current.attempts})"
            if current.last_error and current.state == "pending":
                line += f", retrying at {current.run_after:%H:%M:%S}: {current.last_error}"
            if line != shown and current.state in {"pending", "running"}:
                show(line)
                shown = line
            if current.state == "done":
                outcome("done", current.attempts, current.result, None)
                show(f"done: {describe_sync(current.result or {})}")
                return EXIT_OK
            if current.state == "dead":
                outcome("dead", current.attempts, None, current.last_error)
                print(f"syncd: failed: {current.last_error}", file=sys.stderr)
                return EXIT_FAILURE
        await services.worker.close(grace=5)
    outcome(current.state, current.attempts, None, current.last_error)
    print(
        f"syncd: still not finished after {wait}s; the worker will go on with it", file=sys.stderr
    )
    return EXIT_FAILURE


def describe_sync(result: dict[str, Any]) -> str:
    """A manual sync's result (see OutboundHandlers.sync_request) as a sentence."""
    created = result.get("created")
    if isinstance(created, dict):
        if "skipped" in created:
            return f"nothing to do: {created['skipped']}"
        job = created.get("job_number") or created.get("job_id")
        return f"created job {job} in Xero and wrote it back to the CRM"
    if "skipped" in result:
        return f"nothing to do: {result['skipped']}"
    if result.get("in_sync"):
        return f"already in sync: job {result.get('job_id')} is {result.get('state')} in Xero"
    if "state" in result:
        return f"set job {result.get('job_id')} to {result['state']} in Xero"
    return ", ".join(f"{key} {value}" for key, value in result.items()) or "nothing to report"


# -- reconcile --------------------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar on a terminal (stderr), redrawn in place."""

    def __init__(self, stream: Any, width: int = 30) -> None:
        self.stream = stream
        self.width = width

    def update(self, step: str, done: int, total: int) -> None:
        filled = int(self.width * done / max(total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {100 * done // max(total, 1):3d}% {step:<40}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("SYNCD_ENCRYPTION_KEYS", "XERO_CLIENT_ID", "SYNCD_CRM_DATABASE_URL")
    _setup_logging(settings)
    return asyncio.run(_reconcile(settings, args.company, args.dry_run, args.format, args.timeout))


async def _reconcile(
    settings: Settings, company_text: str, dry_run: bool, shape: str, wait: int
) -> int:
    import time

    from reconcilers.report import to_csv, to_json, to_text
    from syncd.domain.ids import CompanyId
    from syncd.pipeline.reconcile import finding_row, queue_run, run_row
    from syncd.services import open_services
    from syncd.store.connections import ConnectionRepository
    from syncd.store.reports import FindingRepository, RunRepository

    company = CompanyId(company_text)
    async with open_services(settings) as services:
        reconciler = services.reconciler
        assert reconciler is not None
        async with services.db.transaction() as session:
            if await ConnectionRepository(session).get_active(company=company) is None:
                raise CommandError(f"practice {company} is not connected to Xero")
        run = await queue_run(
            services.db, company, trigger="cli", dry_run=dry_run, by="cli", now=services.clock.now()
        )
        if shape == "text" and sys.stderr.isatty():
            reconciler.progress[run.id] = ProgressBar(sys.stderr).update
        else:
            print(f"reconciliation {run.id} queued", file=sys.stderr)
        deadline = time.monotonic() + wait
        while True:
            await services.worker.tick_outbox()
            async with services.db.transaction() as session:
                current = await RunRepository(session).get(company=company, run_id=run.id)
                assert current is not None
                if current.state in {"finished", "failed"}:
                    findings = await FindingRepository(session).for_run(
                        company=company, run_id=run.id
                    )
                    break
            if time.monotonic() > deadline:
                raise CommandError(f"reconciliation {run.id} did not finish within {wait}s")
            await asyncio.sleep(0.1)
        await services.worker.wait_idle()
    if current.state == "failed":
        raise CommandError(f"reconciliation failed: {current.error}")
    rows = [finding_row(f) for f in findings]
    if shape == "json":
        print(to_json(run_row(current), rows))
    elif shape == "csv":
        print(to_csv(rows), end="")
    else:
        print(to_text(current.counts, rows))
        print(
            f"\n{counted(len(rows), 'finding')}, {sum(r['state'] == 'open' for r in rows)} open, "
            f"{counted(current.xero_calls, 'Xero call')}"
        )
    return EXIT_OK if not any(r["state"] == "open" for r in rows) else EXIT_FAILURE


# -- demo ------------------------------------------------------------------------------------


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from syncd import envfile
    from syncd.demo import (
        ENV_HEADER,
        HOST,
        Demo,
        Summary,
        demo_values,
        dumps,
        foreign_settings,
        fresh_start,
        print_summary,
        shown,
        syncd_command,
    )
    from syncd.ports import listen
    from syncd.settings import with_values

    configure_logging(
        "console" if not args.json else "json", "warning", secrets=_secrets_of(settings)
    )
    # A scheduler tick skipped because the previous one still runs is by design (one drain at a
    # time); on the demo's terminal it reads like a fault.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    folder = Path.cwd()
    values = demo_values(settings, folder, port=args.port, sandbox_port=args.sandbox_port)
    env_file = folder / ".env"
    if foreign := foreign_settings(env_file, values):
        raise CommandError(
            f"{env_file} has settings of its own ({', '.join(foreign)}); run the demo in a "
            "folder of its own (make demo uses .demo/)"
        )
    # Both ports before anything is written: a busy one stops the demo with the folder as it was.
    sockets = None
    if args.serve:
        sockets = [listen(HOST, args.port, option="--port")]
        try:
            sockets.append(listen(HOST, args.sandbox_port, option="--sandbox-port"))
        except PortInUse:
            sockets[0].close()
            raise
    envfile.update(env_file, values, header=ENV_HEADER)
    demo = with_values(settings, values)
    command, on_path = syncd_command(folder)
    summary = Summary(
        env_file=str(env_file), settings=shown(values), syncd=command, on_path=on_path
    )

    def told(summary: Summary) -> None:
        if args.json:
            print(dumps(summary), flush=True)
        else:
            print_summary(summary)
            sys.stdout.flush()

    say = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    fresh_start(demo)
    try:
        asyncio.run(Demo(demo, say, summary=summary).run(sockets=sockets, told=told))
    finally:
        for sock in sockets or ():
            sock.close()
    complete = summary.jobs_created == summary.requests_assigned > 0
    return EXIT_OK if complete and summary.statuses_to_crm and summary.statuses_to_xero else 1


# -- config ----------------------------------------------------------------------------------


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.settings import describe, example_env, markdown_table

    if args.example:
        print(example_env(), end="")
    elif args.markdown:
        print(markdown_table())
    else:
        shown = [(name, hide_password(value)) for name, value in describe(settings)]
        width = max(len(name) for name, _ in shown)
        for name, value in shown:
            print(f"{name:<{width}}  {value}")
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description=(
            "syncd keeps an accounting practice's CRM and Xero in two-way sync. "
            "Configuration comes from the environment (and a .env file in the working folder); "
            "see docs/configuration.md for every setting."
        ),
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the HTTP service (webhooks, admin API, pages)",
        description=(
            "Serve the HTTP API on SYNCD_HOST:SYNCD_PORT, with /healthz and /readyz. On SQLite "
            "(the embedded default) the scheduler runs in the same process; on PostgreSQL run "
            "`syncd worker` beside it. Stops gracefully on SIGTERM."
        ),
    )
    serve.add_argument("--host", help="interface to listen on (default: SYNCD_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: SYNCD_PORT)")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser(
        "worker",
        help="run only the scheduler (outbox, inbox, polling, reconciliation)",
        description=(
            "Run the background jobs without serving HTTP. Several workers may run against one "
            "PostgreSQL database. Stops gracefully on SIGTERM, letting running jobs finish."
        ),
    )
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade syncd's database schema",
        description=(
            "Apply Alembic migrations to SYNCD_DATABASE_URL up to the latest revision. Running "
            "it again does nothing. --downgrade REV goes back (use `base` to drop everything)."
        ),
    )
    migrate.add_argument("--downgrade", metavar="REV", help="downgrade to REV (e.g. base)")
    migrate.set_defaults(handler=cmd_migrate)

    token = commands.add_parser(
        "token",
        help="mint a development JWT like the CRM's (needs SYNCD_JWT_SECRET)",
        description=(
            "Print a signed HS256 JWT with the claims the CRM puts in its tokens (sub, role, "
            "company_id), so the admin endpoints can be tried with curl: "
            'curl -H "Authorization: Bearer $(syncd token --role practice_admin --company C '
            '--user U)" ... With --sign-in it prints a link to the admin console instead '
            "(/admin/login?token=...): it signs a practice admin (or, with --role super_admin, "
            "a super admin for --company) in once, within 10 minutes."
        ),
    )
    token.add_argument(
        "--role",
        choices=["super_admin", "practice_admin", "accountant", "client"],
        help="the user's role (required, except with --sign-in: practice_admin)",
    )
    token.add_argument("--company", help="the practice (company id) the user belongs to")
    token.add_argument("--user", required=True, help="the user id (the token's `sub`)")
    token.add_argument(
        "--ttl",
        type=int,
        help="lifetime in seconds (default 3600; with --sign-in 600, the most it may be)",
    )
    token.add_argument(
        "--sign-in",
        action="store_true",
        help=(
            "print a console sign-in link (/admin/login?token=...) instead: it signs in once, "
            "within 10 minutes"
        ),
    )
    token.add_argument(
        "--url",
        help="syncd's address for --sign-in (default: http://SYNCD_HOST:SYNCD_PORT)",
    )
    token.set_defaults(handler=cmd_token)

    sandbox = commands.add_parser(
        "sandbox",
        help="run the bundled Xero simulator (for the demo and trying things by hand)",
        description=(
            "Serve a faithful Xero simulator (OAuth identity, connections, Projects, Contacts, "
            "rate limits, faults, a request ledger and a control API under /_sandbox/). Point "
            "XERO_LOGIN_URL, XERO_IDENTITY_URL and XERO_API_URL at it."
        ),
    )
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8900)
    sandbox.add_argument("--client-id", default="syncd-dev", help="OAuth app to register")
    sandbox.add_argument("--client-secret", default=None, help="its secret (omit: PKCE only)")
    sandbox.add_argument(
        "--redirect-uri",
        action="append",
        default=None,
        help="allowed redirect URI (repeatable; default: syncd's default callback)",
    )
    sandbox.add_argument("--webhook-key", default=None, help="key to sign webhooks with")
    sandbox.add_argument(
        "--webhook-url",
        default=None,
        help="where to deliver webhooks (default: syncd's own endpoint on 127.0.0.1:8000)",
    )
    sandbox.add_argument(
        "--tenant",
        action="append",
        default=None,
        help="organisation name to create (repeatable; default: one 'Demo Practice')",
    )
    sandbox.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="run the sandbox's clock faster (60: a rate-limit minute lasts a second)",
    )
    sandbox.set_defaults(handler=cmd_sandbox)

    sync_job = commands.add_parser(
        "sync-job",
        help="sync one CRM request with Xero now, and wait for the outcome",
        description=(
            "Queue a manual sync of REQUEST_ID (create its Xero job if it has none, otherwise "
            "make Xero's job state match the request, checking Xero's actual job) and run it, "
            "printing progress (logs go to stderr). Exit 0 when done, 1 when it failed or timed "
            "out."
        ),
    )
    sync_job.add_argument("request_id", metavar="REQUEST_ID")
    sync_job.add_argument("--company", required=True, help="the request's practice (company id)")
    sync_job.add_argument("--timeout", type=int, default=120, help="seconds to wait (default 120)")
    sync_job.add_argument(
        "--json",
        action="store_true",
        help="print only the outcome, as one JSON document (task, state, attempts, result, error)",
    )
    sync_job.set_defaults(handler=cmd_sync_job)

    reconcile = commands.add_parser(
        "reconcile",
        help="compare a practice's CRM and Xero now, heal what policy allows, report the rest",
        description=(
            "Reconcile one practice: snapshot both systems, find drift (requests without jobs, "
            "jobs gone from Xero, status drift, unmapped clients/staff/services, duplicate jobs, "
            "archived contacts), heal what the practice's policy allows (--dry-run: propose "
            "only) and print the report. Exit 0 when no finding is left open, 1 when some need "
            "review."
        ),
    )
    reconcile.add_argument("--company", required=True, help="the practice (company id)")
    reconcile.add_argument("--dry-run", action="store_true", help="propose, change nothing")
    reconcile.add_argument("--format", choices=["text", "json", "csv"], default="text")
    reconcile.add_argument("--timeout", type=int, default=600, help="seconds to wait")
    reconcile.set_defaults(handler=cmd_reconcile)

    demo = commands.add_parser(
        "demo",
        help="tell the whole story on SQLite and the bundled Xero sandbox",
        description=(
            "Create a sample CRM, connect two practices to their own sandbox organisations, "
            "assign requests and watch the Xero jobs appear, close a job in Xero and see the "
            "request complete in the CRM, complete a request in the CRM and see the job close, "
            "then print a summary. Every run starts afresh in the working folder (it replaces "
            "syncd-demo.db and crm-demo.db there) and writes its configuration to .env there, "
            "so every syncd command run in that folder works on the demo. Exit code 0 when "
            "every step worked."
        ),
    )
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="keep serving afterwards (syncd and the sandbox) until Ctrl-C",
    )
    demo.add_argument(
        "--port", type=int, default=8000, help="syncd's port with --serve (default 8000)"
    )
    demo.add_argument(
        "--sandbox-port",
        type=int,
        default=8900,
        help="the Xero sandbox's port with --serve (default 8900)",
    )
    demo.set_defaults(handler=cmd_demo)

    sample = commands.add_parser(
        "sample-crm",
        help="create the CRM's tables and fill them with sample practices (demo, trying out)",
        description=(
            "Create the CRM tables syncd reads and writes (companies, users, services, "
            "service_requests) in --database (default SYNCD_CRM_DATABASE_URL) and fill them with "
            "practices, accountants, clients, services and requests. Running it again adds "
            "nothing: the sample's ids are fixed."
        ),
    )
    sample.add_argument("--database", help="the CRM database URL")
    sample.add_argument("--practices", type=int, default=2)
    sample.add_argument("--requests", type=int, default=6, help="requests per practice")
    sample.set_defaults(handler=cmd_sample_crm)

    config = commands.add_parser(
        "config",
        help="show the effective configuration (secrets hidden)",
        description=(
            "Print every setting with the value syncd would use here (environment over .env "
            "over defaults); secrets show only whether they are set, and passwords in URLs "
            "show as ***."
        ),
    )
    shape = config.add_mutually_exclusive_group()
    shape.add_argument("--example", action="store_true", help="print a documented example .env")
    shape.add_argument(
        "--markdown", action="store_true", help="print the settings table of docs/configuration.md"
    )
    config.set_defaults(handler=cmd_config)

    keys = commands.add_parser(
        "keys",
        help="manage the token encryption keys",
        description="Generate a new encryption key, or re-encrypt stored secrets after adding one.",
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    generate = key_commands.add_parser(
        "generate",
        help="print a new key",
        description=(
            "Print a new Fernet key. To rotate: put it FIRST in SYNCD_ENCRYPTION_KEYS (keep the "
            "old keys after it), restart, run `syncd keys rotate`, then drop the old keys."
        ),
    )
    generate.set_defaults(handler=cmd_keys_generate)
    rotate = key_commands.add_parser(
        "rotate",
        help="re-encrypt every stored secret under the first key",
        description=(
            "Re-encrypt every stored token and PKCE verifier under the first key of "
            "SYNCD_ENCRYPTION_KEYS, in one transaction, and report the counts."
        ),
    )
    rotate.set_defaults(handler=cmd_keys_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        settings = load_settings()
        return handler(settings, args)
    except SettingsError as exc:
        print(f"syncd: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandError, VaultError, PortInUse) as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except SQLAlchemyError as exc:
        print(f"syncd: database error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"syncd: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _one_line(exc: Any) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
