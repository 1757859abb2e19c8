"""The shared rate governor on a real PostgreSQL: several governors, each with its own engine like
separate processes, keep one budget per tenant. Time is a fake clock shared by all of them (the
rows hold its times, never the database's), so minute- and day-long waits take no real time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from syncd.clock import SystemClock
from syncd.domain.errors import TransientError
from syncd.services import open_services
from syncd.store.db import Database
from syncd.store.models import XeroRateCall
from syncd.store.rate_budget import RateBudget
from syncd.xero.governor import DAY, MINUTE, Limits, RateGovernor
from syncd.xero.shared_governor import SharedRateGovernor, admission_wait
from tests.conftest import make_settings
from tests.fakes import InstantClock
from tests.xero.test_governor import max_in_window

# Set up before any event loop runs (the postgres_db fixture reads it from inside one).
pytestmark = pytest.mark.usefixtures("pg_migrated_url")

Processes = Callable[..., Awaitable[list[SharedRateGovernor]]]


@pytest.fixture
async def processes(postgres_db: Database) -> AsyncIterator[Processes]:
    """`await start(n, limits, clock)`: n governors on the test database, each with an engine of
    its own (as separate processes would have)."""
    async with AsyncExitStack() as stack:

        async def start(
            count: int, limits: Limits, clock: Any, *, lease: float = 60.0
        ) -> list[SharedRateGovernor]:
            governors = []
            for number in range(count):
                db = Database(postgres_db.url)
                stack.push_async_callback(db.dispose)
                governor = SharedRateGovernor(
                    RateBudget(db, holder=f"process-{number}"),
                    limits,
                    clock=clock,
                    lease=lease,
                )
                stack.push_async_callback(governor.close)
                governors.append(governor)
            return governors

        yield start


async def calls_in_db(db: Database, **where: object) -> int:
    async with db.transaction() as session:
        query = select(func.count()).select_from(XeroRateCall).filter_by(**where)
        return int((await session.execute(query)).scalar_one())


async def test_two_processes_share_the_minute_window(
    processes: Processes, postgres_db: Database
) -> None:
    """150 calls split over two processes never put more than 60 in any sliding minute."""
    clock = InstantClock()
    a, b = await processes(2, Limits(per_minute=60), clock)

    async def calls(governor: SharedRateGovernor, count: int) -> None:
        for _ in range(count):
            async with governor.slot("t"):
                pass

    await asyncio.gather(calls(a, 75), calls(b, 75))
    async with postgres_db.transaction() as session:
        rows = (await session.execute(select(XeroRateCall.admitted_at, XeroRateCall.holder))).all()
    admitted = [(at - clock.start).total_seconds() for at, _ in rows]
    assert len(admitted) == 150
    assert {holder for _, holder in rows} == {"process-0", "process-1"}
    assert max_in_window(admitted, 60.0) == 60
    assert max(admitted) >= 120.0  # the third minute's calls had to wait


async def test_at_most_concurrent_calls_in_flight_across_processes(
    processes: Processes,
) -> None:
    """Thirty callers in three processes share five slots; never more than five at once.

    On the real clock: the callers hold their slots for real time, and a clock that jumps
    whenever a waiter polls would run the holders' leases out under them."""
    clock = SystemClock()
    governors = await processes(3, Limits(concurrent=5, per_minute=1000), clock)
    inside = peak = 0

    async def call(governor: SharedRateGovernor) -> None:
        nonlocal inside, peak
        async with governor.slot("t"):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.25)  # long enough for five admissions on a busy machine
            inside -= 1

    await asyncio.gather(*(call(governors[i % 3]) for i in range(30)))
    assert peak == 5


async def test_the_day_limit_holds_across_processes(
    processes: Processes, postgres_db: Database
) -> None:
    """Five calls a day: the sixth, from another process, waits for the first to leave the
    day window; that process then counts the practice as spent until it does."""
    clock = InstantClock()
    a, b = await processes(2, Limits(per_day=5, per_minute=100), clock)
    for _ in range(5):
        async with a.slot("t", company="company-a"):
            pass
    assert a.spent_companies() == {"company-a"}  # its fifth call spent the day
    async with b.slot("t", company="company-a"):
        assert clock.monotonic() >= DAY
    assert await calls_in_db(postgres_db, tenant_id="t") == 6


