"""`syncd demo`: the whole story on the embedded default (SQLite) and the bundled sandbox.

A sample CRM with two practices: the first runs Xero Practice Manager, the second Xero Projects.
Each connects to its own Xero organisation through the real OAuth flow; the XPM practice maps its
accountants to staff and its services to job templates and picks a job category; admins assign
requests and syncd creates the jobs (on XPM from the template, with the accountant as manager);
a job completed in Xero reaches the CRM at the next poll (Xero sends no webhooks for jobs); a
request completed in the CRM completes its job; then a summary (and, with --json, the same as
JSON, per practice and backend). Every run starts a fresh story in the working folder (it
replaces the demo's two database files), so rerunning is safe. `--serve` keeps syncd on :8000
and the sandbox on :8900 afterwards for a look around.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
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
from syncd.sandbox.state import SandboxState
from syncd.sandbox.webhooks import WebhookDispatcher
from syncd.scheduler import enqueue_polls
from syncd.services import Services, open_services
from syncd.settings import Secret, Settings
from syncd.store.db import Database
from syncd.store.migrate import upgrade
from syncd.web.app import create_app
from syncd.web.auth import Role, mint_token

SYNCD_URL = "http://127.0.0.1:8000"
SANDBOX_URL = "http://127.0.0.1:8900"
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


@dataclass
class Summary:
    practices: list[dict[str, Any]] = field(default_factory=list)
    requests_assigned: int = 0
    jobs_created: int = 0
    statuses_to_crm: int = 0
    statuses_to_xero: int = 0
    xero_calls: int = 0
    endpoints: dict[str, str] = field(default_factory=dict)

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
        }


def demo_settings(base: Settings, folder: Path) -> Settings:
    """The demo's own configuration: fresh files in `folder`, Xero = the bundled sandbox."""
    from dataclasses import replace

    keys = base.encryption_keys or (Secret(_fernet_key()),)
    return replace(
        base,
        database_url=f"sqlite+aiosqlite:///{folder / 'syncd-demo.db'}",
        crm_database_url=f"sqlite+aiosqlite:///{folder / 'crm-demo.db'}",
        encryption_keys=keys,
        xero_client_id=CLIENT_ID,
        xero_client_secret=Secret(CLIENT_SECRET),
        xero_redirect_uri=f"{SYNCD_URL}/api/integrations/xero/callback",
        xero_webhook_key=Secret(WEBHOOK_KEY),
        xero_api_url=SANDBOX_URL,
        xero_identity_url=SANDBOX_URL,
        xero_login_url=SANDBOX_URL,
        xero_scopes=DEMO_SCOPES,
        jwt_secret=base.jwt_secret or Secret(secrets.token_urlsafe(32)),
        embedded_scheduler="off",
        # Changes made in Xero reach syncd by polling only: poll as often as allowed.
        poll_interval_minutes=1,
    )


def _fernet_key() -> str:
    from syncd.vault import generate_key

    return generate_key()


