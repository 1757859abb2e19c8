"""The process's resources, built once in the web lifespan or the worker entry (never at import).

Tests and the demo pass `xero_transport` to route every Xero call to the in-process sandbox,
and a clock and limits to scale time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx

from syncd.clock import Clock, SystemClock
from syncd.crm.port import CrmPort
from syncd.domain.retry import RetryPolicy
from syncd.domain.tasks import POLL_COMPANY
from syncd.pipeline.connect import ConnectService, OAuthApp
from syncd.pipeline.inbound import InboundHandler
from syncd.pipeline.inbox import Inbox, InboxWriter
from syncd.pipeline.outbound import Outbound
from syncd.pipeline.outbox import ClaimedTask, Outbox
from syncd.pipeline.poller import JobCache, Poller
from syncd.pipeline.reconcile import RECONCILE, Reconciler
from syncd.pipeline.worker import TaskHandler, Worker, worker_id
from syncd.settings import Settings
from syncd.store.db import Database
from syncd.store.rate_budget import RateBudget
from syncd.vault import Vault
from syncd.xero.audit import SyncLogAudit
from syncd.xero.contacts import ContactsApi
from syncd.xero.governor import Limits, RateGovernor
from syncd.xero.http import XeroHttp, build_client
from syncd.xero.invoices import InvoicesApi
from syncd.xero.jobs import Backends, PracticeManagerBackend, ProjectsBackend
from syncd.xero.oauth import IdentityClient, state_signing_key
from syncd.xero.practice_manager import PracticeManagerApi
from syncd.xero.projects import ProjectsApi
from syncd.xero.shared_governor import SharedRateGovernor
from syncd.xero.tokens import TokenManager


class NotConfigured(Exception):
    """A feature needs settings that are not set; the message names them."""


@dataclass(slots=True, kw_only=True)
class XeroSide:
    governor: RateGovernor
    identity: IdentityClient
    tokens: TokenManager
    http: XeroHttp
    projects: ProjectsApi
    contacts: ContactsApi
    invoices: InvoicesApi
    practice_manager: PracticeManagerApi
    backends: Backends
    connect: ConnectService


@dataclass(slots=True, kw_only=True)
class Services:
    settings: Settings
    db: Database
    clock: Clock
    vault: Vault | None
    inbox_writer: InboxWriter
    worker: Worker
    xero: XeroSide | None = None
    crm: CrmPort | None = None
    reconciler: Reconciler | None = None

    def require_xero(self) -> XeroSide:
        if self.xero is None:
            raise NotConfigured(
                "Xero is not configured: set XERO_CLIENT_ID and SYNCD_ENCRYPTION_KEYS"
            )
        return self.xero


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    xero_transport: httpx.AsyncBaseTransport | None = None,
    limits: Limits | None = None,
    db: Database | None = None,
    crm: CrmPort | None = None,
) -> AsyncIterator[Services]:
    """Build everything; tests may hand in their own database, CRM, clock and Xero transport."""
    clock = clock or SystemClock()
    async with AsyncExitStack() as stack:
        if db is None:
            db = Database(settings.database_url)
            stack.push_async_callback(db.dispose)
        vault = Vault(settings.encryption_keys) if settings.encryption_keys else None
        xero = None
        if vault is not None and settings.xero_client_id:
            xero = await _xero_side(settings, db, vault, clock, xero_transport, limits, stack)
        if crm is None and settings.crm_database_url:
            from syncd.crm.sql import SqlCrm

            sql_crm = SqlCrm(settings.crm_database_url)
            stack.push_async_callback(sql_crm.dispose)
            crm = sql_crm
        writer = InboxWriter(db)
        stack.push_async_callback(writer.close)
        reconciler = None
        if xero is not None and crm is not None:
            reconciler = Reconciler(
                db=db, crm=crm, backends=xero.backends, clock=clock, cache=JobCache(clock)
            )
        worker = _worker(settings, db, clock, xero, crm, writer, reconciler)
        stack.push_async_callback(worker.close)
        yield Services(
            settings=settings,
            db=db,
            clock=clock,
            vault=vault,
            xero=xero,
            crm=crm,
            inbox_writer=writer,
            worker=worker,
            reconciler=reconciler,
        )


def _worker(
    settings: Settings,
    db: Database,
    clock: Clock,
    xero: XeroSide | None,
    crm: CrmPort | None,
    writer: InboxWriter,
    reconciler: Reconciler | None,
) -> Worker:
    """The worker with the handlers this configuration can run (Xero and a CRM are needed
    for most; without them tasks simply wait)."""
    handlers: dict[str, TaskHandler] = {}
    inbound = None
    if xero is not None:
        handlers[POLL_COMPANY] = Poller(
            db=db,
            backends=xero.backends,
            writer=writer,
            clock=clock,
            cache=reconciler.cache if reconciler is not None else None,
        )
    on_dead: Callable[[ClaimedTask, str], Awaitable[None]] | None = None
    if xero is not None and crm is not None:
        outbound = Outbound(db=db, crm=crm, backends=xero.backends, clock=clock)
        handlers.update(outbound.handlers())
        if reconciler is not None:
            handlers[RECONCILE] = reconciler
        on_dead = outbound.record_dead
        inbound = InboundHandler(
            db=db,
            crm=crm,
            backends=xero.backends,
            contacts=xero.contacts,
            invoices=xero.invoices,
            clock=clock,
        )
    owner = worker_id()  # one lease owner for both queues
    outbox = Outbox(
        db,
        owner=owner,
        lease=timedelta(seconds=settings.outbox_lease_seconds),
        policy=RetryPolicy(max_attempts=settings.outbox_max_attempts),
    )
    return Worker(
        outbox=outbox,
        inbox=Inbox(db, owner=owner),
        inbound=inbound,
        handlers=handlers,
        clock=clock,
        on_dead=on_dead,
        spent=xero.governor.spent_companies if xero else None,
        per_company=xero.governor.limits.concurrent if xero else 5,
    )


async def _xero_side(
    settings: Settings,
    db: Database,
    vault: Vault,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None,
    limits: Limits | None,
    stack: AsyncExitStack,
) -> XeroSide:
    assert settings.xero_client_id is not None
    api_client = await stack.enter_async_context(
        build_client(base_url=settings.xero_api_url, transport=transport)
    )
    identity_client = await stack.enter_async_context(
        build_client(base_url=settings.xero_identity_url, transport=transport)
    )
    audit = SyncLogAudit(db)
    limits = limits or Limits(
        per_minute=settings.xero_minute_limit,
        per_day=settings.xero_day_limit,
        concurrent=settings.xero_concurrent_limit,
    )
    # On PostgreSQL any number of processes share each tenant's budget in the database; SQLite
    # means one process, which counts alone (docs/rate-budget.md).
    governor = (
        SharedRateGovernor(RateBudget(db), limits, clock=clock)
        if db.dialect == "postgresql"
        else RateGovernor(limits, clock=clock)
    )
    stack.push_async_callback(governor.close)
    identity = IdentityClient(
        identity=identity_client,
        api=api_client,
        client_id=settings.xero_client_id,
        client_secret=(
            settings.xero_client_secret.reveal() if settings.xero_client_secret else None
        ),
        audit=audit,
        clock=clock,
    )
    tokens = TokenManager(db, vault, identity, clock)
    http = XeroHttp(
        api_client,
        tokens=tokens,
        governor=governor,
        audit=audit,
        clock=clock,
        on_connection_lost=tokens.connection_lost,
    )
    connect = ConnectService(
        db=db,
        vault=vault,
        identity=identity,
        tokens=tokens,
        governor=governor,
        app=OAuthApp(
            login_url=settings.xero_login_url,
            client_id=settings.xero_client_id,
            redirect_uri=settings.xero_redirect_uri,
            scopes=settings.xero_scopes,
        ),
        state_key=state_signing_key(settings.encryption_keys[0].reveal()),
        clock=clock,
    )
    projects, contacts, practice_manager = (
        ProjectsApi(http),
        ContactsApi(http),
        PracticeManagerApi(http),
    )
    return XeroSide(
        governor=governor,
        identity=identity,
        tokens=tokens,
        http=http,
        projects=projects,
        contacts=contacts,
        invoices=InvoicesApi(http),
        practice_manager=practice_manager,
        backends=Backends(
            projects=ProjectsBackend(projects, contacts),
            practice_manager=PracticeManagerBackend(practice_manager),
        ),
        connect=connect,
    )
