"""The `syncd` command: serve, worker, migrate, keys.

Every command reads the settings once; a bad or missing setting ends the command with one line
naming the variable and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
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
from syncd.settings import Settings, SettingsError, load_settings
from syncd.vault import VaultError

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
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=20,
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
        runner = SchedulerRunner(services)
        runner.start()
        log.info("worker.started")
        await stop.wait()
        log.info("worker.stopping")
        await runner.stop()
    return EXIT_OK


# -- migrate ---------------------------------------------------------------------------------


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
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
            f"re-encrypted {report.secrets} secrets in {report.rows} rows under key 1 "
            f"({report.grants} grants, {report.states} pending OAuth states); "
            f"{report.were_old} were under an older key"
        )
        return EXIT_OK

    return asyncio.run(run())


# -- token / sandbox -------------------------------------------------------------------------


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import timedelta

    from syncd.web.auth import Role, mint_token

    settings.require("SYNCD_JWT_SECRET")
    role = Role(args.role)
    if role is not Role.SUPER_ADMIN and not args.company:
        raise CommandError(f"--company is required for the {role.value} role")
    print(
        mint_token(
            settings,
            user=args.user,
            role=role,
            company=args.company,
            ttl=timedelta(seconds=args.ttl),
        )
    )
    return EXIT_OK


def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.sandbox.server import serve_sandbox

    _setup_logging(settings)
    serve_sandbox(
        host=args.host,
        port=args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uri,
        webhook_key=args.webhook_key,
        webhook_url=args.webhook_url,
        tenants=args.tenant,
        time_scale=args.time_scale,
    )
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
            f"{len(practice.accountant_ids)} accountants, {len(practice.client_ids)} clients, "
            f"{len(practice.request_ids)} requests"
        )
    return EXIT_OK


# -- sync-job ---------------------------------------------------------------------------------


def cmd_sync_job(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("SYNCD_ENCRYPTION_KEYS", "XERO_CLIENT_ID", "SYNCD_CRM_DATABASE_URL")
    _setup_logging(settings)
    return asyncio.run(_sync_job(settings, args.request_id, args.company, args.timeout))


async def _sync_job(settings: Settings, request_id: str, company_text: str, wait: int) -> int:
    import time

    from syncd.domain.ids import CompanyId
    from syncd.domain.tasks import sync_request
    from syncd.pipeline.outbox import TaskRepository, enqueue_spec
    from syncd.services import open_services

    company = CompanyId(company_text)
    async with open_services(settings) as services:
        assert services.crm is not None
        if await services.crm.get_request(company=company, request_id=request_id) is None:
            raise CommandError(f"request {request_id} is not in practice {company}")
        now = services.clock.now()
        async with services.db.transaction() as session:
            task = await enqueue_spec(session, company, sync_request(request_id, now), now=now)
        print(f"task {task.id} queued: sync request {request_id}", flush=True)
        deadline, shown = time.monotonic() + wait, ""
        while time.monotonic() < deadline:
            await services.worker.tick_outbox()
            await asyncio.sleep(0.2)
            async with services.db.transaction() as session:
                current = await TaskRepository(session).get(company=company, task_id=task.id)
            assert current is not None
            line = f"  {current.state} (attempt {current.attempts})"
            if current.last_error and current.state == "pending":
                line += f", retrying at {current.run_after:%H:%M:%S}: {current.last_error}"
            if line != shown:
                print(line, flush=True)
                shown = line
            if current.state == "done":
                print(f"done: {current.result}")
                return EXIT_OK
            if current.state == "dead":
                print(f"failed: {current.last_error}", file=sys.stderr)
                return EXIT_FAILURE
        await services.worker.close(grace=5)
    print(f"still not finished after {wait}s; the worker will go on with it", file=sys.stderr)
    return EXIT_FAILURE


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
            f"\n{len(rows)} findings, {sum(r['state'] == 'open' for r in rows)} open, "
            f"{current.xero_calls} Xero calls"
        )
    return EXIT_OK if not any(r["state"] == "open" for r in rows) else EXIT_FAILURE


# -- demo ------------------------------------------------------------------------------------


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from syncd.demo import Demo, Summary, demo_settings, dumps, fresh_start, print_summary

    configure_logging(
        "console" if not args.json else "json", "warning", secrets=_secrets_of(settings)
    )

    def told(summary: Summary) -> None:
        if args.json:
            print(dumps(summary), flush=True)
        else:
            print_summary(summary)

    say = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    demo = demo_settings(settings, Path.cwd())
    fresh_start(demo)
    summary = asyncio.run(Demo(demo, say).run(serve=args.serve, told=told))
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
            "see README.md for every setting."
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
            '--user U)" ...'
        ),
    )
    token.add_argument(
        "--role",
        required=True,
        choices=["super_admin", "practice_admin", "accountant", "client"],
    )
    token.add_argument("--company", help="the practice (company id) the user belongs to")
    token.add_argument("--user", required=True, help="the user id (the token's `sub`)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
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
            "printing progress. Exit 0 when done, 1 when it failed or timed out."
        ),
    )
    sync_job.add_argument("request_id", metavar="REQUEST_ID")
    sync_job.add_argument("--company", required=True, help="the request's practice (company id)")
    sync_job.add_argument("--timeout", type=int, default=120, help="seconds to wait (default 120)")
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
            "syncd-demo.db and crm-demo.db there). Exit code 0 when every step worked."
        ),
    )
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="keep serving afterwards (syncd on :8000, the sandbox on :8900) until Ctrl-C",
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
    shape.add_argument("--markdown", action="store_true", help="print the README's settings table")
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
    except (CommandError, VaultError) as exc:
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