class Demo:
    def __init__(self, settings: Settings, say: Say) -> None:
        self.settings = settings
        self.say = say
        self.summary = Summary()
        self.sandbox = SandboxState()
        self.sandbox.register_app(
            CLIENT_ID,
            CLIENT_SECRET,
            [settings.xero_redirect_uri],
            WEBHOOK_KEY,
            webhook_url=f"{SYNCD_URL}/api/integrations/xero/webhook",
        )
        self.sandbox_app = create_sandbox_app(self.sandbox)

    async def run(self, *, serve: bool, told: Callable[[Summary], None]) -> Summary:
        """Tell the story, hand the summary to `told`, then (with `serve`) keep serving."""
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
                told(self.summary)
                if serve:
                    await self._serve(services, app)
        finally:
            await crm.dispose()
            await db.dispose()
        return self.summary

    async def _story(self, services: Services, app: Any, sample: SampleCrm) -> None:
        crm = services.crm
        assert crm is not None
        syncd_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SYNCD_URL)
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
                if backend is Backend.PRACTICE_MANAGER:
                    await self._set_up_practice_manager(services, practice, tenant)
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
            self.say(f"4. admins assigned {self.summary.requests_assigned} requests in the CRM")
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
            self.say(f"5. {self.summary.jobs_created} Xero jobs created")
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
                f"webhook for jobs): {self.summary.statuses_to_crm} requests"
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
                f"{self.summary.statuses_to_xero} jobs"
            )
            self.summary.xero_calls = sum(1 for e in self.sandbox.ledger if e.tenant_id)
            first = sample.practices[0]
            self.summary.endpoints = {
                "status": f"{SYNCD_URL}/api/integrations/xero/status",
                "sync_logs": f"{SYNCD_URL}/api/integrations/xero/sync-logs",
                "token": (
                    f"syncd token --role practice_admin --company {first.company_id} "
                    f"--user {first.admin_id}"
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

    async def _set_up_practice_manager(
        self, services: Services, practice: SamplePractice, tenant: Tenant
    ) -> None:
        """The practice's XPM as a practice has it (staff, job templates, a category), and the
        admin's mappings: accountants → staff, services → templates, the default category."""
        crm = services.crm
        assert crm is not None
        company = CompanyId(practice.company_id)
        staff = []
        for person in await crm.list_accountants(company=company):
            member = self.sandbox.add_staff(tenant.tenant_id, person.full_name, person.email)
            staff.append({"accountant_id": person.user_id, "staff_id": member["UUID"]})
        templates = []
        for service in await crm.list_services(company=company):
            template = self.sandbox.add_template(tenant.tenant_id, service.name)
            templates.append({"service_id": service.service_id, "template_id": template["UUID"]})
        category = self.sandbox.add_category(tenant.tenant_id, "Tax and compliance")
        await save_staff(services, company, staff)
        await save_services(services, company, templates)
        await save_settings(services, company, {"job_category_id": category.uuid}, by="demo")
        self.say(
            f"   {len(staff)} accountants mapped to XPM staff, {len(templates)} services to job "
            f"templates; new jobs go in category {category.name!r}"
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

    async def _serve(self, services: Services, app: Any) -> None:
        import asyncio

        import uvicorn

        from syncd.scheduler import SchedulerRunner

        self.say("")
        self.say(f"Serving syncd on {SYNCD_URL} and the sandbox on {SANDBOX_URL}; Ctrl-C stops.")
        webhooks = WebhookDispatcher(self.sandbox)
        runner = SchedulerRunner(services)
        runner.start()
        servers = [
            uvicorn.Server(
                uvicorn.Config(
                    app,
                    host="127.0.0.1",
                    port=8000,
                    log_config=None,
                    lifespan="off",
                    access_log=False,
                )
            ),
            uvicorn.Server(
                uvicorn.Config(
                    self.sandbox_app,
                    host="127.0.0.1",
                    port=8900,
                    log_config=None,
                    lifespan="off",
                    access_log=False,
                )
            ),
        ]

        async def flush_webhooks() -> None:
            while True:
                await asyncio.sleep(0.5)
                await webhooks.flush()

        flusher = asyncio.create_task(flush_webhooks())
        try:
            await asyncio.gather(*(server.serve() for server in servers))
        finally:
            flusher.cancel()
            await runner.stop()


def fresh_start(settings: Settings) -> None:
    """Remove the previous run's demo databases (only those two files and their WAL)."""
    from sqlalchemy.engine import make_url

    for url in (settings.database_url, settings.crm_database_url or ""):
        database = make_url(url).database
        if database:
            for suffix in ("", "-wal", "-shm"):
                Path(database + suffix).unlink(missing_ok=True)


def print_summary(summary: Summary, out: Any = sys.stdout) -> None:
    print("", file=out)
    print("Summary", file=out)
    print(f"  practices connected:       {len(summary.practices)}", file=out)
    for practice in summary.practices:
        applied = practice["statuses_applied"]
        print(
            f"    {practice['name']}: {Backend(practice['backend']).label}, "
            f"{len(practice['jobs'])} jobs, statuses {applied['xero_to_crm']} in / "
            f"{applied['crm_to_xero']} out",
            file=out,
        )
    print(f"  requests assigned:         {summary.requests_assigned}", file=out)
    print(f"  Xero jobs created:         {summary.jobs_created}", file=out)
    print(f"  statuses Xero → CRM:       {summary.statuses_to_crm}", file=out)
    print(f"  statuses CRM → Xero:       {summary.statuses_to_xero}", file=out)
    print(f"  Xero calls made:           {summary.xero_calls}", file=out)
    if summary.endpoints:
        print("  Look around while `syncd demo --serve` runs (same folder, same .env):", file=out)
        print(f"    TOKEN=$({summary.endpoints['token']})", file=out)
        for name in ("status", "sync_logs"):
            print(f'    curl -H "Authorization: Bearer $TOKEN" {summary.endpoints[name]}', file=out)


def dumps(summary: Summary) -> str:
    return json.dumps(summary.as_json(), indent=2)