async def test_retry_after_closes_the_tenant_for_every_process(
    processes: Processes,
) -> None:
    """A 429 with Retry-After: 30 seen by one process holds the others' calls for 30 s too."""
    clock = InstantClock()
    a, b = await processes(2, Limits(), clock)
    async with a.slot("t"):
        a.observe(
            "t", min_remaining=None, day_remaining=None, app_min_remaining=None, retry_after=30
        )
    assert (await b.current_budget("t")).closed_for == pytest.approx(30, abs=0.1)
    async with b.slot("t"):
        assert clock.monotonic() >= 30.0


async def test_a_dead_process_holds_its_slots_only_until_their_leases_lapse(
    processes: Processes, postgres_db: Database
) -> None:
    """A process killed mid-call leaves its calls unfinished; they count as in flight until
    their lease runs out (30 s here), then another process's call starts."""
    clock = InstantClock()
    (survivor,) = await processes(1, Limits(concurrent=5), clock)
    dead = RateBudget(postgres_db, holder="killed:4242")
    for _ in range(5):  # what the killed process left behind: admitted, never finished
        await dead.admit(
            "t",
            company=None,
            clock=clock,
            lease=timedelta(seconds=30),
            windows=survivor.windows,
            decide=lambda look: True,
        )
    assert (await survivor.current_budget("t")).in_flight == 5
    async with survivor.slot("t"):
        assert clock.monotonic() >= 30.0
        assert survivor.budget("t").in_flight == 1
    assert await calls_in_db(postgres_db, holder="killed:4242", finished_at=None) == 5


async def test_xero_headers_lower_every_process_budget(
    processes: Processes,
) -> None:
    """When Xero says 2 calls remain, another process believes it too, and its third call
    waits for the minute to pass."""
    clock = InstantClock()
    a, b = await processes(2, Limits(per_minute=60, per_day=5000), clock)
    a.observe("t", min_remaining=2, day_remaining=4000, app_min_remaining=None)
    assert a.budget("t").minute == 2  # at once in the observing process
    await a.flush()
    budget = await b.current_budget("t")
    assert (budget.minute, budget.day) == (2, 4000)
    for _ in range(2):
        async with b.slot("t"):
            assert clock.monotonic() == 0.0
    async with b.slot("t"):
        assert clock.monotonic() >= MINUTE


async def test_headers_never_raise_the_shared_budget(processes: Processes) -> None:
    """A remaining count above the table's (another window of Xero's) gives no calls back."""
    clock = InstantClock()
    (a,) = await processes(1, Limits(per_minute=5), clock)
    for _ in range(4):
        async with a.slot("t"):
            pass
    async with a.slot("t"):
        a.observe("t", min_remaining=60, day_remaining=None, app_min_remaining=None)
    assert (await a.current_budget("t")).minute == 0


async def test_app_wide_limit_applies_across_tenants_and_processes(
    processes: Processes,
) -> None:
    """The app's per-minute limit counts every tenant's calls from every process."""
    clock = InstantClock()
    a, b = await processes(2, Limits(per_minute=100, app_per_minute=4), clock)
    for tenant in ("a", "b", "c", "d"):
        async with a.slot(tenant):
            pass
    async with b.slot("e"):
        assert clock.monotonic() >= 60.0


async def test_spent_practices_are_named_once_the_process_has_looked(
    processes: Processes,
) -> None:
    """A practice whose minute another process spent is on this process's skip list after it
    looks (an admission or a status read), and off it when the window slides."""
    clock = InstantClock()
    a, b = await processes(2, Limits(per_minute=3), clock)
    async with b.slot("tenant-a", company="company-a"):
        pass
    for _ in range(2):
        async with a.slot("tenant-a", company="company-a"):
            pass
    assert a.spent_companies() == {"company-a"}
    assert b.spent_companies() == frozenset()  # b has not looked since
    await b.current_budget("tenant-a")
    assert b.spent_companies() == {"company-a"}
    clock.advance(MINUTE + 0.5)
    assert b.spent_companies() == frozenset()


