"""Time as a dependency: production reads the system clock, tests and benchmarks scale it.

Imports nothing from syncd.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC wall time."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for rate windows and timeouts)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Runs `factor` times faster than real time, so minute-long windows pass in seconds."""

    def __init__(self, factor: float, *, start: datetime | None = None) -> None:
        self.factor = factor
        self._wall0 = start or datetime.now(UTC)
        self._mono0 = time.monotonic()

    def now(self) -> datetime:
        return self._wall0 + timedelta(seconds=(time.monotonic() - self._mono0) * self.factor)

    def monotonic(self) -> float:
        return (time.monotonic() - self._mono0) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)


def ensure_aware(value: datetime) -> datetime:
    """Refuse naive datetimes: every time in syncd is timezone-aware UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: syncd only handles timezone-aware times")
    return value.astimezone(UTC)
