"""`syncd demo`: the whole story on the embedded default (SQLite) and the bundled sandbox.

A sample CRM with two practices: the first runs Xero Practice Manager, the second Xero Projects.
Each connects to its own Xero organisation through the real OAuth flow; the XPM practice maps its
accountants to staff and its services to job templates and picks a job category; admins assign
requests and syncd creates the jobs (on XPM from the template, with the accountant as manager);
a job completed in Xero reaches the CRM at the next poll (Xero sends no webhooks for jobs); a
request completed in the CRM completes its job; then a summary (and, with --json, the same as
JSON, per practice and backend). Every run starts a fresh story in the working folder (it
replaces the demo's two database files), so rerunning is safe. The demo's whole configuration
is written to `.env` in that folder, so every `syncd` command run there talks to the same
databases and sandbox. `--serve` keeps syncd (default :8000) and the sandbox (default :8900)
serving afterwards for a look around, and the summary prints a console sign-in link.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from syncd.crm.sql import SqlCrm
from syncd.domain.backends import Backend
from syncd.domain.ids import CompanyId, UserId
from syncd.pipeline.changefeed import ChangeFeed
from syncd.pipeline.mappings import save_services, save_staff
from syncd.pipeline.practice import save_settings
from syncd.sandbox.app import create_sandbox_app
from syncd.sandbox.crm import (
    SampleCrm,
    SamplePractice,
    assign_request,
    create_sample_crm,
    set_request_status,
)
from syncd.sandbox.models import Tenant
from syncd.sandbox.staff import Person, SeededMember, seed_staff
from syncd.sandbox.state import SandboxState
from syncd.sandbox.webhooks import WebhookDispatcher
from syncd.scheduler import enqueue_polls
from syncd.services import Services, open_services
from syncd.settings import Settings, is_secret
from syncd.store.db import Database
from syncd.store.migrate import upgrade
from syncd.web.app import create_app
from syncd.web.auth import Role, mint_token
from syncd.web.pages.handoff import HANDOFF_MAX_SECONDS, LOGIN_PATH
from syncd.wording import counted

HOST = "127.0.0.1"
PORT = 8000
SANDBOX_PORT = 8900
CLIENT_ID = "syncd-demo"
CLIENT_SECRET = "demo-client-secret-0123456789"  # noqa: S105 - the sandbox's demo app
WEBHOOK_KEY = "demo-webhook-key-0123456789"
ASSIGN_PER_PRACTICE = 3
# The demo's app may ask for Practice Manager's scopes (a real app needs Xero's approval).
DEMO_SCOPES = (
    "openid",
    "profile",
    "email",
    "offline_access",
    "projects",
    "accounting.contacts",
    "accounting.invoices.read",
    "practicemanager.job",
    "practicemanager.client",
    "practicemanager.staff",
)
# What each practice's organisation is: the first runs Practice Manager.
BACKENDS = (Backend.PRACTICE_MANAGER, Backend.PROJECTS)
TENANT_TYPES = {Backend.PRACTICE_MANAGER: "PRACTICEMANAGER", Backend.PROJECTS: "ORGANISATION"}
# What a user sets in Xero to complete a job, and what a completed request becomes there.
COMPLETED = {Backend.PRACTICE_MANAGER: "Completed", Backend.PROJECTS: "CLOSED"}

Say = Callable[[str], None]
# The comment above the lines the demo adds to `.env`: a file with it is the demo's to update.
ENV_HEADER = "written by `syncd demo`: the demo's configuration"


@dataclass
class Summary:
    practices: list[dict[str, Any]] = field(default_factory=list)
    requests_assigned: int = 0
    jobs_created: int = 0
    statuses_to_crm: int = 0
    statuses_to_xero: int = 0
    xero_calls: int = 0
    endpoints: dict[str, str] = field(default_factory=dict)
    # Where the demo's configuration was written, and each variable as it may be shown.
    env_file: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    # How to run syncd from the demo's folder, and whether plain `syncd` is on PATH.
    syncd: str = "syncd"
    on_path: bool = True
    # A single-use console sign-in link (only while the demo serves).
    console: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "practices": self.practices,
            "requests_assigned": self.requests_assigned,
            "jobs_created": self.jobs_created,
            "statuses_applied": {
                "xero_to_crm": self.statuses_to_crm,
                "crm_to_xero": self.statuses_to_xero,
            },
            "xero_calls": self.xero_calls,
            "endpoints": self.endpoints,
            "env_file": self.env_file,
            "settings": self.settings,
            "syncd": self.syncd,
            "console": self.console,
        }


def demo_values(base: Settings, folder: Path, *, port: int, sandbox_port: int) -> dict[str, str]:
    """Every setting the demo runs on, as `.env` lines: fresh files in `folder`, Xero = the
    bundled sandbox on `sandbox_port`, syncd on `port`. Keys and the JWT secret already set
    (the environment, or the `.env` that `make demo` starts) are kept; missing ones are made."""
    sandbox = f"http://{HOST}:{sandbox_port}"
    keys = [key.reveal() for key in base.encryption_keys] or [_fernet_key()]
    jwt_secret = base.jwt_secret.reveal() if base.jwt_secret else secrets.token_urlsafe(32)
    return {
        "SYNCD_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'syncd-demo.db'}",
        "SYNCD_CRM_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'crm-demo.db'}",
        "SYNCD_ENCRYPTION_KEYS": ",".join(keys),
        "SYNCD_JWT_SECRET": jwt_secret,
        "SYNCD_HOST": HOST,
        "SYNCD_PORT": str(port),
        "XERO_CLIENT_ID": CLIENT_ID,
        "XERO_CLIENT_SECRET": CLIENT_SECRET,
        "XERO_REDIRECT_URI": f"http://{HOST}:{port}/api/integrations/xero/callback",
        "XERO_WEBHOOK_KEY": WEBHOOK_KEY,
        "XERO_API_URL": sandbox,
        "XERO_IDENTITY_URL": sandbox,
        "XERO_LOGIN_URL": sandbox,
        "XERO_SCOPES": " ".join(DEMO_SCOPES),
        # Changes made in Xero reach syncd by polling only: poll as often as allowed.
        "SYNCD_POLL_INTERVAL_MINUTES": "1",
    }


def foreign_settings(env_file: Path, values: dict[str, str]) -> list[str]:
    """The demo's variables that `env_file` sets although no demo wrote it: a folder with its
    own configuration (say, the repository's `.env`) is not the demo's to rewrite. The key and
    JWT secret `make demo` writes first are the demo's own."""
    from syncd import envfile

    names, comments = envfile.read(env_file)
    if ENV_HEADER in comments:
        return []
    ours = {"SYNCD_ENCRYPTION_KEYS", "SYNCD_JWT_SECRET"}
    return sorted(name for name in names if name in values and name not in ours)


def shown(values: dict[str, str]) -> dict[str, str]:
    """The values as the summary may print them: secrets only as set."""
    return {name: "(secret, in .env)" if is_secret(name) else v for name, v in values.items()}


def _fernet_key() -> str:
    from syncd.vault import generate_key

    return generate_key()


def syncd_command(folder: Path) -> tuple[str, bool]:
    """How to run syncd from `folder` (plain `syncd` when that is this one on PATH, else its
    path, e.g. `../.venv/bin/syncd`), and whether it is on PATH."""
    script = Path(sys.argv[0])
    if script.name != "syncd":  # `python -m syncd`: the console script beside this python
        script = Path(sys.executable).with_name("syncd")
    if not script.is_file():
        return f"{sys.executable} -m syncd", False
    found = shutil.which("syncd")
    if found and Path(found).resolve() == script.resolve():
        return "syncd", True
    relative = os.path.relpath(script.absolute(), folder)
    return (relative if relative.count("..") <= 1 else str(script.absolute())), False


class Demo:
    def __init__(self, settings: Settings, say: Say, *, summary: Summary) -> None:
        self.settings = settings
        self.say = say
        self.summary = summary
        self.syncd_url = f"http://{settings.host}:{settings.port}"
        self.sandbox = SandboxState()
        self.sandbox.register_app(
            CLIENT_ID,
            CLIENT_SECRET,
            [settings.xero_redirect_uri],
            WEBHOOK_KEY,
            webhook_url=f"{self.syncd_url}/api/integrations/xero/webhook",
        )
        self.sandbox_app = create_sandbox_app(self.sandbox)
        self.first: SamplePractice | None = None

    async def run(
        self, *, sockets: Sequence[socket.socket] | None, told: Callable[[Summary], None]
    ) -> Summary:
        """Tell the story, hand the summary to `told`, then keep serving on `sockets` (syncd's,
        the sandbox's; bound by the caller before anything started) when given."""
        db = Database(self.settings.database_url)
        await upgrade(db)
        self.say("1. syncd's database migrated (SQLite, a fresh file)")
        assert self.settings.crm_database_url is not None
        sample = await create_sample_crm(self.settings.crm_database_url, practices=2)
        self.say(f"2. sample CRM created: {', '.join(p.name for p in sample.practices)}")
        crm = SqlCrm(self.settings.crm_database_url)
        transport = httpx.ASGITransport(app=self.sandbox_app)
        try:
            async with open_services(
                self.settings, db=db, crm=crm, xero_transport=transport
            ) as services:
                app = create_app(self.settings, services=services, run_scheduler=False)
                await self._story(services, app, sample)
                if sockets:
                    self.summary.console = self.console_link()
                told(self.summary)
                if sockets:
                    await self._serve(services, app, sockets)
        finally:
            await crm.dispose()
            await db.dispose()
        return self.summary

    def console_link(self) -> str:
        """A sign-in link to the console for the first practice's admin: it signs in once,
        within the hand-off's 10 minutes (docs/console-security.md)."""
        assert self.first is not None
        token = mint_token(
            self.settings,
            user=UserId(self.first.admin_id),
            role=Role.PRACTICE_ADMIN,
            company=CompanyId(self.first.company_id),
            ttl=timedelta(seconds=HANDOFF_MAX_SECONDS),
        )
        return f"{self.syncd_url}{LOGIN_PATH}?token={token}"

    async def _story(self, services: Services, app: Any, sample: SampleCrm) -> None:
        crm = services.crm
        assert crm is not None
        syncd_client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=self.syncd_url
        )
        browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.sandbox_app))
        feed = ChangeFeed(db=services.db, crm=crm, clock=services.clock, settle=timedelta(0))
        crm_url = self.settings.crm_database_url or ""
        tenants: dict[str, Tenant] = {}
        async with syncd_client, browser:
            # -- connect each practice to its own organisation -----------------------------
            for practice, backend in zip(sample.practices, BACKENDS, strict=True):
                tenant = self.sandbox.add_tenant(
                    f"{practice.name} ({backend.label.removeprefix('Xero ')})",
                    tenant_type=TENANT_TYPES[backend],
                )
                tenants[practice.company_id] = tenant
                await self._connect(syncd_client, browser, practice, tenant)
                self.summary.practices.append(
                    {
                        "company_id": practice.company_id,
                        "name": practice.name,
                        "tenant": tenant.name,
                        "backend": backend.value,
                        "jobs": [],
                        "statuses_applied": {"xero_to_crm": 0, "crm_to_xero": 0},
                    }
                )
                self.say(f"3. {practice.name} connected to {tenant.name} (OAuth + PKCE)")
                people = await self._seed_people(services, practice, tenant)
                if backend is Backend.PRACTICE_MANAGER:
                    await self._set_up_practice_manager(services, practice, tenant, people)
            # -- admins assign requests: jobs appear in Xero --------------------------------
            now = datetime.now(UTC)
            assigned: dict[str, list[str]] = {}
            for practice in sample.practices:
                pending = await crm.list_requests(
                    company=CompanyId(practice.company_id), statuses=["pending"]
                )
                chosen = [r.request_id for r in pending[:ASSIGN_PER_PRACTICE]]
                for index, request_id in enumerate(chosen):
                    await assign_request(
                        crm_url,
                        company=CompanyId(practice.company_id),
                        request_id=request_id,
                        accountant_id=practice.accountant_ids[index % len(practice.accountant_ids)],
                        now=now,
                    )
                assigned[practice.company_id] = chosen
                self.summary.requests_assigned += len(chosen)
            self.say(
                f"4. admins assigned {counted(self.summary.requests_assigned, 'request')} "
                "in the CRM"
            )
            await self._settle(services, feed, sample)
            for practice, entry in zip(sample.practices, self.summary.practices, strict=True):
                tenant = tenants[practice.company_id]
                for request_id in assigned[practice.company_id]:
                    request = await crm.get_request(
                        company=CompanyId(practice.company_id), request_id=request_id
                    )
                    if request is None or not request.xero_job_id:
                        continue
                    self.summary.jobs_created += 1
                    job = self._job(tenant, request.xero_job_id, request.xero_job_number)
                    entry["jobs"].append({"request_id": request_id, **job})
                    extra = "".join(
                        f", {k} {job[k]}" for k in ("template", "manager", "state") if job.get(k)
                    )
                    self.say(
                        f'   job {request.xero_job_number} "{job["name"]}" in {tenant.name}'
                        f"{extra}; written back to the CRM"
                    )
            self.say(f"5. {counted(self.summary.jobs_created, 'Xero job')} created")
            # -- Xero → CRM: a job completed in Xero completes its request, at the next poll -----
            for practice, entry in zip(sample.practices, self.summary.practices, strict=True):
                if entry["jobs"]:
                    self._complete_in_xero(
                        tenants[practice.company_id], Backend(entry["backend"]), entry["jobs"][0]
                    )
            await enqueue_polls(services)
            await services.worker.wait_idle()
            for practice, entry in zip(sample.practices, self.summary.practices, strict=True):
                for job in entry["jobs"][:1]:
                    request = await crm.get_request(
                        company=CompanyId(practice.company_id), request_id=job["request_id"]
                    )
                    if request is not None and request.status == "completed":
                        self.summary.statuses_to_crm += 1
                        entry["statuses_applied"]["xero_to_crm"] += 1
            self.say(
                f"6. completed in Xero → completed in the CRM (by the poller; Xero sends no "
                f"webhook for jobs): {counted(self.summary.statuses_to_crm, 'request')}"
            )
            # -- CRM → Xero: a request completed in the CRM completes its job -------------------
            for practice, entry in zip(sample.practices, self.summary.practices, strict=True):
                if len(entry["jobs"]) < 2:
                    continue
                await set_request_status(
                    crm_url,
                    company=CompanyId(practice.company_id),
                    request_id=entry["jobs"][1]["request_id"],
                    status="completed",
                    now=datetime.now(UTC),
                )
            await self._settle(services, feed, sample)
            for practice, entry in zip(sample.practices, self.summary.practices, strict=True):
                backend = Backend(entry["backend"])
                tenant = tenants[practice.company_id]
                for job in entry["jobs"][1:2]:
                    state = self._job(tenant, job["job_id"], job["job_number"])["state"]
                    if state == COMPLETED[backend]:
                        self.summary.statuses_to_xero += 1
                        entry["statuses_applied"]["crm_to_xero"] += 1
            self.say(
                f"7. completed in the CRM → {' / '.join(COMPLETED.values())} in Xero: "
                f"{counted(self.summary.statuses_to_xero, 'job')}"
            )
            self.summary.xero_calls = sum(1 for e in self.sandbox.ledger if e.tenant_id)
            first = self.first = sample.practices[0]
            syncd = self.summary.syncd
            self.summary.endpoints = {
                "status": f"{self.syncd_url}/api/integrations/xero/status",
                "sync_logs": f"{self.syncd_url}/api/integrations/xero/sync-logs",
                "console": f"{self.syncd_url}/admin",
                "sandbox": f"{self.settings.xero_api_url}/_sandbox/tenants",
                "token": (
                    f"{syncd} token --role practice_admin --company {first.company_id} "
                    f"--user {first.admin_id}"
                ),
                "sign_in": (
                    f"{syncd} token --sign-in --company {first.company_id} --user {first.admin_id}"
                ),
                "reconcile": f"{syncd} reconcile --company {first.company_id}",
                "sync_job": (
                    f"{syncd} sync-job {first_request} --company {first.company_id}"
                    if (first_request := _first_request(self.summary))
                    else ""
                ),
            }

    async def _connect(
        self,
        syncd_client: httpx.AsyncClient,
        browser: httpx.AsyncClient,
        practice: SamplePractice,
        tenant: Tenant,
    ) -> None:
        """The admin's browser: syncd's connect (which sets the flow's cookie), Xero's consent
        page, syncd's callback (which wants that cookie back)."""
        self.sandbox.consent_tenant_ids = [tenant.tenant_id]
        token = mint_token(
            self.settings,
            user=UserId(practice.admin_id),
            role=Role.PRACTICE_ADMIN,
            company=CompanyId(practice.company_id),
            ttl=timedelta(minutes=5),
        )
        start = await syncd_client.get(
            "/api/integrations/xero/connect", headers={"Authorization": f"Bearer {token}"}
        )
        consent = await browser.get(start.headers["location"])
        back = urlsplit(consent.headers["location"])
        answer = await syncd_client.get(f"{back.path}?{back.query}")
        answer.raise_for_status()

    async def _seed_people(
        self, services: Services, practice: SamplePractice, tenant: Tenant
    ) -> list[SeededMember]:
        """The organisation's people as a practice has them: most accountants under their CRM
        email, one under a work address only its name matches, two people the CRM does not know
        (so the console's staff mapping has suggestions to show and one to accept by hand)."""
        crm = services.crm
        assert crm is not None
        accountants = await crm.list_accountants(company=CompanyId(practice.company_id))
        return seed_staff(
            self.sandbox,
            tenant.tenant_id,
            [Person(name=person.full_name, email=person.email) for person in accountants],
        )

    async def _set_up_practice_manager(
        self,
        services: Services,
        practice: SamplePractice,
        tenant: Tenant,
        people: Sequence[SeededMember],
    ) -> None:
        """The practice's XPM as a practice has it (job templates, a category), and the admin's
        first mappings: the staff suggested by email accepted (the one only a name matches is
        left for the console), services → templates, the default category."""
        crm = services.crm
        assert crm is not None
        company = CompanyId(practice.company_id)
        by_email = {m.crm_email: m for m in people if m.crm_email and m.email == m.crm_email}
        staff = [
            {"accountant_id": person.user_id, "staff_id": by_email[person.email].xero_id}
            for person in await crm.list_accountants(company=company)
            if person.email in by_email
        ]
        templates = []
        for service in await crm.list_services(company=company):
            template = self.sandbox.add_template(tenant.tenant_id, service.name)
            templates.append({"service_id": service.service_id, "template_id": template["UUID"]})
        category = self.sandbox.add_category(tenant.tenant_id, "Tax and compliance")
        await save_staff(services, company, staff)
        await save_services(services, company, templates)
        await save_settings(services, company, {"job_category_id": category.uuid}, by="demo")
        unmapped = len(people) - len(staff) - sum(1 for m in people if m.crm_email is None)
        self.say(
            f"   {counted(len(staff), 'accountant')} mapped to XPM staff by email "
            f"({unmapped} more to accept in the console's Staff page), "
            f"{counted(len(templates), 'service')} to job templates; new jobs go in category "
            f"{category.name!r}"
        )

    def _job(self, tenant: Tenant, job_id: str, number: str | None) -> dict[str, Any]:
        """The job as the sandbox holds it, for the summary."""
        if tenant.tenant_type != "PRACTICEMANAGER":
            project = self.sandbox.project(tenant.tenant_id, job_id)
            return {
                "job_id": job_id,
                "job_number": number,
                "name": project.name,
                "state": project.status,
            }
        job = self.sandbox.job(tenant.tenant_id, number or "")
        template = next(
            (t["Name"] for t in tenant.templates if t["UUID"] == job.template_uuid), None
        )
        manager = next((s["Name"] for s in tenant.staff if s["UUID"] == job.manager_uuid), None)
        return {
            "job_id": job_id,
            "job_number": number,
            "name": job.name,
            "state": job.state,
            "template": template,
            "manager": manager,
        }

    def _complete_in_xero(self, tenant: Tenant, backend: Backend, job: dict[str, Any]) -> None:
        """What a user in Xero does to complete the job."""
        if backend is Backend.PRACTICE_MANAGER:
            self.sandbox.update_job(tenant.tenant_id, job["job_number"], state=COMPLETED[backend])
        else:
            self.sandbox.set_project_status(tenant.tenant_id, job["job_id"], COMPLETED[backend])

    async def _settle(self, services: Services, feed: ChangeFeed, sample: SampleCrm) -> None:
        for practice in sample.practices:
            await feed.read(CompanyId(practice.company_id))
        await services.worker.wait_idle()

    async def _serve(self, services: Services, app: Any, sockets: Sequence[socket.socket]) -> None:
        import asyncio

        import uvicorn

        from syncd.ports import address
        from syncd.scheduler import SchedulerRunner

        webhooks = WebhookDispatcher(self.sandbox)
        runner = SchedulerRunner(services)
        runner.start()
        servers = [
            uvicorn.Server(
                uvicorn.Config(served, log_config=None, lifespan="off", access_log=False)
            )
            for served in (app, self.sandbox_app)
        ]

        async def flush_webhooks() -> None:
            while True:
                await asyncio.sleep(0.5)
                await webhooks.flush()

        flusher = asyncio.create_task(flush_webhooks())
        # The sockets already listen: a request sent from now on waits in the backlog.
        self.say("")
        self.say(
            f"Serving syncd on {address(sockets[0])} (console: /admin) and the sandbox on "
            f"{address(sockets[1])}; Ctrl-C stops."
        )
        try:
            await asyncio.gather(
                *(
                    server.serve(sockets=[sock])
                    for server, sock in zip(servers, sockets, strict=True)
                )
            )
        finally:
            flusher.cancel()
            await runner.stop()


