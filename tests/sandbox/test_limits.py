"""Xero's rate limits in the sandbox: minute, day, concurrency and app-wide, with headers."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from syncd.clock import ScaledClock
from syncd.sandbox import checks
from syncd.sandbox.limits import RateLimiter
from syncd.sandbox.models import Faults, Limits, SandboxError
from syncd.sandbox.state import SandboxState
from tests.fakes import ManualClock
from tests.sandbox.flow import PROJECTS, Session, client_for, connect, seeded_state

LIMITS = Limits()


def test_sliding_minute_window_and_retry_after() -> None:
    """60 calls fit in a minute; the 61st is refused until the oldest leaves the window."""
    limiter = RateLimiter()
    for second in range(60):
        admitted = limiter.admit_tenant("app", "t", second * 0.5, LIMITS, 10000)
        assert admitted.accepted
        limiter.release("t")
    refused = limiter.admit_tenant("app", "t", 30.0, LIMITS, 10000)
    assert (refused.accepted, refused.problem, refused.retry_after) == (False, "minute", 30)
    assert refused.minute_remaining == 0
    assert not limiter.admit_tenant("app", "t", 59.9, LIMITS, 10000).accepted
    assert limiter.admit_tenant("app", "t", 60.0, LIMITS, 10000).accepted


def test_retry_after_is_rounded_up_to_whole_seconds() -> None:
    """Retry-After is the ceiling of the wait, never 0."""
    limiter = RateLimiter()
    limits = Limits(per_minute=1)
    limiter.admit_tenant("app", "t", 0.25, limits, 10000)
    limiter.release("t")
    assert limiter.admit_tenant("app", "t", 10.0, limits, 10000).retry_after == 51
    assert limiter.admit_tenant("app", "t", 60.2, limits, 10000).retry_after == 1


def test_concurrency_counts_calls_in_flight() -> None:
    """A sixth call while five are in flight is refused; releasing one lets it in."""
    limiter = RateLimiter()
    for _ in range(5):
        assert limiter.admit_tenant("app", "t", 0.0, LIMITS, 10000).accepted
    refused = limiter.admit_tenant("app", "t", 0.0, LIMITS, 10000)
    assert (refused.problem, refused.retry_after) == ("concurrent", None)
    assert refused.in_flight == 6
    limiter.release("t")
    assert limiter.admit_tenant("app", "t", 0.0, LIMITS, 10000).in_flight == 5


def test_rejected_calls_do_not_count() -> None:
    """Refusals leave the windows untouched: the remaining count does not drop."""
    limiter = RateLimiter()
    limits = Limits(per_minute=2)
    for _ in range(2):
        limiter.admit_tenant("app", "t", 0.0, limits, 10000)
        limiter.release("t")
    for _ in range(5):
        assert not limiter.admit_tenant("app", "t", 1.0, limits, 10000).accepted
    assert limiter.admit_tenant("app", "t", 60.0, limits, 10000).accepted


def test_limits_refuse_nonsense() -> None:
    """Limits must be positive integers, when built and when set later."""
    with pytest.raises(SandboxError):
        Limits(per_minute=0)
    limits = Limits()
    with pytest.raises(SandboxError):
        limits.concurrent = True
    limits.per_minute = 30
    assert limits == Limits(per_minute=30)


async def test_sixty_first_call_in_a_minute_is_429_with_retry_after(
    client: httpx.AsyncClient, session: Session, clock: ManualClock, state: SandboxState
) -> None:
    """Headers count down per call; the 61st call answers 429 minute with Retry-After."""
    remaining = []
    for _ in range(60):
        answer = await client.get(f"{PROJECTS}/Projects", headers=session.headers())
        assert answer.status_code == 200
        remaining.append(int(answer.headers["X-MinLimit-Remaining"]))
    assert remaining == list(range(59, -1, -1))
    assert answer.headers["X-DayLimit-Remaining"] == "4940"
    assert int(answer.headers["X-AppMinLimit-Remaining"]) < 10000
    clock.advance(10)
    refused = await client.get(f"{PROJECTS}/Projects", headers=session.headers())
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert refused.headers["Retry-After"] == "50"
    assert refused.headers["X-MinLimit-Remaining"] == "0"
    clock.advance(50)
    assert (await client.get(f"{PROJECTS}/Projects", headers=session.headers())).status_code == 200
    assert checks.max_calls_in_any_window(state.ledger, session.tenant_id) == 60
    assert checks.count_429(state.ledger, session.tenant_id) == 1


async def test_sixth_concurrent_call_is_429_concurrent(
    client: httpx.AsyncClient, session: Session, clock: ManualClock, state: SandboxState
) -> None:
    """With five calls in flight the sixth answers 429 concurrent without Retry-After."""
    state.faults = Faults(latency_ms=1000)
    url = f"{PROJECTS}/Projects"
    slow = [asyncio.create_task(client.get(url, headers=session.headers())) for _ in range(5)]
    await clock.wait_for_sleepers(5)
    refused = await client.get(url, headers=session.headers())
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "concurrent"
    assert "Retry-After" not in refused.headers
    clock.advance(1)
    assert [a.status_code for a in await asyncio.gather(*slow)] == [200] * 5
    assert checks.max_concurrency(state.ledger, session.tenant_id) == 5
    assert state.limiter.in_flight(session.tenant_id) == 0


async def test_daily_limit_per_tenant_override(
    client: httpx.AsyncClient, session: Session, state: SandboxState, clock: ManualClock
) -> None:
    """A per-tenant day limit answers 429 day with Retry-After until the call is 24 h old."""
    state.set_limits(Limits(per_day=3), tenant_id=session.tenant_id)
    for _ in range(3):
        assert (
            await client.get(f"{PROJECTS}/Projects", headers=session.headers())
        ).status_code == 200
    clock.advance(1000)
    refused = await client.get(f"{PROJECTS}/Projects", headers=session.headers())
    assert refused.headers["X-Rate-Limit-Problem"] == "day"
    assert refused.headers["Retry-After"] == str(86400 - 1000)
    assert state.limits_for("someone-else") == Limits()


async def test_app_minute_limit_covers_connections(
    client: httpx.AsyncClient, session: Session, state: SandboxState
) -> None:
    """/connections carries only X-AppMinLimit-Remaining and counts towards the app limit."""
    listed = await client.get("/connections", headers=session.headers())
    assert "X-AppMinLimit-Remaining" in listed.headers
    assert "X-MinLimit-Remaining" not in listed.headers
    state.set_limits(Limits(app_per_minute=3))
    await client.get(f"{PROJECTS}/Projects", headers=session.headers())
    refused = await client.get(f"{PROJECTS}/Projects", headers=session.headers())
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "appminute"
    again = await client.get("/connections", headers=session.headers())
    assert again.headers["X-Rate-Limit-Problem"] == "appminute"


async def test_scaled_clock_makes_a_minute_pass_quickly() -> None:
    """On a ScaledClock, waiting Retry-After of the sandbox's clock reopens the window."""
    clock = ScaledClock(600)
    state = seeded_state(SandboxState(clock))
    state.add_tenant("Fast Org")
    state.set_limits(Limits(per_minute=2))
    async with client_for(state) as client:
        session = await connect(client)
        for _ in range(2):
            await client.get(f"{PROJECTS}/Projects", headers=session.headers())
        refused = await client.get(f"{PROJECTS}/Projects", headers=session.headers())
        assert refused.status_code == 429
        await clock.sleep(int(refused.headers["Retry-After"]))
        assert (
            await client.get(f"{PROJECTS}/Projects", headers=session.headers())
        ).status_code == 200
