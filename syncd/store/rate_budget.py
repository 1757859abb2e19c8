"""The shared rate budget's database side (PostgreSQL only): look at a tenant's Xero calls, admit
one more under a per-tenant transaction advisory lock, finish or renew it, fold in what Xero
reported, purge what no window counts any more.

It decides nothing: the governor (syncd.xero.shared_governor) hands `admit` a pure decision over a
`Look`. Every time is the caller's clock, never the database's (tests inject their clocks).
Imports the store only.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    Update,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from syncd.clock import Clock, ensure_aware
from syncd.store.db import Database
from syncd.store.models import XeroRateCall, XeroRateTenant
from syncd.store.types import UTCDateTime

# Stand-ins for calls Xero counted that syncd did not make (its remaining headers said so).
REPORTED = "xero-reported"

_LOOK = text(
    """
    WITH day_count AS (
        SELECT count(*) AS n FROM xero_rate_calls
        WHERE tenant_id = :tenant AND admitted_at > :day_since
    ), flight AS (
        SELECT count(*) AS n, min(lease_until) AS soonest FROM xero_rate_calls
        WHERE tenant_id = :tenant AND finished_at IS NULL AND lease_until > :now
    ), app AS (
        SELECT count(*) AS n FROM xero_rate_calls WHERE admitted_at > :minute_since
    )
    SELECT
        ARRAY(
            SELECT admitted_at FROM xero_rate_calls
            WHERE tenant_id = :tenant AND admitted_at > :minute_since
            ORDER BY admitted_at
        ) AS minute_calls,
        day_count.n AS day,
        CASE WHEN day_count.n >= :per_day - 1 THEN ARRAY(
            SELECT admitted_at FROM xero_rate_calls
            WHERE tenant_id = :tenant AND admitted_at > :day_since
            ORDER BY admitted_at DESC OFFSET :day_offset LIMIT 2
        ) END AS day_edges,
        flight.n AS in_flight,
        flight.soonest AS lease_ends,
        app.n AS app,
        CASE WHEN app.n >= :app_limit THEN (
            SELECT admitted_at FROM xero_rate_calls WHERE admitted_at > :minute_since
            ORDER BY admitted_at DESC OFFSET :app_offset LIMIT 1
        ) END AS app_edge,
        (SELECT closed_until FROM xero_rate_tenants WHERE tenant_id = :tenant) AS closed_until
    FROM day_count, flight, app
    """
).bindparams(
    bindparam("tenant", type_=String()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("minute_since", type_=UTCDateTime()),
    bindparam("day_since", type_=UTCDateTime()),
    bindparam("per_day", type_=Integer()),
    bindparam("day_offset", type_=Integer()),
    bindparam("app_limit", type_=Integer()),
    bindparam("app_offset", type_=Integer()),
)

_PHANTOMS = text(
    """
    INSERT INTO xero_rate_calls (tenant_id, holder, admitted_at, lease_until, finished_at)
    SELECT :tenant, :holder, :at, :at, :at FROM generate_series(1, :count)
    """
).bindparams(
    bindparam("tenant", type_=String()),
    bindparam("holder", type_=String()),
    bindparam("at", type_=UTCDateTime()),
    bindparam("count", type_=Integer()),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Windows:
    """What a look counts: the two window spans, and the limits whose edges it finds."""

    minute: timedelta
    day: timedelta
    per_day: int
    app_per_minute: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Look:
    """A tenant's budget in the database at `now` (before the call a look may admit)."""

    now: datetime
    minute_calls: tuple[datetime, ...]  # admitted inside the minute window, oldest first
    day: int  # calls inside the day window
    day_edge: datetime | None  # the per_day-th newest of them, when there are that many
    # The (per_day - 1)-th newest: the day window's edge once one more call is admitted (None
    # when there are fewer, or when per_day is 1 and that call itself is the edge).
    day_edge_next: datetime | None
    in_flight: int  # unfinished calls whose lease has not run out
    lease_ends: datetime | None  # the soonest of those leases
    app: int  # every tenant's calls inside the minute window
    app_edge: datetime | None  # the app_per_minute-th newest of them, when there are that many
    closed_until: datetime | None  # a 429's Retry-After, shared


