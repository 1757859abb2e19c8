"""The one retry policy: backoff with jitter, Retry-After honoured, permanent errors stop."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.domain.errors import (
    NeedsReconnect,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
)
from syncd.domain.retry import GiveUp, RetryAfter, RetryPolicy, WaitForReconnect, backoff, decide

POLICY = RetryPolicy(base_delay=2, factor=2, max_delay=600, max_attempts=6)


@given(attempt=st.integers(min_value=1, max_value=50), rand=st.floats(0, 0.999999))
def test_backoff_stays_between_half_and_full_ceiling(attempt: int, rand: float) -> None:
    """Each delay is within [ceiling/2, ceiling], the ceiling doubling up to max_delay."""
    ceiling = min(600, 2 * 2 ** (attempt - 1))
    delay = backoff(POLICY, attempt, rand)
    assert ceiling / 2 <= delay <= ceiling


def test_backoff_grows_then_caps() -> None:
    """Later attempts wait longer, never beyond max_delay."""
    delays = [backoff(POLICY, n, 0.5) for n in range(1, 15)]
    assert delays == sorted(delays)
    assert delays[-1] == 450.0  # 600/2 + 600/2*0.5


@given(retry_after=st.floats(min_value=0, max_value=5000), rand=st.floats(0, 0.999999))
def test_retry_after_is_a_floor(retry_after: float, rand: float) -> None:
    """A 429's Retry-After is never undercut by the backoff."""
    error = RateLimited("429", retry_after=retry_after, problem="minute")
    decision = decide(POLICY, attempt=1, error=error, rand=rand)
    assert isinstance(decision, RetryAfter)
    assert decision.delay >= retry_after


def test_permanent_errors_give_up_at_once() -> None:
    """Retrying a refused request cannot help."""
    assert isinstance(decide(POLICY, attempt=1, error=PermanentError("400"), rand=0), GiveUp)
    assert isinstance(decide(POLICY, attempt=1, error=NotFound("404"), rand=0), GiveUp)


def test_transient_errors_retry_until_the_last_attempt() -> None:
    """Transient failures retry; the last allowed attempt gives up with the reason."""
    error = TransientError("503")
    assert isinstance(decide(POLICY, attempt=5, error=error, rand=0), RetryAfter)
    final = decide(POLICY, attempt=6, error=error, rand=0)
    assert isinstance(final, GiveUp)
    assert "6 attempts" in final.reason


def test_unexpected_exceptions_retry_bounded() -> None:
    """A bug-shaped exception is retried like a transient one, bounded by max_attempts."""
    assert isinstance(decide(POLICY, attempt=1, error=KeyError("x"), rand=0), RetryAfter)
    assert isinstance(decide(POLICY, attempt=6, error=KeyError("x"), rand=0), GiveUp)


def test_needs_reconnect_parks_the_task() -> None:
    """A lost authorisation is not the task's fault: wait for the admin, don't burn attempts."""
    decision = decide(POLICY, attempt=99, error=NeedsReconnect("x"), rand=0)
    assert isinstance(decision, WaitForReconnect)
