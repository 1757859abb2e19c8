"""The governor against the sandbox's real limits, on a clock running 60x (a minute a second)."""

from __future__ import annotations

import asyncio

import pytest

from syncd.clock import ScaledClock
from syncd.domain.errors import RateLimited
from syncd.domain.ids import CompanyId
from syncd.domain.retry import RetryAfter, RetryPolicy, decide
from syncd.sandbox.checks import count_429, max_calls_in_any_window, max_concurrency
from syncd.sandbox.models import Limits as SandboxLimits
from syncd.store.db import Database
from tests.fakes import InstantClock
from tests.harness import harness

A = CompanyId("company-a")


@pytest.mark.slow
async def test_a_backlog_stays_under_60_per_minute_without_a_429(
    db: Database, fernet_key: str
) -> None:
    """150 calls queued at once for one tenant: ≤5 in flight, ≤60 in any minute, no 429."""
    clock = ScaledClock(60)
    async with harness(db, fernet_key, clock=clock) as h:
        tenant = await h.connect(A)
        h.sandbox.add_contact(tenant, "C", email="c@example.com")
        contacts = h.services.require_xero().contacts
        started = clock.monotonic()
        results = await asyncio.gather(
            *(contacts.find_by_email(A, "c@example.com") for _ in range(150))
        )
        elapsed_minutes = (clock.monotonic() - started) / 60
    assert all(r is not None for r in results)
    ledger = h.sandbox.ledger
    assert count_429(ledger, tenant) == 0
    assert max_concurrency(ledger, tenant) <= 5
    assert max_calls_in_any_window(ledger, tenant, seconds=60) <= 60
    assert elapsed_minutes >= 2  # 150 calls need at least three minute-windows


async def test_a_429_becomes_a_transient_error_whose_retry_waits_retry_after(
    db: Database, fernet_key: str
) -> None:
    """When Xero's limit is lower than syncd thinks, its 429 is RateLimited with Retry-After,
    the retry decision waits at least that long, and the governor holds the tenant meanwhile.
    (Time only moves when someone sleeps, so the window cannot slide under a slow machine.)"""
    clock = InstantClock()
    async with harness(db, fernet_key, clock=clock) as h:
        tenant = await h.connect(A)
        contacts = h.services.require_xero().contacts
        await contacts.find_by_email(A, "nobody@example.com")  # syncd learns: 59 left
        # Then the budget is spent elsewhere (another worker, another app of the practice):
        # Xero now allows no more this minute, which syncd cannot know before it asks.
        h.sandbox.set_limits(SandboxLimits(per_minute=1), tenant_id=tenant)
        with pytest.raises(RateLimited) as caught:
            await contacts.find_by_email(A, "nobody@example.com")
        error = caught.value
        assert error.retry_after is not None and error.retry_after > 0
        assert error.problem == "minute"
        decision = decide(RetryPolicy(), attempt=1, error=error, rand=0.0)
        assert isinstance(decision, RetryAfter)
        assert decision.delay >= error.retry_after
        rejected_at = clock.monotonic()
        await contacts.find_by_email(A, "nobody@example.com")
        assert clock.monotonic() - rejected_at >= error.retry_after - 1
    assert count_429(h.sandbox.ledger, tenant) == 1