def _first_request(summary: Summary) -> str | None:
    """A request of the first practice whose job the story left open (to try `sync-job` on)."""
    jobs = summary.practices[0]["jobs"] if summary.practices else []
    untouched = jobs[2:] or jobs
    return str(untouched[0]["request_id"]) if untouched else None


def fresh_start(settings: Settings) -> None:
    """Remove the previous run's demo databases (only those two files and their WAL)."""
    from sqlalchemy.engine import make_url

    for url in (settings.database_url, settings.crm_database_url or ""):
        database = make_url(url).database
        if database:
            for suffix in ("", "-wal", "-shm"):
                Path(database + suffix).unlink(missing_ok=True)


def print_summary(summary: Summary, out: Any = sys.stdout) -> None:
    def say(line: str = "") -> None:
        print(line, file=out)

    say()
    say("Summary")
    say(f"  practices connected:       {len(summary.practices)}")
    for practice in summary.practices:
        applied = practice["statuses_applied"]
        say(
            f"    {practice['name']}: {Backend(practice['backend']).label}, "
            f"{counted(len(practice['jobs']), 'job')}, statuses {applied['xero_to_crm']} in / "
            f"{applied['crm_to_xero']} out"
        )
    say(f"  requests assigned:         {summary.requests_assigned}")
    say(f"  Xero jobs created:         {summary.jobs_created}")
    say(f"  statuses Xero → CRM:       {summary.statuses_to_crm}")
    say(f"  statuses CRM → Xero:       {summary.statuses_to_xero}")
    say(f"  Xero calls made:           {summary.xero_calls}")
    if summary.settings:
        say()
        say(f"Settings, written to {summary.env_file} (every syncd command run in that folder")
        say("uses them; the environment still wins over .env):")
        width = max(len(name) for name in summary.settings)
        for name, value in summary.settings.items():
            say(f"  {name:<{width}}  {value}")
    if not summary.on_path:
        say()
        say(f"syncd is not on your PATH: the commands below run {summary.syncd}")
        say("(from the repository, `make shell` opens a shell where plain `syncd` works).")
    ends = summary.endpoints
    if not ends:
        return
    say()
    if summary.console is None:
        say("Run `syncd demo --serve` (or `make demo`) to keep syncd and the sandbox serving and")
        say("get a console sign-in link.")
        return
    say(f"While it serves (Ctrl-C stops), from {Path(summary.env_file).parent}:")
    say(f"  the admin console ({ends['console']}), signed in as the first practice's admin:")
    say(f"    {summary.console}")
    say(f"    (works once, within {HANDOFF_MAX_SECONDS // 60} minutes; another: {ends['sign_in']})")
    say("  the admin API:")
    say(f"    TOKEN=$({ends['token']})")
    for name in ("status", "sync_logs"):
        say(f'    curl -H "Authorization: Bearer $TOKEN" {ends[name]}')
    say("  the commands:")
    say(f"    {ends['reconcile']}")
    if ends.get("sync_job"):
        say(f"    {ends['sync_job']}")
    say(f"  the sandbox's organisations: {ends['sandbox']}")


def dumps(summary: Summary) -> str:
    return json.dumps(summary.as_json(), indent=2)
