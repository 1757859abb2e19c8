"""The process's resources, built once in the web lifespan or the worker entry (never at import).

Tests and the demo pass `xero_transport` to route every Xero call to the in-process sandbox,
and a clock and limits to scale time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx

from syncd.clock import Clock, SystemClock
from syncd.pipeline.connect import ConnectService, OAuthApp
from syncd.settings import Settings
from syncd.store.db import Database
from syncd.vault import Vault
from syncd.xero.audit import SyncLogAudit
from syncd.xero.contacts import ContactsApi
from syncd.xero.governor import Limits, RateGovernor
from syncd.xero.http import XeroHttp, build_client
from syncd.xero.oauth import IdentityClient, state_signing_key
from syncd.xero.projects import ProjectsApi
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
    connect: ConnectService


@dataclass(slots=True, kw_only=True)
class Services:
    settings: Settings
    db: Database
    clock: Clock
    vault: Vault | None
    xero: XeroSide | None = None

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
) -> AsyncIterator[Services]:
    clock = clock or SystemClock()
    async with AsyncExitStack() as stack:
        if db is None:
            db = Database(settings.database_url)
            stack.push_async_callback(db.dispose)
        vault = Vault(settings.encryption_keys) if settings.encryption_keys else None
        xero = None
        if vault is not None and settings.xero_client_id:
            xero = await _xero_side(settings, db, vault, clock, xero_transport, limits, stack)
        yield Services(settings=settings, db=db, clock=clock, vault=vault, xero=xero)


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
    governor = RateGovernor(limits, clock=clock)
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
    http = XeroHttp(api_client, tokens=tokens, governor=governor, audit=audit, clock=clock)
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
    return XeroSide(
        governor=governor,
        identity=identity,
        tokens=tokens,
        http=http,
        projects=ProjectsApi(http),
        contacts=ContactsApi(http),
        connect=connect,
    )