async def test_a_long_call_renews_its_lease(processes: Processes) -> None:
    """A call outliving its lease keeps its slot: with one slot and a 1 s lease, a second
    process's call waits the whole 1.6 s the first one takes (real time)."""
    clock = SystemClock()
    a, b = await processes(2, Limits(concurrent=1), clock, lease=1.0)
    order: list[str] = []

    async def long_call() -> None:
        async with a.slot("t"):
            order.append("long started")
            await asyncio.sleep(1.6)
            order.append("long ended")

    async def second_call() -> None:
        await asyncio.sleep(0.1)
        async with b.slot("t"):
            order.append("second started")

    await asyncio.gather(long_call(), second_call())
    assert order == ["long started", "long ended", "second started"]


async def test_housekeeping_purges_calls_older_than_a_day(
    processes: Processes, postgres_db: Database
) -> None:
    """Calls outside every window are deleted; a day-old call still in flight (lease ahead) is
    not; recent calls stay."""
    clock = InstantClock()
    (a,) = await processes(1, Limits(), clock)
    for _ in range(3):
        async with a.slot("t"):
            pass
    stuck = RateBudget(postgres_db, holder="stuck")
    await stuck.admit(
        "t",
        company=None,
        clock=clock,
        lease=timedelta(days=2),
        windows=a.windows,
        decide=lambda look: True,
    )
    clock.advance(DAY + 1)
    async with a.slot("t"):
        pass
    assert await a.purge() == 3
    assert await calls_in_db(postgres_db, tenant_id="t") == 2
    assert await RateGovernor(clock=clock).purge() == 0


async def test_an_unreachable_database_is_a_transient_error() -> None:
    """Without its database the governor admits nothing and says so as a retryable error."""
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:9/none")
    governor = SharedRateGovernor(RateBudget(db), clock=InstantClock())
    try:
        with pytest.raises(TransientError, match="rate budget is unavailable"):
            async with governor.slot("t"):
                pass
    finally:
        await db.dispose()


def test_the_wait_is_decided_from_the_look_alone() -> None:
    """Pure decision: a full minute waits for its oldest call, a full day for its edge, a closed
    tenant for Retry-After, full slots for a release (None)."""
    from syncd.store.rate_budget import Look

    clock = InstantClock()
    now = clock.now()
    limits = Limits(per_minute=2, per_day=3, concurrent=1)

    def look(**changes: object) -> Look:
        base: dict[str, object] = {
            "now": now,
            "minute_calls": (),
            "day": 0,
            "day_edge": None,
            "day_edge_next": None,
            "in_flight": 0,
            "lease_ends": None,
            "app": 0,
            "app_edge": None,
            "closed_until": None,
        }
        return Look(**{**base, **changes})

    ago = [now - timedelta(seconds=s) for s in (50, 10)]
    assert admission_wait(look(), limits, app_limit=10) == 0.0
    assert admission_wait(look(in_flight=1), limits, app_limit=10) is None
    assert admission_wait(look(minute_calls=tuple(ago), day=2), limits, app_limit=10) == (
        pytest.approx(MINUTE - 50)
    )
    assert admission_wait(
        look(day=3, day_edge=now - timedelta(hours=23)), limits, app_limit=10
    ) == pytest.approx(DAY - 23 * 3600)
    assert admission_wait(
        look(closed_until=now + timedelta(seconds=7), in_flight=1), limits, app_limit=10
    ) == pytest.approx(7)


async def test_services_build_the_shared_governor_on_postgresql(postgres_db: Database) -> None:
    """On PostgreSQL the processes share the budget: services build the shared governor."""
    async with open_services(make_settings(database_url=postgres_db.url), db=postgres_db) as s:
        assert isinstance(s.require_xero().governor, SharedRateGovernor)


async def test_services_keep_the_in_process_governor_on_sqlite(sqlite_db: Database) -> None:
    """SQLite means one process: it counts alone."""
    async with open_services(make_settings(database_url=sqlite_db.url), db=sqlite_db) as s:
        assert type(s.require_xero().governor) is RateGovernor
