"""syncd wired to the in-process Xero sandbox: the real app, the real database, Xero simulated
at the HTTP boundary. Used by every end-to-end test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.applications import Starlette

from syncd.clock import Clock, SystemClock
from syncd.crm.memory import MemoryCrm
from syncd.crm.port import CrmPort
from syncd.domain.ids import CompanyId
from syncd.domain.tasks import POLL_COMPANY
from syncd.pipeline.poller import Poller
from syncd.sandbox.app import create_sandbox_app
from syncd.sandbox.state import SandboxState
from syncd.sandbox.webhooks import WebhookDispatcher
from syncd.services import Services, open_services
from syncd.settings import Secret, Settings
from syncd.store.db import Database
from syncd.web.app import create_app
from syncd.web.auth import Role, mint_token
from syncd.xero.governor import Limits
from tests.conftest import make_settings

SANDBOX = "http://sandbox.test"
# What a practice with Practice Manager consents to (the defaults plus XPM's granular scopes).
XPM_SCOPES = [
    "openid",
    "profile",
    "email",
    "offline_access",
    "projects",
    "accounting.contacts",
    "practicemanager.job",
    "practicemanager.client",
    "practicemanager.staff",
]
SYNCD = "http://syncd.test"
CLIENT_ID = "syncd-test-app"
CLIENT_SECRET = "sandbox-client-secret-0123456789"
REDIRECT = f"{SYNCD}/api/integrations/xero/callback"


def sandbox_settings(db_url: str, fernet_key: str, **overrides: Any) -> Settings:
    return make_settings(
        database_url=db_url,
        encryption_keys=(Secret(fernet_key),),
        xero_client_id=CLIENT_ID,
        xero_client_secret=Secret(CLIENT_SECRET),
        xero_redirect_uri=REDIRECT,
        xero_api_url=SANDBOX,
        xero_identity_url=SANDBOX,
        xero_login_url=SANDBOX,
        **overrides,
    )


@dataclass(slots=True)
class Harness:
    settings: Settings
    sandbox: SandboxState
    services: Services
    app: Starlette  # syncd's app, for a second browser (its own client and cookies)
    syncd: httpx.AsyncClient
    xero: httpx.AsyncClient  # a browser's view of the sandbox (authorize page)
    webhooks: WebhookDispatcher  # delivers the sandbox's webhooks to syncd, in process

    async def deliver_webhooks(self) -> None:
        """Xero sends what is queued; syncd applies it."""
        await self.webhooks.flush()
        await self.services.worker.wait_idle()

    async def poll(self, company: str) -> dict[str, object]:
        """One poll of the practice's Xero jobs, as the scheduler's poll task runs it (without
        its once-per-interval key), then the worker applies what it found."""
        poller = self.services.worker.handlers[POLL_COMPANY]
        assert isinstance(poller, Poller)
        found = await poller.poll(CompanyId(company))
        await self.services.worker.wait_idle()
        return found

    async def settle(self) -> None:
        """Run syncd's worker until nothing is due (outbox and inbox)."""
        await self.services.worker.wait_idle()

    def token(self, role: Role, company: str | None, user: str = "user-1") -> str:
        return mint_token(
            self.settings, user=user, role=role, company=company, ttl=timedelta(hours=1)
        )

    def auth(self, role: Role, company: str | None, user: str = "user-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, company, user)}"}

    async def start_connect(self, company: str, user: str = "admin-1") -> httpx.Response:
        """Admin clicks Connect, the browser follows to Xero and back: the callback answer."""
        start = await self.syncd.get(
            "/api/integrations/xero/connect",
            headers=self.auth(Role.PRACTICE_ADMIN, company, user),
        )
        assert start.status_code == 302, start.text
        consent = await self.xero.get(start.headers["location"])
        assert consent.status_code == 302, consent.text
        back = urlsplit(consent.headers["location"])
        return await self.syncd.get(f"{back.path}?{back.query}")

    async def connect(
        self, company: str, tenant_name: str | None = None, *, tenant_type: str = "ORGANISATION"
    ) -> str:
        """Connect `company` to a tenant (a new one of `tenant_type` unless `tenant_name` names
        an existing one); returns the tenant id."""
        tenant = next(
            (t for t in self.sandbox.tenants.values() if t.name == tenant_name), None
        ) or self.sandbox.add_tenant(tenant_name or f"Org of {company}", tenant_type=tenant_type)
        self.sandbox.consent_tenant_ids = [tenant.tenant_id]
        answer = await self.start_connect(company)
        assert answer.status_code == 200, answer.text
        assert answer.json()["tenant_id"] == tenant.tenant_id
        return tenant.tenant_id

    def token_calls(self) -> int:
        return sum(1 for e in self.sandbox.ledger if e.path == "/connect/token")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@asynccontextmanager
async def harness(
    db: Database,
    fernet_key: str,
    *,
    clock: Clock | None = None,
    limits: Limits | None = None,
    sandbox: SandboxState | None = None,
    wrap_transport: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] | None = None,
    crm: CrmPort | None = None,
    **settings_overrides: Any,
) -> AsyncIterator[Harness]:
    clock = clock or SystemClock()
    state = sandbox or SandboxState(clock)
    settings = sandbox_settings(db.url, fernet_key, **settings_overrides)
    assert settings.xero_webhook_key is not None
    state.register_app(
        CLIENT_ID,
        CLIENT_SECRET,
        [REDIRECT],
        settings.xero_webhook_key.reveal(),
        webhook_url=f"{SYNCD}/api/integrations/xero/webhook",
    )
    sandbox_app = create_sandbox_app(state)
    transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=sandbox_app)
    if wrap_transport is not None:
        transport = wrap_transport(transport)
    async with open_services(
        settings,
        clock=clock,
        xero_transport=transport,
        limits=limits,
        db=db,
        crm=crm if crm is not None else MemoryCrm(),
    ) as services:
        app = create_app(settings, services=services, run_scheduler=False)
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SYNCD) as syncd,
            httpx.AsyncClient(transport=transport, base_url=SANDBOX) as xero,
        ):
            dispatcher = WebhookDispatcher(state, transport=httpx.ASGITransport(app=app))
            yield Harness(
                settings=settings,
                sandbox=state,
                services=services,
                app=app,
                syncd=syncd,
                xero=xero,
                webhooks=dispatcher,
            )