@dataclass(frozen=True, slots=True, kw_only=True)
class Reported:
    """What Xero's answers said: calls used per window (limit minus its remaining header) and a
    429's Retry-After as the time the tenant is closed until."""

    minute_used: int | None = None
    day_used: int | None = None
    app_used: int | None = None
    minute_remaining: int | None = None
    day_remaining: int | None = None
    app_remaining: int | None = None
    closed_until: datetime | None = None


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock id for `name` (as Database.exclusive makes them)."""
    digest = hashlib.blake2b(f"xero-rate:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _aware(value: datetime | None) -> datetime | None:
    return ensure_aware(value) if value is not None else None


class RateBudget:
    """The tables `xero_rate_calls` and `xero_rate_tenants` (models.py), on PostgreSQL."""

    def __init__(self, db: Database, *, holder: str | None = None) -> None:
        if db.dialect != "postgresql":
            raise ValueError("the shared rate budget needs PostgreSQL (SQLite runs one process)")
        self.db = db
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"[:100]
        # Single statements need no transaction: no BEGIN/COMMIT round trips.
        self._autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def look(self, tenant_id: str, *, now: datetime, windows: Windows) -> Look:
        """The tenant's budget now, without taking the lock (for status and the claim view)."""
        async with self._autocommit.connect() as connection:
            return await _look(connection, tenant_id, now, windows)

    async def admit(
        self,
        tenant_id: str,
        *,
        company: str | None,
        clock: Clock,
        lease: timedelta,
        windows: Windows,
        decide: Callable[[Look], bool],
    ) -> tuple[Look, int | None]:
        """Look and, if `decide` says so, record one call in flight: atomically, under the
        tenant's advisory lock (held to the commit), at the clock's time once the lock is held.
        Returns the look and the call's id (None when not admitted)."""
        async with self.db.engine.begin() as connection:
            await _lock(connection, tenant_id)
            now = clock.now()
            look = await _look(connection, tenant_id, now, windows)
            if not decide(look):
                return look, None
            # The stamp the windows count from; moved to the moment the call is sent when it
            # finishes (or renews its lease), so the database's latency is not in the skew.
            stamp = clock.now()
            call_id = (
                await connection.execute(
                    insert(XeroRateCall)
                    .values(
                        tenant_id=tenant_id,
                        company_id=company,
                        holder=self.holder,
                        admitted_at=stamp,
                        lease_until=stamp + lease,
                    )
                    .returning(XeroRateCall.id)
                )
            ).scalar_one()
            return look, call_id

    async def finish(self, call_id: int, *, now: datetime, sent_at: datetime | None) -> None:
        """The call is over: it leaves the in-flight count (it stays in the windows, from
        `sent_at` when it was sent later than it was admitted)."""
        async with self._autocommit.connect() as connection:
            await connection.execute(_finishing(call_id, now, sent_at))

    async def renew(self, call_id: int, *, lease_until: datetime, sent_at: datetime | None) -> bool:
        """Extend a long call's lease (and move its stamp to `sent_at`); False when it is
        already finished (or purged)."""
        async with self._autocommit.connect() as connection:
            result = await connection.execute(
                update(XeroRateCall)
                .where(XeroRateCall.id == call_id, XeroRateCall.finished_at.is_(None))
                .values(lease_until=lease_until, **_restamp(sent_at))
            )
        return bool(_rowcount(result))

    async def fold(
        self,
        tenant_id: str,
        *,
        now: datetime,
        windows: Windows,
        reported: Reported,
        call_id: int | None = None,
        sent_at: datetime | None = None,
    ) -> None:
        """Finish `call_id` (if any) and believe Xero where it saw more calls than the table
        holds: add stand-ins, dated now for the minute window, a minute ago for calls only the day
        window is short of, and tenant-less ones for the app window; a Retry-After closes the
        tenant for every process. Under the tenant's lock, like an admission."""
        async with self.db.engine.begin() as connection:
            await _lock(connection, tenant_id)
            if call_id is not None:
                await connection.execute(_finishing(call_id, now, sent_at))
            look = await _look(connection, tenant_id, now, windows)
            minute = max(0, (reported.minute_used or 0) - len(look.minute_calls))
            day = max(0, (reported.day_used or 0) - look.day - minute)
            app = max(0, (reported.app_used or 0) - look.app - minute)
            for tenant, at, count in (
                (tenant_id, now, minute),
                (tenant_id, now - windows.minute, day),
                ("", now, app),
            ):
                if count:
                    await connection.execute(
                        _PHANTOMS, {"tenant": tenant, "holder": REPORTED, "at": at, "count": count}
                    )
            values: dict[str, Any] = {
                "tenant_id": tenant_id,
                "closed_until": reported.closed_until,
                "minute_remaining": reported.minute_remaining,
                "day_remaining": reported.day_remaining,
                "app_remaining": reported.app_remaining,
                "observed_at": now,
            }
            upsert = pg_insert(XeroRateTenant).values(**values)
            await connection.execute(
                upsert.on_conflict_do_update(
                    index_elements=[XeroRateTenant.tenant_id],
                    set_={
                        # GREATEST ignores NULL: a later answer never reopens a closed tenant.
                        "closed_until": func.greatest(
                            XeroRateTenant.closed_until, upsert.excluded.closed_until
                        ),
                        "minute_remaining": upsert.excluded.minute_remaining,
                        "day_remaining": upsert.excluded.day_remaining,
                        "app_remaining": upsert.excluded.app_remaining,
                        "observed_at": upsert.excluded.observed_at,
                    },
                )
            )

    async def purge(self, *, now: datetime, before: datetime) -> int:
        """Delete calls admitted at or before `before` (outside every window) that are over or
        whose lease ran out, and tenants' reports that no longer close anything."""
        async with self.db.engine.begin() as connection:
            calls = await connection.execute(
                delete(XeroRateCall).where(
                    XeroRateCall.admitted_at <= before,
                    or_(XeroRateCall.finished_at.is_not(None), XeroRateCall.lease_until <= now),
                )
            )
            await connection.execute(
                delete(XeroRateTenant).where(
                    XeroRateTenant.observed_at <= before,
                    or_(XeroRateTenant.closed_until.is_(None), XeroRateTenant.closed_until <= now),
                )
            )
        return _rowcount(calls)


