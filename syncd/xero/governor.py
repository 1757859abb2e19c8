"""The rate governor: keeps each tenant under Xero's limits before Xero has to say 429.

Per tenant: at most `concurrent` calls in flight, `per_minute` calls in any 60 s window and
`per_day` in any 24 h window; per app: `app_per_minute`. Windows slide on the injected clock.
Xero's `X-*Limit-Remaining` headers correct the local count (other processes share the same
budget), and a 429's `Retry-After` closes the tenant until then.

`RateGovernor` counts in the process: SQLite's (syncd is one process there). On PostgreSQL
`syncd.xero.shared_governor.SharedRateGovernor`, a subclass, admits every call in the database
so that all processes share one budget (docs/rate-budget.md). Imports the clock only.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from syncd.clock import Clock, SystemClock

# Windows are a little longer than Xero's: a call is counted when we admit it, but Xero counts it
# when it arrives, a few milliseconds (or a slow token refresh) later.
SKEW = 1.0
MINUTE = 60.0 + SKEW
DAY = 86_400.0 + SKEW


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    per_minute: int = 60
    per_day: int = 5000
    concurrent: int = 5
    app_per_minute: int = 10_000


@dataclass(frozen=True, slots=True)
class Budget:
    """What a tenant may still spend now (for /status and fair claiming)."""

    minute: int
    day: int
    in_flight: int
    closed_for: float


class _Window:
    """Timestamps of calls inside a sliding window of `span` seconds."""

    __slots__ = ("calls", "span")

    def __init__(self, span: float) -> None:
        self.span = span
        self.calls: deque[float] = deque()

    def prune(self, now: float) -> None:
        while self.calls and self.calls[0] <= now - self.span:
            self.calls.popleft()

    def used(self, now: float) -> int:
        self.prune(now)
        return len(self.calls)

    def wait(self, now: float, limit: int) -> float:
        """Seconds until one more call fits under `limit`."""
        self.prune(now)
        if len(self.calls) < limit:
            return 0.0
        # The call that must leave the window before another may enter.
        return self.calls[len(self.calls) - limit] + self.span - now

    def record(self, now: float, count: int = 1) -> None:
        self.calls.extend([now] * count)


@dataclass(slots=True)
class _Tenant:
    minute: _Window = field(default_factory=lambda: _Window(MINUTE))
    day: _Window = field(default_factory=lambda: _Window(DAY))
    in_flight: int = 0
    closed_until: float = 0.0
    # Set (and replaced) whenever a call finishes, to wake callers waiting for a free slot.
    released: asyncio.Event = field(default_factory=asyncio.Event)


class RateGovernor:
    """Admits calls per tenant; `slot(tenant)` waits until one more call is allowed."""

    def __init__(self, limits: Limits | None = None, *, clock: Clock | None = None) -> None:
        self.limits = limits or Limits()
        self.clock = clock or SystemClock()
        self._tenants: dict[str, _Tenant] = {}
        self._app = _Window(MINUTE)
        self._tenant_of: dict[str, str] = {}  # company -> tenant, learnt from its calls

    def _tenant(self, tenant_id: str) -> _Tenant:
        return self._tenants.setdefault(tenant_id, _Tenant())

    def _wait_for(self, tenant: _Tenant, now: float) -> float | None:
        """0 when a call may start now; seconds to wait; None when only a release can help."""
        if tenant.in_flight >= self.limits.concurrent:
            return None
        return max(
            tenant.closed_until - now,
            tenant.minute.wait(now, self.limits.per_minute),
            tenant.day.wait(now, self.limits.per_day),
            self._app.wait(now, self.limits.app_per_minute),
            0.0,
        )

    @asynccontextmanager
    async def slot(self, tenant_id: str, *, company: str | None = None) -> AsyncIterator[None]:
        """Hold one of the tenant's call slots for the duration of one HTTP call."""
        if company is not None:
            self._tenant_of[company] = tenant_id
        tenant = self._tenant(tenant_id)
        while True:
            # No await between the check and the admission: single-threaded, so atomic.
            now = self.clock.monotonic()
            wait = self._wait_for(tenant, now)
            if wait == 0.0:
                break
            if wait is None:
                await tenant.released.wait()
            else:
                await self.clock.sleep(wait)
        tenant.in_flight += 1
        tenant.minute.record(now)
        tenant.day.record(now)
        self._app.record(now)
        try:
            yield
        finally:
            tenant.in_flight -= 1
            released, tenant.released = tenant.released, asyncio.Event()
            released.set()

    def observe(
        self,
        tenant_id: str,
        *,
        min_remaining: int | None,
        day_remaining: int | None,
        app_min_remaining: int | None,
        retry_after: float | None = None,
    ) -> None:
        """Fold Xero's view of the budget into ours: never believe we have more left than Xero."""
        now = self.clock.monotonic()
        tenant = self._tenant(tenant_id)
        for window, limit, remaining in (
            (tenant.minute, self.limits.per_minute, min_remaining),
            (tenant.day, self.limits.per_day, day_remaining),
            (self._app, self.limits.app_per_minute, app_min_remaining),
        ):
            if remaining is None:
                continue
            missing = (limit - remaining) - window.used(now)
            if missing > 0:
                # Calls made by another process: count them as made now (conservative).
                window.record(now, missing)
        if retry_after is not None:
            tenant.closed_until = max(tenant.closed_until, now + retry_after)

    def budget(self, tenant_id: str) -> Budget:
        now = self.clock.monotonic()
        tenant = self._tenant(tenant_id)
        return Budget(
            minute=max(0, self.limits.per_minute - tenant.minute.used(now)),
            day=max(0, self.limits.per_day - tenant.day.used(now)),
            in_flight=tenant.in_flight,
            closed_for=max(0.0, tenant.closed_until - now),
        )

    def spent_companies(self) -> frozenset[str]:
        """Practices whose tenant can start no call until its window slides (minute or day
        budget spent, or closed by a 429): a task of theirs claimed now would only sit in a
        worker slot that another practice could use."""
        now = self.clock.monotonic()
        return frozenset(
            company
            for company, tenant_id in self._tenant_of.items()
            if (tenant := self._tenants.get(tenant_id)) is not None
            and (
                tenant.closed_until > now
                or tenant.minute.used(now) >= self.limits.per_minute
                or tenant.day.used(now) >= self.limits.per_day
            )
        )

    def available(self, tenant_id: str) -> int:
        """How many calls could start for the tenant right now."""
        budget = self.budget(tenant_id)
        if budget.closed_for > 0:
            return 0
        app_left = self.limits.app_per_minute - self._app.used(self.clock.monotonic())
        free = self.limits.concurrent - budget.in_flight
        return max(0, min(free, budget.minute, budget.day, app_left))

    async def current_budget(self, tenant_id: str) -> Budget:
        """The budget as of now (for /status): this process's count is the whole count."""
        return self.budget(tenant_id)

    async def purge(self) -> int:
        """Housekeeping: nothing is stored outside the process."""
        return 0

    async def close(self) -> None:
        """Nothing to wait for in the process."""


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (Xero sends whole seconds); None when absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
