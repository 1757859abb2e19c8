"""Connecting a practice to Xero: start (authorize URL), finish (callback), choose a tenant when
the consent covered several, disconnect, and the status admins see.

The OAuth `state` is `company.nonce.mac`: signed (forgery fails before any lookup), stored (single
use, 10 minutes, bound to the user who started it) and it carries the PKCE verifier, encrypted.
The flow is also bound to the admin's browser: `start` stores the hash of a secret the web layer
puts in an HttpOnly cookie, and the callback and the tenant choice must bring it back, so a
consent URL opened by anyone else cannot finish the connect.

syncd never revokes a Xero token: at Xero a revocation removes *all* of that user's connections
to the app, which other practices' links may be (xero-facts §2.3). A surplus or disconnected
organisation is removed by its own connection (`DELETE /connections/{id}`), and only when no
other practice uses that connection.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from syncd.clock import Clock
from syncd.domain.backends import Backend, missing_scopes
from syncd.domain.errors import NeedsReconnect, SyncError
from syncd.domain.ids import CompanyId, UserId
from syncd.logs import get_logger
from syncd.pipeline.outbox import TaskRepository
from syncd.store.connections import ConnectionRepository, GrantRepository
from syncd.store.db import Database
from syncd.store.models import OAuthGrant, OAuthState, XeroConnection
from syncd.store.oauth_states import OAuthStateRepository
from syncd.vault import Vault
from syncd.xero.governor import RateGovernor
from syncd.xero.oauth import (
    IdentityClient,
    StateError,
    TenantConnection,
    TokenSet,
    authorize_url,
    pkce_pair,
    sign_token,
    unsign_token,
)
from syncd.xero.tokens import TokenManager

log = get_logger("syncd.connect")

STATE_TTL = timedelta(minutes=10)
SELECTION_TTL = timedelta(minutes=10)


class ConnectError(Exception):
    """A connect step that cannot go on; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuthApp:
    login_url: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    company: CompanyId
    tenant_id: str
    tenant_name: str | None
    return_to: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChooseTenant:
    company: CompanyId
    selection: str
    tenants: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected:
    revoked_at_xero: bool
    message: str