def _restamp(sent_at: datetime | None) -> dict[str, Any]:
    """Move a call's stamp to when it was sent, never earlier than its admission."""
    if sent_at is None:
        return {}
    return {"admitted_at": func.greatest(XeroRateCall.admitted_at, literal(sent_at, UTCDateTime()))}


def _finishing(call_id: int, now: datetime, sent_at: datetime | None) -> Update:
    return (
        update(XeroRateCall)
        .where(XeroRateCall.id == call_id, XeroRateCall.finished_at.is_(None))
        .values(finished_at=now, **_restamp(sent_at))
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def _lock(connection: AsyncConnection, tenant_id: str) -> None:
    await connection.execute(
        text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(tenant_id)}
    )


async def _look(
    connection: AsyncConnection, tenant_id: str, now: datetime, windows: Windows
) -> Look:
    row = (
        await connection.execute(
            _LOOK,
            {
                "tenant": tenant_id,
                "now": now,
                "minute_since": now - windows.minute,
                "day_since": now - windows.day,
                "per_day": windows.per_day,
                "day_offset": max(windows.per_day - 2, 0),
                "app_limit": windows.app_per_minute,
                "app_offset": windows.app_per_minute - 1,
            },
        )
    ).one()
    # Newest first from the (per_day - 1)-th (or, when per_day is 1, from the first).
    edges: list[datetime | None] = [ensure_aware(t) for t in row.day_edges or ()]
    if windows.per_day == 1:
        edges.insert(0, None)
    edges += [None, None]
    return Look(
        now=now,
        minute_calls=tuple(ensure_aware(t) for t in row.minute_calls),
        day=int(row.day),
        day_edge=edges[1] if int(row.day) >= windows.per_day else None,
        day_edge_next=edges[0],
        in_flight=int(row.in_flight),
        lease_ends=_aware(row.lease_ends),
        app=int(row.app),
        app_edge=_aware(row.app_edge),
        closed_until=_aware(row.closed_until),
    )
