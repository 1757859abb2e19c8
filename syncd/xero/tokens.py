"""Single-flight token refresh: Xero refresh tokens rotate, so a grant is refreshed by exactly one
caller at a time, and every caller re-reads after waiting.

PostgreSQL: a row lock on the grant (`SELECT … FOR UPDATE`) held across the refresh call, so
workers in other processes wait and then find the new pair. SQLite (one process by design): an
in-process lock per grant, the refresh outside any transaction, and a version check on write.
A lost refresh answer leaves the old refresh token in place; Xero accepts it again for 30 minutes
(the grace window), and if the newest token is refused, the previous one is tried while its grace
lasts. `invalid_grant` for good marks the connection as needing reconnect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update

from syncd.clock import Clock
from syncd.domain.errors import NeedsReconnect
from syncd.domain.ids import CompanyId
from syncd.locks import KeyedLocks
from syncd.logs import get_logger
from syncd.observability.instruments import TokenOutcome, record_token_refresh
from syncd.store.connections import ConnectionRepository, GrantRepository
from syncd.store.db import Database
from syncd.store.models import OAuthGrant
from syncd.vault import Vault
from syncd.xero.http import Credentials
from syncd.xero.oauth import IdentityClient, InvalidGrant, TokenSet

log = get_logger("syncd.xero.tokens")

REFRESH_MARGIN = timedelta(minutes=5)
GRACE = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    grant_id: str
    version: int
    tenant_id: str
    access_token: str
    expires_at: datetime


class TokenManager:
    """The TokenSource of XeroHttp, backed by the grants table."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        identity: IdentityClient,
        clock: Clock,
        *,
        margin: timedelta = REFRESH_MARGIN,
    ) -> None:
        self.db = db
        self.vault = vault
        self.identity = identity
        self.clock = clock
        self.margin = margin
        self._locks: KeyedLocks[str] = KeyedLocks()

    async def credentials(self, company: CompanyId) -> Credentials:
        snapshot = await self._snapshot(company)
        if snapshot.expires_at - self.margin > self.clock.now():
            return Credentials(snapshot.access_token, snapshot.tenant_id)
        return await self._refresh(company, snapshot, stale=snapshot.access_token)

    async def refreshed(self, company: CompanyId, *, stale: str) -> Credentials:
        return await self._refresh(company, await self._snapshot(company), stale=stale)

    async def _snapshot(self, company: CompanyId) -> _Snapshot:
        async with self.db.transaction() as session:
            connection = await ConnectionRepository(session).get_active(company=company)
            grant = await GrantRepository(session).for_company(company=company)
        if connection is None or grant is None:
            raise NeedsReconnect(f"company {company} has no active Xero connection")
        if connection.needs_reconnect or grant.state != "active":
            raise NeedsReconnect(
                f"the Xero connection of company {company} needs reconnecting "
                f"({connection.reconnect_reason or grant.state})"
            )
        return _Snapshot(
            grant_id=grant.id,
            version=grant.version,
            tenant_id=connection.tenant_id,
            access_token=self.vault.decrypt(grant.access_token_enc),
            expires_at=grant.access_expires_at,
        )

    def _fresh(self, grant: OAuthGrant, stale: str) -> bool:
        """Someone refreshed while we waited: the stored token is new and not expiring."""
        return (
            grant.access_expires_at - self.margin > self.clock.now()
            and self.vault.decrypt(grant.access_token_enc) != stale
        )

    async def _refresh(self, company: CompanyId, snapshot: _Snapshot, *, stale: str) -> Credentials:
        async with self._locks(snapshot.grant_id):
            try:
                if self.db.dialect == "postgresql":
                    return await self._refresh_row_locked(company, stale)
                return await self._refresh_versioned(company, stale)
            except InvalidGrant:
                record_token_refresh("invalid_grant")
                # Outside the refresh transaction: on PostgreSQL it held the grant's row lock.
                await self._mark_needs_reconnect(company, "Xero refused the refresh token")
                raise
            except Exception:
                record_token_refresh("failed")
                raise

    async def _refresh_row_locked(self, company: CompanyId, stale: str) -> Credentials:
        async with self.db.transaction() as session:
            grant = await GrantRepository(session).for_company(company=company, lock=True)
            connection = await ConnectionRepository(session).get_active(company=company)
            if grant is None or connection is None:
                raise NeedsReconnect(f"company {company} has no active Xero connection")
            if not self._fresh(grant, stale):
                tokens = await self._call_refresh(company, grant)
                self._store(grant, tokens)
            access = self.vault.decrypt(grant.access_token_enc)
            tenant = connection.tenant_id
        return Credentials(access, tenant)

    async def _refresh_versioned(self, company: CompanyId, stale: str) -> Credentials:
        async with self.db.transaction() as session:
            grant = await GrantRepository(session).for_company(company=company)
            connection = await ConnectionRepository(session).get_active(company=company)
            if grant is None or connection is None:
                raise NeedsReconnect(f"company {company} has no active Xero connection")
            session.expunge(grant)
        if self._fresh(grant, stale):
            return Credentials(self.vault.decrypt(grant.access_token_enc), connection.tenant_id)
        tokens = await self._call_refresh(company, grant)
        version = grant.version
        self._store(grant, tokens)
        async with self.db.transaction() as session:
            result = await session.execute(
                update(OAuthGrant)
                .where(OAuthGrant.id == grant.id, OAuthGrant.version == version)
                .values(
                    access_token_enc=grant.access_token_enc,
                    refresh_token_enc=grant.refresh_token_enc,
                    previous_refresh_token_enc=grant.previous_refresh_token_enc,
                    previous_refresh_valid_until=grant.previous_refresh_valid_until,
                    access_expires_at=grant.access_expires_at,
                    version=grant.version,
                    refreshed_at=grant.refreshed_at,
                    updated_at=grant.updated_at,
                )
            )
            if not getattr(result, "rowcount", 0):
                # Another process refreshed first: its pair is the one on record.
                log.warning("token.refresh_lost_race", company=company)
                current = await GrantRepository(session).for_company(company=company)
                if current is None:
                    raise NeedsReconnect(f"company {company} has no active Xero connection")
                return Credentials(
                    self.vault.decrypt(current.access_token_enc), connection.tenant_id
                )
        return Credentials(tokens.access_token, connection.tenant_id)

    async def _call_refresh(self, company: CompanyId, grant: OAuthGrant) -> TokenSet:
        now = self.clock.now()
        outcome: TokenOutcome = "refreshed"
        try:
            tokens = await self.identity.refresh(
                self.vault.decrypt(grant.refresh_token_enc), company=company
            )
        except InvalidGrant:
            previous = grant.previous_refresh_token_enc
            until = grant.previous_refresh_valid_until
            if previous is None or until is None or until <= now:
                raise
            log.warning("token.refresh_with_previous", company=company)
            outcome = "refreshed_with_previous"
            tokens = await self.identity.refresh(self.vault.decrypt(previous), company=company)
        log.info("token.refreshed", company=company, grant=grant.id)
        record_token_refresh(outcome)
        return tokens

    def _store(self, grant: OAuthGrant, tokens: TokenSet) -> None:
        now = self.clock.now()
        grant.previous_refresh_token_enc = grant.refresh_token_enc
        grant.previous_refresh_valid_until = now + GRACE
        grant.access_token_enc = self.vault.encrypt(tokens.access_token)
        grant.refresh_token_enc = self.vault.encrypt(tokens.refresh_token)
        grant.access_expires_at = tokens.expires_at(now)
        grant.version += 1
        grant.refreshed_at = now
        grant.updated_at = now

    async def connection_lost(self, company: CompanyId, reason: str) -> None:
        """Xero says the practice's organisation is no longer covered (403): the practice must
        reconnect. Its tasks park until it does; /status and the console say why."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            await ConnectionRepository(session).mark_needs_reconnect(
                company=company, reason=reason, now=now
            )
        log.error("token.connection_lost", company=company, reason=reason)

    async def _mark_needs_reconnect(self, company: CompanyId, reason: str) -> None:
        now = self.clock.now()
        async with self.db.transaction() as session:
            await ConnectionRepository(session).mark_needs_reconnect(
                company=company, reason=reason, now=now
            )
            grant = await GrantRepository(session).for_company(company=company)
            if grant is not None:
                grant.state = "invalid"
                grant.updated_at = now
        log.error("token.needs_reconnect", company=company, reason=reason)
