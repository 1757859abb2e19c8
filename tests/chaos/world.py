"""The practices of the chaos test: a sample CRM seeded with `syncd.sandbox.crm`, each practice
connected to its own sandbox tenant (a Xero Projects organisation or a Practice Manager practice)
through syncd's real connect flow, and the CRM users' actions (assign every request at once,
complete the requests whose job exists).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from syncd.crm.schema import service_requests as crm_requests
from syncd.domain.ids import CompanyId, UserId
from syncd.pipeline.connect import Connected
from syncd.sandbox.crm import create_sample_crm, crm_app
from syncd.services import open_services
from syncd.settings import Settings
from syncd.store.db import Database, create_engine
from syncd.store.settings import SettingsRepository
from tests.chaos.sandbox import Sandbox

SERVICES_PER_PRACTICE = 4  # two global services and two of the practice's own


@dataclass(frozen=True, slots=True, kw_only=True)
class Practice:
    company: CompanyId
    name: str
    admin_id: str
    accountant_ids: tuple[str, ...]
    request_ids: tuple[str, ...]
    tenant_id: str = ""


async def seed_crm(
    url: str, *, practices: int, requests_per_practice: int, rng: random.Random
) -> list[Practice]:
    """The sample practices, clients, accountants and services, and `requests_per_practice`
    pending requests each.

    Every request is a different (client, service) pair, so every job has its own
    "{Service} - {Client}" name: the duplicate check (and syncd's own crash recovery) tells jobs
    apart by contact and name, which cannot separate two requests of one client for one service.
    """
    clients = -(-requests_per_practice // SERVICES_PER_PRACTICE)
    sample = await create_sample_crm(
        url,
        practices=practices,
        clients_per_practice=clients,
        accountants_per_practice=2,
        requests_per_practice=0,
        seed=rng.randrange(1_000_000),
    )
    created = datetime.now(UTC) - timedelta(days=1)
    engine = create_engine(url)
    result = []
    try:
        async with crm_app(engine) as app:
            for practice in sample.practices:
                pairs = [(c, s) for c in practice.client_ids for s in practice.service_ids]
                rng.shuffle(pairs)
                request_ids = [
                    await app.add_request(
                        company=practice.company_id,
                        client_id=client,
                        service_id=service,
                        now=created,
                        description=f"chaos request {n}",
                        due_date=(created + timedelta(days=30)).date(),
                    )
                    for n, (client, service) in enumerate(pairs[:requests_per_practice])
                ]
                result.append(
                    Practice(
                        company=practice.company_id,
                        name=practice.name,
                        admin_id=practice.admin_id,
                        accountant_ids=practice.accountant_ids,
                        request_ids=tuple(request_ids),
                    )
                )
    finally:
        await engine.dispose()
    return result


async def connect_all(
    settings: Settings,
    sandbox: Sandbox,
    practices: list[Practice],
    *,
    tenant_type: str = "ORGANISATION",
) -> list[Practice]:
    """Connect each practice to a new tenant of its own (`tenant_type`: ORGANISATION for Xero
    Projects, PRACTICEMANAGER for Practice Manager), as its admin does: syncd's connect start,
    the browser at Xero's authorize page (auto-consent), syncd's callback."""
    connected = []
    async with open_services(settings) as services, httpx.AsyncClient(timeout=30) as browser:
        connect = services.require_xero().connect
        for practice in practices:
            tenant_id = await sandbox.add_tenant(practice.name, tenant_type=tenant_type)
            await sandbox.consent_to(tenant_id)
            # The browser binding a real admin's cookie carries; here the test holds it.
            binding = f"chaos-browser-{practice.company}"
            authorize = await connect.start(
                company=practice.company, user=UserId(practice.admin_id), browser=binding
            )
            consent = await browser.get(authorize)
            assert consent.status_code == 302, consent.text
            back = parse_qs(urlsplit(consent.headers["location"]).query)
            outcome = await connect.finish(
                state=back["state"][0], code=back["code"][0], browser=binding
            )
            assert isinstance(outcome, Connected), outcome
            assert outcome.tenant_id == tenant_id
            connected.append(replace(practice, tenant_id=tenant_id))
    return connected


async def leave_findings_to_admins(syncd: Database, practices: list[Practice]) -> None:
    """Each practice's admin turns automatic healing off: a reconciliation that runs during the
    burst (a worker alive for a minute schedules one) then only reports, so whatever reaches
    Xero got there through the outbound pipeline under test; healing would mask a lost task."""
    async with syncd.transaction() as session:
        for practice in practices:
            repository = SettingsRepository(session)
            current = await repository.current(company=practice.company)
            await repository.save(
                company=practice.company,
                settings=replace(current, auto_heal=()),
                by=practice.admin_id,
                now=datetime.now(UTC),
            )


async def assign_all(crm: AsyncEngine, practices: list[Practice], rng: random.Random) -> int:
    """The practices' admins assign every request to an accountant, all at once."""
    now = datetime.now(UTC)
    count = 0
    async with crm_app(crm) as app:
        for practice in practices:
            for request_id in practice.request_ids:
                await app.assign(
                    company=practice.company,
                    request_id=request_id,
                    accountant_id=rng.choice(practice.accountant_ids),
                    now=now,
                )
                count += 1
    return count


async def complete_linked(crm: AsyncEngine) -> int:
    """Accountants complete every assigned request whose Xero job syncd has written back."""
    ready = select(crm_requests.c.company_id, crm_requests.c.id).where(
        and_(crm_requests.c.status == "assigned", crm_requests.c.xero_job_id.is_not(None))
    )
    async with crm.connect() as connection:
        rows = (await connection.execute(ready)).all()
    if not rows:
        return 0
    now = datetime.now(UTC)
    async with crm_app(crm) as app:
        for company, request_id in rows:
            await app.set_status(
                company=CompanyId(company), request_id=request_id, status="completed", now=now
            )
    return len(rows)
