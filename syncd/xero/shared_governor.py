"""The shared rate governor (PostgreSQL): every Xero call of every process is admitted in the
database (syncd.store.rate_budget), so all processes keep each tenant under one budget; the
interface is RateGovernor's (docs/rate-budget.md).

Imports the in-process governor, the clock, the error tree and that store.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from syncd.clock import Clock
from syncd.domain.errors import TransientError
from syncd.logs import get_logger
from syncd.store.rate_budget import Look, RateBudget, Reported, Windows
from syncd.xero.governor import DAY, MINUTE, Budget, Limits, RateGovernor, _Tenant

log = get_logger("syncd.governor")

# A call counts as in flight until it finishes or, if its process dies, until its lease runs
# out; a call still running at a third of its lease has the lease renewed (checked four times a
# second of real time), so the lease can be short: a killed process's slots come back soon.
LEASE = 10.0
RENEW_CHECK = 0.25
# While every slot is taken in the database, ask again after this long (doubling up to the
# maximum); a call finishing in this process wakes the asker at once.
POLL_FIRST = 0.02
POLL_MAX = 0.5
# A fiftieth of the app-wide limit is kept back: admissions of different tenants take different
# locks, so a few may race past the app-wide count at once.
APP_RESERVE = 50
_DB_ERRORS = (SQLAlchemyError, OSError)
_T = TypeVar("_T")


def app_ceiling(limits: Limits) -> int:
    """The app-wide calls per minute the shared governor admits (see APP_RESERVE)."""
    return limits.app_per_minute - limits.app_per_minute // APP_RESERVE


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


def admission_wait(look: Look, limits: Limits, *, app_limit: int) -> float | None:
    """0 when one more call may start now; else the seconds until a window slides or Xero's
    Retry-After passes; None when only a finishing call (or a lapsing lease) can free a slot."""
    now = look.now
    waits = [0.0]
    if look.closed_until is not None:
        waits.append(_seconds(look.closed_until - now))
    if len(look.minute_calls) >= limits.per_minute:
        leaving = look.minute_calls[len(look.minute_calls) - limits.per_minute]
        waits.append(_seconds(leaving - now) + MINUTE)
    if look.day >= limits.per_day:
        waits.append(_seconds(look.day_edge - now) + DAY if look.day_edge else MINUTE)
    if look.app >= app_limit:
        waits.append(_seconds(look.app_edge - now) + MINUTE if look.app_edge else 1.0)
    wait = max(waits)
    if wait > 0:
        return wait
    return None if look.in_flight >= limits.concurrent else 0.0


@dataclass(slots=True)
class _Seen:
    """What the shared governor last saw of a tenant beyond the minute window `_Tenant` holds."""

    day: int = 0
    day_opens: float = 0.0  # monotonic; before it the day window is full (0: not known full)
    remote: int = 0  # other processes' calls in flight at the last look


def _merge(old: Reported | None, new: Reported) -> Reported:
    if old is None:
        return new

    def most(a: int | None, b: int | None) -> int | None:
        return b if a is None else a if b is None else max(a, b)

    closed = [t for t in (old.closed_until, new.closed_until) if t is not None]
    return replace(
        new,
        minute_used=most(old.minute_used, new.minute_used),
        day_used=most(old.day_used, new.day_used),
        app_used=most(old.app_used, new.app_used),
        closed_until=max(closed) if closed else None,
    )


class SharedRateGovernor(RateGovernor):
    """A RateGovernor whose admissions happen in PostgreSQL, so that all processes on the
    database share each tenant's budget (docs/rate-budget.md).

    A call is admitted by inserting its row under the tenant's advisory lock, when the minute,
    day, in-flight and app-wide counts and Xero's Retry-After allow it; it finishes by stamping
    the row. Within a process one caller per tenant asks the database at a time (the others
    queue behind it), so waiting costs at most one query per process and tenant.

    `budget`, `available` and `spent_companies` stay synchronous: they read this process's view
    (the inherited windows), refreshed from the database at every admission and by
    `current_budget`. Xero's headers go into the view at once and into the database when the call
    ends (or on `flush`).
    """

    def __init__(
        self,
        store: RateBudget,
        limits: Limits | None = None,
        *,
        clock: Clock | None = None,
        lease: float = LEASE,
    ) -> None:
        super().__init__(limits, clock=clock)
        self.store = store
        self.lease = lease
        self.windows = Windows(
            minute=timedelta(seconds=MINUTE),
            day=timedelta(seconds=DAY),
            per_day=self.limits.per_day,
            app_per_minute=app_ceiling(self.limits),
        )
        self._seen: dict[str, _Seen] = {}
        self._local: Counter[str] = Counter()  # this process's calls in flight, per tenant
        self._gates: dict[str, asyncio.Lock] = {}
        self._pending: dict[str, Reported] = {}
        self._app_count = 0
        self._app_opens = 0.0
        self._background: set[asyncio.Task[Any]] = set()

    # -- admission -----------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self, tenant_id: str, *, company: str | None = None) -> AsyncIterator[None]:
        """Hold one of the tenant's call slots, across all processes, for one HTTP call."""
        if company is not None:
            self._tenant_of[company] = tenant_id
        call_id = await self._admit(tenant_id, company)
        # The call goes out now: its row is re-stamped with this time when it ends (or renews
        # its lease), so that the admission's own round trips do not count against SKEW.
        sent = self.clock.now()
        renewer = asyncio.create_task(
            self._keep_leased(call_id, sent), name=f"rate-lease-{call_id}"
        )
        try:
            yield
        finally:
            renewer.cancel()
            await self._release(tenant_id, call_id, sent)

    async def _admit(self, tenant_id: str, company: str | None) -> int:
        tenant = self._tenant(tenant_id)
        poll = POLL_FIRST
        async with self._gates.setdefault(tenant_id, asyncio.Lock()):
            while True:
                closed = tenant.closed_until - self.clock.monotonic()
                if closed > 0:  # a 429 seen here, maybe not yet in the database
                    await self.clock.sleep(closed)
                    continue
                if self._local[tenant_id] >= self.limits.concurrent:
                    await tenant.released.wait()
                    continue
                local = self._local[tenant_id]
                look, call_id = await self._ask(tenant_id, company)
                if call_id is not None:
                    self._local[tenant_id] += 1
                self._load(tenant_id, look, local=local, admitted=call_id is not None)
                if call_id is not None:
                    return call_id
                wait = admission_wait(look, self.limits, app_limit=self.windows.app_per_minute)
                if wait is None:
                    if look.lease_ends is not None:
                        poll = min(poll, max(POLL_FIRST, _seconds(look.lease_ends - look.now)))
                    await self._released_or_slept(tenant, poll)
                    poll = min(poll * 2, POLL_MAX)
                else:
                    poll = POLL_FIRST
                    await self.clock.sleep(wait)

    async def _ask(self, tenant_id: str, company: str | None) -> tuple[Look, int | None]:
        """One admission in the database; shielded, so a caller cancelled meanwhile cannot
        leave a call in flight behind it (the abandoned call is finished at once)."""

        def decide(look: Look) -> bool:
            return admission_wait(look, self.limits, app_limit=self.windows.app_per_minute) == 0

        asking = self._tracked(
            self.store.admit(
                tenant_id,
                company=company,
                clock=self.clock,
                lease=timedelta(seconds=self.lease),
                windows=self.windows,
                decide=decide,
            )
        )
        try:
            return await asyncio.shield(asking)
        except asyncio.CancelledError:
            asking.add_done_callback(self._abandoned)
            raise
        except _DB_ERRORS as exc:
            raise TransientError(
                f"the shared Xero rate budget is unavailable ({type(exc).__name__})"
            ) from exc

    def _abandoned(self, asking: asyncio.Future[tuple[Look, int | None]]) -> None:
        if asking.cancelled() or asking.exception() is not None:
            return
        _, call_id = asking.result()
        if call_id is not None:
            self._tracked(self.store.finish(call_id, now=self.clock.now(), sent_at=None))

    async def _released_or_slept(self, tenant: _Tenant, seconds: float) -> None:
        """Until a call of this process finishes, or `seconds` on the clock pass."""
        waiters = {
            asyncio.ensure_future(tenant.released.wait()),
            asyncio.ensure_future(self.clock.sleep(seconds)),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _keep_leased(self, call_id: int, sent: datetime) -> None:
        """Renew the lease of a call that runs long. Wakes on real time, renews by the clock
        (which tests may run faster), like the worker's task leases."""
        renewed = self.clock.monotonic()
        while True:
            await asyncio.sleep(min(RENEW_CHECK, self.lease / 4))
            if self.clock.monotonic() - renewed < self.lease / 3:
                continue
            now = self.clock.now()
            try:
                if not await self.store.renew(
                    call_id, lease_until=now + timedelta(seconds=self.lease), sent_at=sent
                ):
                    return
            except _DB_ERRORS:
                log.warning("rate_budget.renew_failed", call=call_id)
                continue
            renewed = self.clock.monotonic()

    async def _release(self, tenant_id: str, call_id: int, sent: datetime) -> None:
        reported = self._pending.pop(tenant_id, None)
        try:
            now = self.clock.now()
            if reported is None:
                ending = self.store.finish(call_id, now=now, sent_at=sent)
            else:
                ending = self.store.fold(
                    tenant_id,
                    now=now,
                    windows=self.windows,
                    reported=reported,
                    call_id=call_id,
                    sent_at=sent,
                )
            # Shielded: a caller cancelled now still frees its slot (close() waits for it).
            await asyncio.shield(self._tracked(ending))
        except _DB_ERRORS:
            # The lease runs out instead; Xero's word is kept for the next call to write.
            log.warning("rate_budget.finish_failed", tenant=tenant_id, call=call_id)
            if reported is not None:
                self._pending[tenant_id] = _merge(self._pending.get(tenant_id), reported)
        finally:
            self._local[tenant_id] -= 1
            tenant = self._tenant(tenant_id)
            tenant.in_flight = self._seen_of(tenant_id).remote + self._local[tenant_id]
            released, tenant.released = tenant.released, asyncio.Event()
            released.set()

    def _tracked(self, work: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Run `work` as a task that `close()` waits for."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- the view ------------------------------------------------------------------------

    def _seen_of(self, tenant_id: str) -> _Seen:
        return self._seen.setdefault(tenant_id, _Seen())

    def _load(self, tenant_id: str, look: Look, *, local: int, admitted: bool) -> None:
        """Refresh the view from a look, taken with `local` of this process's calls in flight;
        `admitted` adds the call the look let in."""
        mono = self.clock.monotonic() - _seconds(self.clock.now() - look.now)

        def at(moment: datetime) -> float:
            return mono - _seconds(look.now - moment)

        tenant, seen = self._tenant(tenant_id), self._seen_of(tenant_id)
        minute = [at(t) for t in look.minute_calls]
        tenant.minute.calls = deque(sorted([*minute, mono] if admitted else minute))
        seen.day = look.day + admitted
        seen.day_opens = 0.0
        if look.day >= self.limits.per_day and look.day_edge is not None:
            seen.day_opens = at(look.day_edge) + DAY
        elif admitted and seen.day >= self.limits.per_day:  # this call spent the day
            seen.day_opens = (at(look.day_edge_next) if look.day_edge_next else mono) + DAY
        self._app_count = look.app + admitted
        self._app_opens = (
            at(look.app_edge) + MINUTE
            if look.app >= self.windows.app_per_minute and look.app_edge is not None
            else 0.0
        )
        if look.closed_until is not None:
            tenant.closed_until = max(tenant.closed_until, at(look.closed_until))
        seen.remote = max(0, look.in_flight - local)
        tenant.in_flight = seen.remote + self._local[tenant_id]

    def _day_left(self, seen: _Seen, now: float) -> int:
        left = self.limits.per_day - seen.day
        return max(1 if seen.day_opens and now >= seen.day_opens else 0, left)

    def observe(
        self,
        tenant_id: str,
        *,
        min_remaining: int | None,
        day_remaining: int | None,
        app_min_remaining: int | None,
        retry_after: float | None = None,
    ) -> None:
        """Fold Xero's view into this process's at once, and into the database when the
        tenant's call ends (or at `flush`), wherever Xero counted more than we know of."""
        mono, now = self.clock.monotonic(), self.clock.now()
        tenant, seen = self._tenant(tenant_id), self._seen_of(tenant_id)
        limits = self.limits
        minute_used = None if min_remaining is None else limits.per_minute - min_remaining
        day_used = None if day_remaining is None else limits.per_day - day_remaining
        app_used = None if app_min_remaining is None else limits.app_per_minute - app_min_remaining
        news = retry_after is not None
        if minute_used is not None and minute_used > tenant.minute.used(mono):
            tenant.minute.record(mono, minute_used - tenant.minute.used(mono))
            news = True
        if day_used is not None and day_used > seen.day:
            seen.day, news = day_used, True
        if app_used is not None and app_used > self._app_count:
            self._app_count, news = app_used, True
        closed_until = None
        if retry_after is not None:
            tenant.closed_until = max(tenant.closed_until, mono + retry_after)
            closed_until = now + timedelta(seconds=retry_after)
        if news:
            self._pending[tenant_id] = _merge(
                self._pending.get(tenant_id),
                Reported(
                    minute_used=minute_used,
                    day_used=day_used,
                    app_used=app_used,
                    minute_remaining=min_remaining,
                    day_remaining=day_remaining,
                    app_remaining=app_min_remaining,
                    closed_until=closed_until,
                ),
            )

    async def flush(self) -> None:
        """Write what Xero said outside any call's slot (a call's end writes it otherwise)."""
        pending, self._pending = self._pending, {}
        for tenant_id, reported in pending.items():
            await self.store.fold(
                tenant_id, now=self.clock.now(), windows=self.windows, reported=reported
            )

    def budget(self, tenant_id: str) -> Budget:
        now = self.clock.monotonic()
        tenant, seen = self._tenant(tenant_id), self._seen_of(tenant_id)
        return Budget(
            minute=max(0, self.limits.per_minute - tenant.minute.used(now)),
            day=self._day_left(seen, now),
            in_flight=tenant.in_flight,
            closed_for=max(0.0, tenant.closed_until - now),
        )

    def spent_companies(self) -> frozenset[str]:
        """As RateGovernor's, over this process's view: a tenant whose budget another process
        spent shows up here once a call of this process has asked (and been told to wait)."""
        now = self.clock.monotonic()
        spent: set[str] = set()
        for company, tenant_id in self._tenant_of.items():
            tenant, seen = self._tenants.get(tenant_id), self._seen.get(tenant_id)
            if tenant is None:
                continue
            if (
                tenant.closed_until > now
                or tenant.minute.used(now) >= self.limits.per_minute
                or (seen is not None and seen.day_opens > now)
            ):
                spent.add(company)
        return frozenset(spent)

    def available(self, tenant_id: str) -> int:
        budget = self.budget(tenant_id)
        if budget.closed_for > 0:
            return 0
        now = self.clock.monotonic()
        app_left = self.windows.app_per_minute - self._app_count
        if self._app_opens and now >= self._app_opens:
            app_left = max(1, app_left)
        free = self.limits.concurrent - budget.in_flight
        return max(0, min(free, budget.minute, budget.day, app_left))

    async def current_budget(self, tenant_id: str) -> Budget:
        """The budget as the database has it now (all processes), for /status."""
        local = self._local[tenant_id]
        look = await self.store.look(tenant_id, now=self.clock.now(), windows=self.windows)
        self._load(tenant_id, look, local=local, admitted=False)
        return self.budget(tenant_id)

    async def purge(self) -> int:
        """Housekeeping: delete calls that no window counts any more (older than a day)."""
        now = self.clock.now()
        return await self.store.purge(now=now, before=now - timedelta(seconds=DAY))

    async def close(self) -> None:
        """Wait for admissions and finishes still running for callers that were cancelled."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