class ConnectService:
    def __init__(
        self,
        *,
        db: Database,
        vault: Vault,
        identity: IdentityClient,
        tokens: TokenManager,
        governor: RateGovernor,
        app: OAuthApp,
        state_key: bytes,
        clock: Clock,
    ) -> None:
        self.db = db
        self.vault = vault
        self.identity = identity
        self.tokens = tokens
        self.governor = governor
        self.app = app
        self.state_key = state_key
        self.clock = clock

    # -- start -------------------------------------------------------------------------------

    async def start(
        self,
        *,
        company: CompanyId,
        user: UserId,
        browser: str,
        return_to: str | None = None,
    ) -> str:
        """Record a pending state bound to `browser` (the secret of the admin's browser cookie)
        and return the URL that sends the admin to Xero's consent."""
        nonce = secrets.token_urlsafe(24)
        verifier, challenge = pkce_pair()
        now = self.clock.now()
        async with self.db.transaction() as session:
            await OAuthStateRepository(session).add(
                company=company,
                state=OAuthState(
                    id=nonce,
                    company_id=company,
                    user_id=user,
                    browser_hash=browser_hash(browser),
                    code_verifier_enc=self.vault.encrypt(verifier),
                    return_to=return_to,
                    created_at=now,
                    expires_at=now + STATE_TTL,
                ),
            )
        return authorize_url(
            login_url=self.app.login_url,
            client_id=self.app.client_id,
            redirect_uri=self.app.redirect_uri,
            scopes=self.app.scopes,
            state=sign_token(self.state_key, company, nonce),
            code_challenge=challenge,
        )

    # -- finish ------------------------------------------------------------------------------

    async def finish(
        self, *, state: str, code: str, browser: str | None
    ) -> Connected | ChooseTenant:
        """The callback: check the state and the browser, exchange the code, find the tenants,
        link or ask."""
        company, nonce = self._read_state(state)
        now = self.clock.now()
        async with self.db.transaction() as session:
            states = OAuthStateRepository(session)
            pending = await states.get(company=company, state_id=nonce)
            if pending is not None and pending.used_at is None and pending.expires_at > now:
                # Checked before the state is used up: a stranger's callback must not spend it.
                _check_browser(pending, browser)
            if pending is None or not await states.consume(
                company=company, state_id=nonce, now=now
            ):
                raise ConnectError("this connect link was already used or has expired: start again")
            verifier = self.vault.decrypt(pending.code_verifier_enc)
            user, return_to = UserId(pending.user_id), pending.return_to
        try:
            tokens = await self.identity.exchange_code(
                code=code,
                code_verifier=verifier,
                redirect_uri=self.app.redirect_uri,
                company=company,
            )
            tenants = await self.identity.connections(
                tokens.access_token, company=company, auth_event_id=tokens.auth_event_id
            )
        except SyncError as exc:
            raise ConnectError(f"Xero did not complete the connection: {exc}", status=502) from exc
        if not tenants:
            raise ConnectError("the Xero consent did not include any organisation")
        grant_id = await self._store_grant(tokens)
        if len(tenants) == 1:
            return await self._link(
                company=company,
                user=user,
                grant_id=grant_id,
                tenant=tenants[0],
                return_to=return_to,
            )
        async with self.db.transaction() as session:
            pending = await OAuthStateRepository(session).get(company=company, state_id=nonce)
            assert pending is not None
            pending.grant_id = grant_id
            pending.tenants = [_tenant_dict(t) for t in tenants]
            pending.expires_at = now + SELECTION_TTL
        return ChooseTenant(
            company=company,
            selection=sign_token(self.state_key, company, nonce, "select"),
            tenants=[_tenant_dict(t) for t in tenants],
        )

    async def choose(self, *, selection: str, tenant_id: str, browser: str | None) -> Connected:
        """The admin picked one tenant of a multi-tenant consent (in the browser that started)."""
        try:
            company_text, nonce, purpose = unsign_token(self.state_key, selection, parts=3)
        except StateError as exc:
            raise ConnectError(f"invalid tenant selection: {exc}") from exc
        if purpose != "select":
            raise ConnectError("invalid tenant selection")
        company = CompanyId(company_text)
        now = self.clock.now()
        async with self.db.transaction() as session:
            pending = await OAuthStateRepository(session).get(company=company, state_id=nonce)
            if pending is None or pending.grant_id is None or pending.expires_at <= now:
                raise ConnectError("this tenant choice has expired or was already made")
            _check_browser(pending, browser)
            tenants = {t["tenant_id"]: t for t in pending.tenants or []}
            if tenant_id not in tenants:
                raise ConnectError("that organisation was not part of this Xero consent")
            grant_id, user, return_to = pending.grant_id, pending.user_id, pending.return_to
            # Single use: the selection dies with its state row (the grant stays).
            pending.grant_id = None
            pending.tenants = None
        chosen = tenants[tenant_id]
        return await self._link(
            company=company,
            user=UserId(user),
            grant_id=grant_id,
            tenant=TenantConnection(
                connection_id=chosen["connection_id"],
                tenant_id=tenant_id,
                tenant_type=chosen["tenant_type"],
                tenant_name=chosen["tenant_name"],
                auth_event_id=None,
            ),
            return_to=return_to,
        )

    def _read_state(self, state: str) -> tuple[CompanyId, str]:
        try:
            company, nonce = unsign_token(self.state_key, state, parts=2)
        except StateError as exc:
            raise ConnectError(f"invalid OAuth state: {exc}") from exc
        return CompanyId(company), nonce

    async def _store_grant(self, tokens: TokenSet) -> str:
        now = self.clock.now()
        async with self.db.transaction() as session:
            grant = await GrantRepository(session).add(
                OAuthGrant(
                    access_token_enc=self.vault.encrypt(tokens.access_token),
                    refresh_token_enc=self.vault.encrypt(tokens.refresh_token),
                    access_expires_at=tokens.expires_at(now),
                    scopes=tokens.scope,
                    auth_event_id=tokens.auth_event_id,
                    state="active",
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            return grant.id

    async def _link(
        self,
        *,
        company: CompanyId,
        user: UserId,
        grant_id: str,
        tenant: TenantConnection,
        return_to: str | None,
    ) -> Connected:
        now = self.clock.now()
        previous_grant: str | None = None
        try:
            async with self.db.transaction() as session:
                connections = ConnectionRepository(session)
                owner = await connections.owner_of_tenant_across_companies(tenant.tenant_id)
                refused = owner is not None and owner.company_id != company
                if not refused:
                    previous_grant = await self._upsert_connection(
                        connections,
                        company=company,
                        user=user,
                        grant_id=grant_id,
                        tenant=tenant,
                        now=now,
                    )
        except IntegrityError:
            refused = True  # another practice linked the same tenant at the same moment
        if refused:
            await self._discard_grant(grant_id, company, surplus=tenant.connection_id)
            raise ConnectError(
                f"the Xero organisation {tenant.tenant_name or tenant.tenant_id!r} is already "
                "connected to another practice; disconnect it there first",
                status=409,
            )
        if previous_grant and previous_grant != grant_id:
            await self._forget_grant_if_unused(previous_grant)
        log.info("connect.connected", company=company, tenant=tenant.tenant_id, user=user)
        return Connected(
            company=company,
            tenant_id=tenant.tenant_id,
            tenant_name=tenant.tenant_name,
            return_to=return_to,
        )

    async def _upsert_connection(
        self,
        connections: ConnectionRepository,
        *,
        company: CompanyId,
        user: UserId,
        grant_id: str,
        tenant: TenantConnection,
        now: datetime,
    ) -> str | None:
        connection = await connections.get(company=company)
        previous_grant = connection.grant_id if connection else None
        if connection is None:
            connection = XeroConnection(company_id=company)
        connection.grant_id = grant_id
        connection.tenant_id = tenant.tenant_id
        connection.tenant_name = tenant.tenant_name
        connection.tenant_type = tenant.tenant_type
        connection.xero_connection_id = tenant.connection_id
        connection.backend = Backend.for_tenant_type(tenant.tenant_type).value
        if connection.needs_reconnect:
            # Tasks parked until the reconnect run now, not at the end of their park.
            released = await TaskRepository(connections.session).release_parked(
                company=company, now=now
            )
            log.info("connect.parked_tasks_released", company=company, count=released)
        connection.active = True
        connection.needs_reconnect = False
        connection.reconnect_reason = None
        connection.connected_by = user
        connection.connected_at = now
        connection.disconnected_at = None
        connection.disconnected_by = None
        connection.updated_at = now
        await connections.save(company=company, connection=connection)
        return previous_grant

    async def _discard_grant(self, grant_id: str, company: CompanyId, *, surplus: str) -> None:
        """Undo a consent we refuse: remove its surplus connection at Xero (best effort; never
        one another practice uses, and never by revoking the token) and drop our copy."""
        async with self.db.transaction() as session:
            grant = await GrantRepository(session).get_unlinked(grant_id)
            if grant is None:
                return
            access = self.vault.decrypt(grant.access_token_enc)
            await session.delete(grant)
            in_use = await ConnectionRepository(session).uses_xero_connection_across_companies(
                surplus
            )
        if in_use:
            # The same Xero user connected this organisation for the practice that holds it:
            # it is the same connection at Xero, and it is not ours to remove.
            log.info("connect.surplus_kept", company=company, connection=surplus)
            return
        try:
            await self.identity.delete_connection(access, surplus, company=company)
        except SyncError as exc:
            log.warning("connect.remove_surplus_failed", company=company, error=str(exc))

    async def _forget_grant_if_unused(self, grant_id: str) -> None:
        """After a reconnect the old grant is no longer used: drop our copy of its tokens."""
        async with self.db.transaction() as session:
            grant = await GrantRepository(session).get_unlinked(grant_id)
            if grant is not None:
                await session.delete(grant)

    # -- disconnect --------------------------------------------------------------------------

    async def disconnect(self, *, company: CompanyId, user: UserId) -> Disconnected:
        """Remove the organisation's connection at Xero (never by revoking the token: that
        would remove every connection of that Xero user, other practices' too), then deactivate
        locally whatever Xero said, and say which of the two happened."""
        async with self.db.transaction() as session:
            connection = await ConnectionRepository(session).get_active(company=company)
            if connection is None:
                raise ConnectError("this practice has no active Xero connection", status=404)
            xero_connection_id = connection.xero_connection_id
        problems: list[str] = []
        async with self.db.transaction() as session:
            shared = xero_connection_id is not None and (
                await ConnectionRepository(session).uses_xero_connection_across_companies(
                    xero_connection_id, besides=company
                )
            )
        try:
            if xero_connection_id and not shared:
                credentials = await self.tokens.credentials(company)
                await self.identity.delete_connection(
                    credentials.access_token, xero_connection_id, company=company
                )
        except (SyncError, NeedsReconnect) as exc:
            problems.append(str(exc))
        now = self.clock.now()
        async with self.db.transaction() as session:
            connection = await ConnectionRepository(session).get(company=company)
            grant = await GrantRepository(session).for_company(company=company)
            if connection is not None:
                connection.active = False
                connection.disconnected_at = now
                connection.disconnected_by = user
                connection.updated_at = now
                connection.grant_id = None
            if grant is not None:
                await session.delete(grant)  # the tokens are useless now; keep no copy
        log.info("connect.disconnected", company=company, user=user, xero_ok=not problems)
        if problems:
            return Disconnected(
                revoked_at_xero=False,
                message=(
                    "disconnected in syncd, but Xero could not be told "
                    f"({problems[0]}); remove the app under Xero's Connected Apps too"
                ),
            )
        return Disconnected(revoked_at_xero=True, message="disconnected in syncd and at Xero")

    # -- status ------------------------------------------------------------------------------

    async def status(self, *, company: CompanyId) -> dict[str, Any]:
        async with self.db.transaction() as session:
            connection = await ConnectionRepository(session).get(company=company)
            grant = await GrantRepository(session).for_company(company=company)
        if connection is None or not connection.active:
            return {
                "company_id": company,
                "connected": False,
                "needs_reconnect": False,
                "disconnected_at": _iso(connection.disconnected_at) if connection else None,
            }
        budget = await self.governor.current_budget(connection.tenant_id)
        backend = Backend(connection.backend)
        missing = missing_scopes(backend, grant.scopes if grant else "")
        return {
            "company_id": company,
            "connected": not connection.needs_reconnect,
            "needs_reconnect": connection.needs_reconnect,
            "reconnect_reason": connection.reconnect_reason,
            "tenant_id": connection.tenant_id,
            "tenant_name": connection.tenant_name,
            "tenant_type": connection.tenant_type,
            "backend": connection.backend,
            "backend_name": backend.label,
            "missing_scopes": missing,
            "connected_at": _iso(connection.connected_at),
            "connected_by": connection.connected_by,
            "rate_budget": {
                "minute_remaining": budget.minute,
                "day_remaining": budget.day,
                "in_flight": budget.in_flight,
                "limits": {
                    "per_minute": self.governor.limits.per_minute,
                    "per_day": self.governor.limits.per_day,
                    "concurrent": self.governor.limits.concurrent,
                },
            },
        }


def browser_hash(browser: str) -> str:
    return hashlib.sha256(browser.encode("utf-8")).hexdigest()


def _check_browser(pending: OAuthState, browser: str | None) -> None:
    expected = pending.browser_hash
    if not browser or expected is None or not hmac.compare_digest(browser_hash(browser), expected):
        raise ConnectError(
            "this connect was started in another browser (or its cookie is gone): start it "
            "again from syncd in this browser",
            status=403,
        )


def _tenant_dict(tenant: TenantConnection) -> dict[str, Any]:
    return {
        "tenant_id": tenant.tenant_id,
        "tenant_name": tenant.tenant_name,
        "tenant_type": tenant.tenant_type,
        "connection_id": tenant.connection_id,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
