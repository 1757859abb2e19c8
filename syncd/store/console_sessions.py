"""Repositories for the admin console's sign-in links (each works once) and sessions (checked on
every request, revoked at sign-out). Both are scoped by company; a link's id is unique across
practices all the same, so one link never opens two."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, delete, update

from syncd.domain.ids import CompanyId
from syncd.store.models import ConsoleHandoff, ConsoleSession
from syncd.store.scoping import TenantRepository, dialect_insert


class Redeemed(StrEnum):
    """What became of a confirmation form sent back with its nonce."""

    SIGNED_IN = "signed_in"
    USED = "used"  # the link (and so its nonce) was used already
    REFUSED = "refused"  # no such pending link here, a stale nonce, or another browser


class HandoffRepository(TenantRepository[ConsoleHandoff]):
    model = ConsoleHandoff

    async def claim(
        self, *, company: CompanyId, handoff_id: str, user: str, expires_at: datetime, now: datetime
    ) -> bool:
        """Use the link now (the browser came from the CRM): True the first time only. A
        confirmation form still pending for it is used up with it."""
        inserted = await self.session.execute(
            dialect_insert(self.session)(ConsoleHandoff)
            .values(
                id=handoff_id,
                company_id=company,
                user_id=user,
                created_at=now,
                expires_at=expires_at,
                used_at=now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(ConsoleHandoff.id)
        )
        if inserted.scalar_one_or_none() is not None:
            return True
        return await self._use(company, handoff_id, now, ConsoleHandoff.used_at.is_(None))

    async def offer(
        self,
        *,
        company: CompanyId,
        handoff_id: str,
        user: str,
        expires_at: datetime,
        nonce_hash: str,
        browser_hash: str,
        now: datetime,
    ) -> bool:
        """Remember the nonce of the confirmation form shown for this link (a newer form
        replaces an older one); False when the link was used already (or by another practice)."""
        insert = dialect_insert(self.session)(ConsoleHandoff)
        statement = (
            insert.values(
                id=handoff_id,
                company_id=company,
                user_id=user,
                nonce_hash=nonce_hash,
                browser_hash=browser_hash,
                created_at=now,
                expires_at=expires_at,
            )
            .on_conflict_do_update(
                index_elements=["id"],
                set_={"nonce_hash": nonce_hash, "browser_hash": browser_hash},
                where=(ConsoleHandoff.used_at.is_(None)) & (ConsoleHandoff.company_id == company),
            )
            .returning(ConsoleHandoff.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none() is not None

    async def redeem(
        self,
        *,
        company: CompanyId,
        handoff_id: str,
        nonce_hash: str,
        browser_hash: str,
        now: datetime,
    ) -> Redeemed:
        """Use the link with its confirmation form's nonce, once, from the browser it was shown
        to (a compare-and-set: of two racing submissions one signs in)."""
        matched = (
            ConsoleHandoff.used_at.is_(None)
            & (ConsoleHandoff.nonce_hash == nonce_hash)
            & (ConsoleHandoff.browser_hash == browser_hash)
        )
        if await self._use(company, handoff_id, now, matched):
            return Redeemed.SIGNED_IN
        row = await self.first(self.scoped(company).where(ConsoleHandoff.id == handoff_id))
        return Redeemed.USED if row is not None and row.used_at is not None else Redeemed.REFUSED

    async def _use(
        self, company: CompanyId, handoff_id: str, now: datetime, *when: ColumnElement[bool]
    ) -> bool:
        result = await self.session.execute(
            update(ConsoleHandoff)
            .where(
                ConsoleHandoff.company_id == company,
                ConsoleHandoff.id == handoff_id,
                ConsoleHandoff.expires_at > now,
                *when,
            )
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def purge_expired_across_companies(self, *, now: datetime) -> int:
        """Forget links past their expiry (the token itself is refused by then)."""
        result = await self.session.execute(
            delete(ConsoleHandoff).where(ConsoleHandoff.expires_at <= now)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class ConsoleSessionRepository(TenantRepository[ConsoleSession]):
    model = ConsoleSession

    async def add(self, *, company: CompanyId, session: ConsoleSession) -> None:
        if session.company_id != company:
            raise ValueError("session belongs to another company")
        self.session.add(session)
        await self.session.flush()

    async def active(
        self, *, company: CompanyId, session_id: str, now: datetime
    ) -> ConsoleSession | None:
        """The session if it is neither revoked nor expired."""
        return await self.first(
            self.scoped(company).where(
                ConsoleSession.id == session_id,
                ConsoleSession.revoked_at.is_(None),
                ConsoleSession.expires_at > now,
            )
        )

    async def revoke(self, *, company: CompanyId, session_id: str, now: datetime) -> bool:
        """Sign the session out for good; False if it was not active."""
        result = await self.session.execute(
            update(ConsoleSession)
            .where(
                ConsoleSession.company_id == company,
                ConsoleSession.id == session_id,
                ConsoleSession.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def purge_expired_across_companies(self, *, now: datetime) -> int:
        """Forget sessions past their expiry (revoked ones are kept until then)."""
        result = await self.session.execute(
            delete(ConsoleSession).where(ConsoleSession.expires_at <= now)
        )
        return int(getattr(result, "rowcount", 0) or 0)
