"""The one retry policy: exponential backoff with jitter, honouring Retry-After. Pure.

Both queues (outbox tasks, inbox events) ask `decide` after every failure, with a random `rand`
from their injectable generator; nothing else in syncd loops on errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.domain.errors import NeedsReconnect, PermanentError, TransientError


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    base_delay: float = 2.0
    factor: float = 2.0
    max_delay: float = 3600.0
    max_attempts: int = 8


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Try again in `delay` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop: the task is dead, for `reason`."""

    reason: str


@dataclass(frozen=True, slots=True)
class WaitForReconnect:
    """Park the task until the connection is re-authorised (it is not the task's fault)."""


Decision = RetryAfter | GiveUp | WaitForReconnect


def backoff(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Delay before attempt `attempt + 1`: half fixed, half random ("equal jitter").

    `rand` is in [0, 1); the caller supplies it so the function stays pure and testable.
    """
    ceiling = min(policy.max_delay, policy.base_delay * policy.factor ** max(0, attempt - 1))
    return ceiling / 2 + ceiling / 2 * rand


def decide(policy: RetryPolicy, *, attempt: int, error: BaseException, rand: float) -> Decision:
    """What to do after attempt number `attempt` (1-based) failed with `error`."""
    if isinstance(error, NeedsReconnect):
        return WaitForReconnect()
    if isinstance(error, PermanentError):
        return GiveUp(f"permanent error: {error}")
    if attempt >= policy.max_attempts:
        return GiveUp(f"gave up after {attempt} attempts: {error}")
    delay = backoff(policy, attempt, rand)
    if isinstance(error, TransientError) and error.retry_after is not None:
        delay = max(delay, error.retry_after)
    # Transient errors and unexpected exceptions alike are retried, bounded by max_attempts.
    return RetryAfter(delay)
