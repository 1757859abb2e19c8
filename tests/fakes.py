"""In-memory twins for tests (never mocks of syncd's own code), clocks tests move, and the
one way a test waits for something to happen (`eventually`)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from syncd.domain.ids import CompanyId
from syncd.xero.audit import CallRecord
from syncd.xero.http import Credentials


class InstantClock:
    """Time that jumps: `sleep` advances it at once, so minute-long waits take no real time."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
        self.t = 0.0

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


class ManualClock:
    """A clock the test moves by hand; `sleep` waits until the test advances past the deadline.

    It knows until when its sleepers sleep, so a test can drive a whole system on it: let
    everything run until all that is left waits on the clock, then move time on to the next
    deadline (`next_deadline`, `advance_to`).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._elapsed + seconds, future)
        self._sleepers.append(entry)
        async with self._condition():
            self._condition().notify_all()
        try:
            await future
        finally:  # woken, or cancelled: no longer a sleeper either way
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    def next_deadline(self) -> float | None:
        """The earliest moment (on `monotonic`) a sleeper wakes; None when nobody sleeps."""
        return min((t for t, _ in self._sleepers), default=None)

    async def wait_for_sleepers(self, count: int) -> None:
        """Until `count` coroutines are blocked in `sleep` (fails after 30 real seconds)."""
        async with asyncio.timeout(30), self._condition():
            await self._condition().wait_for(lambda: len(self._sleepers) >= count)

    def advance(self, seconds: float) -> None:
        self.advance_to(self._elapsed + seconds)

    def advance_to(self, moment: float) -> None:
        """Move time on to `moment` (on `monotonic`; never back) and wake who is due by then."""
        self._elapsed = max(self._elapsed, moment)
        due = [(t, f) for t, f in self._sleepers if t <= self._elapsed]
        self._sleepers = [entry for entry in self._sleepers if entry[0] > self._elapsed]
        for _, future in due:
            if not future.done():
                future.set_result(None)


async def eventually(
    condition: Callable[[], Awaitable[bool] | bool], *, what: str, within: float = 30.0
) -> None:
    """Wait until `condition()` holds, looking again as soon as other tasks have run; fail
    after `within` real seconds (a hang, not a slow machine: the bound is generous)."""
    deadline = time.monotonic() + within
    while True:
        outcome = condition()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        await asyncio.sleep(0.001)


class StaticTokens:
    """A TokenSource twin: hands out numbered tokens, counts refreshes."""

    def __init__(self, tenant_id: str = "tenant-1") -> None:
        self.tenant_id = tenant_id
        self.generation = 1
        self.refreshes = 0

    async def credentials(self, company: CompanyId) -> Credentials:
        return Credentials(f"token-{self.generation}", self.tenant_id)

    async def refreshed(self, company: CompanyId, *, stale: str) -> Credentials:
        if stale == f"token-{self.generation}":
            self.generation += 1
            self.refreshes += 1
        return Credentials(f"token-{self.generation}", self.tenant_id)


class MemoryAudit:
    """A CallAudit twin that keeps the records."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    async def record(self, call: CallRecord) -> None:
        self.calls.append(call)
