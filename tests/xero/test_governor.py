"""The rate governor keeps each tenant under Xero's limits (on a fake clock: no real waiting)."""

from __future__ import annotations

import asyncio

from syncd.xero.governor import Limits, RateGovernor, parse_retry_after
from tests.fakes import InstantClock


def max_in_window(times: list[float], span: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - span:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_at_most_concurrent_calls_in_flight() -> None:
    """Twenty callers share five slots; never more than five are inside at once."""
    governor = RateGovernor(Limits(concurrent=5), clock=InstantClock())
    inside = peak = 0

    async def call() -> None:
        nonlocal inside, peak
        async with governor.slot("t"):
            inside += 1
            peak = max(peak, inside)
            for _ in range(3):  # the other callers get their turns while this one is inside
                await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(call() for _ in range(20)))
    assert peak == 5


async def test_per_minute_limit_holds_in_every_sliding_window() -> None:
    """150 calls admitted over time never exceed 60 in any 60-second window."""
    clock = InstantClock()
    governor = RateGovernor(Limits(per_minute=60), clock=clock)
    admitted: list[float] = []
    for _ in range(150):
        async with governor.slot("t"):
            admitted.append(clock.monotonic())
    assert max_in_window(admitted, 60.0) == 60
    assert admitted[-1] >= 120.0  # the third minute's calls had to wait


async def test_tenants_do_not_share_budgets() -> None:
    """Exhausting tenant A leaves tenant B untouched."""
    clock = InstantClock()
    governor = RateGovernor(Limits(per_minute=3), clock=clock)
    for _ in range(3):
        async with governor.slot("a"):
            pass
    assert governor.available("a") == 0
    assert governor.available("b") == 3
    async with governor.slot("b"):
        assert clock.monotonic() == 0.0


async def test_app_wide_limit_applies_across_tenants() -> None:
    """The app's per-minute limit counts every tenant's calls."""
    clock = InstantClock()
    governor = RateGovernor(Limits(per_minute=100, app_per_minute=4), clock=clock)
    for tenant in ("a", "b", "c", "d"):
        async with governor.slot(tenant):
            pass
    assert governor.available("e") == 0
    async with governor.slot("e"):
        assert clock.monotonic() >= 60.0


async def test_xero_headers_lower_the_local_budget() -> None:
    """When Xero says fewer calls remain than we counted, we believe Xero."""
    clock = InstantClock()
    governor = RateGovernor(Limits(per_minute=60, per_day=5000), clock=clock)
    governor.observe("t", min_remaining=2, day_remaining=4000, app_min_remaining=None)
    budget = governor.budget("t")
    assert budget.minute == 2
    assert budget.day == 4000
    for _ in range(2):
        async with governor.slot("t"):
            pass
    assert governor.available("t") == 0


async def test_headers_never_raise_the_budget() -> None:
    """A remaining count above ours (another window) does not give calls back."""
    clock = InstantClock()
    governor = RateGovernor(Limits(per_minute=5), clock=clock)
    for _ in range(4):
        async with governor.slot("t"):
            pass
    governor.observe("t", min_remaining=60, day_remaining=None, app_min_remaining=None)
    assert governor.budget("t").minute == 1


async def test_retry_after_closes_the_tenant_until_then() -> None:
    """After a 429 with Retry-After: 30, the next call starts no earlier than 30 s later."""
    clock = InstantClock()
    governor = RateGovernor(clock=clock)
    governor.observe(
        "t", min_remaining=None, day_remaining=None, app_min_remaining=None, retry_after=30
    )
    assert governor.available("t") == 0
    async with governor.slot("t"):
        assert clock.monotonic() >= 30.0


async def test_practices_with_no_budget_left_are_named_until_the_window_slides() -> None:
    """The worker skips these when claiming: a spent minute, or a 429, puts a practice on the
    list; the window sliding (or Retry-After passing) takes it off."""
    clock = InstantClock()
    governor = RateGovernor(Limits(per_minute=3), clock=clock)
    for _ in range(3):
        async with governor.slot("tenant-a", company="company-a"):
            pass
    async with governor.slot("tenant-b", company="company-b"):
        pass
    assert governor.spent_companies() == {"company-a"}
    governor.observe(
        "tenant-b", min_remaining=None, day_remaining=None, app_min_remaining=None, retry_after=5
    )
    assert governor.spent_companies() == {"company-a", "company-b"}
    clock.advance(61.5)
    assert governor.spent_companies() == frozenset()


def test_retry_after_parsing() -> None:
    """Whole or fractional seconds are read; junk and negatives are ignored."""
    assert parse_retry_after("42") == 42.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-3") is None


async def test_the_in_process_governor_has_nothing_stored_to_read_or_purge() -> None:
    """SQLite's governor: the current budget is its own count; purge and close do nothing."""
    clock = InstantClock()
    governor = RateGovernor(Limits(per_minute=5), clock=clock)
    async with governor.slot("t"):
        pass
    assert await governor.current_budget("t") == governor.budget("t")
    assert governor.budget("t").minute == 4
    assert await governor.purge() == 0
    await governor.close()
