"""Xero's rate limits as a pure engine: sliding minute and rolling day windows and concurrency per
tenant, and the app-wide minute window, all measured on the caller's monotonic clock.

Rejected calls do not count. Imports nothing from syncd outside the sandbox.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from syncd.sandbox.models import Limits, RateProblem

MINUTE = 60.0
DAY = 86400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """The limiter's answer for one call, with the remaining allowances after it."""

    accepted: bool
    problem: RateProblem | None = None
    retry_after: int | None = None
    minute_remaining: int | None = None
    day_remaining: int | None = None
    app_remaining: int
    in_flight: int = 0

    def headers(self) -> dict[str, str]:
        """Xero's rate headers (the tenant ones only on tenant calls)."""
        headers: dict[str, str] = {}
        if self.day_remaining is not None:
            headers["X-DayLimit-Remaining"] = str(self.day_remaining)
        if self.minute_remaining is not None:
            headers["X-MinLimit-Remaining"] = str(self.minute_remaining)
        headers["X-AppMinLimit-Remaining"] = str(self.app_remaining)
        if not self.accepted and self.problem is not None:
            headers["X-Rate-Limit-Problem"] = self.problem
            if self.retry_after is not None:
                headers["Retry-After"] = str(self.retry_after)
        return headers


def _prune(window: deque[float], now: float, span: float) -> None:
    while window and now - window[0] >= span:
        window.popleft()


def _retry_after(window: deque[float], now: float, span: float, limit: int) -> int:
    """Whole seconds until the window holds fewer than `limit` calls (never less than 1)."""
    oldest_blocking = window[len(window) - limit]
    return max(1, math.ceil(oldest_blocking + span - now))


class RateLimiter:
    """Admits or rejects calls; `release` ends an admitted tenant call."""

    def __init__(self) -> None:
        self._minute: dict[str, deque[float]] = {}
        self._day: dict[str, deque[float]] = {}
        self._app: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}

    def in_flight(self, tenant_id: str) -> int:
        return self._in_flight.get(tenant_id, 0)

    def admit_app(self, client_id: str, now: float, app_per_minute: int) -> Admission:
        """A tenant-less call (`/connections`): only the app-wide minute limit applies."""
        app = self._app.setdefault(client_id, deque())
        _prune(app, now, MINUTE)
        if len(app) >= app_per_minute:
            return Admission(accepted=False, problem="appminute", app_remaining=0)
        app.append(now)
        return Admission(accepted=True, app_remaining=app_per_minute - len(app))

    def admit_tenant(
        self, client_id: str, tenant_id: str, now: float, limits: Limits, app_per_minute: int
    ) -> Admission:
        """A tenant call: concurrency, day, minute, then the app-wide minute limit."""
        minute = self._minute.setdefault(tenant_id, deque())
        day = self._day.setdefault(tenant_id, deque())
        app = self._app.setdefault(client_id, deque())
        _prune(minute, now, MINUTE)
        _prune(day, now, DAY)
        _prune(app, now, MINUTE)
        in_flight = self.in_flight(tenant_id) + 1
        remaining = {
            "minute_remaining": max(0, limits.per_minute - len(minute)),
            "day_remaining": max(0, limits.per_day - len(day)),
            "app_remaining": max(0, app_per_minute - len(app)),
            "in_flight": in_flight,
        }
        if in_flight > limits.concurrent:
            return Admission(accepted=False, problem="concurrent", **remaining)
        if len(day) >= limits.per_day:
            wait = _retry_after(day, now, DAY, limits.per_day)
            return Admission(accepted=False, problem="day", retry_after=wait, **remaining)
        if len(minute) >= limits.per_minute:
            wait = _retry_after(minute, now, MINUTE, limits.per_minute)
            return Admission(accepted=False, problem="minute", retry_after=wait, **remaining)
        if len(app) >= app_per_minute:
            return Admission(accepted=False, problem="appminute", **remaining)
        minute.append(now)
        day.append(now)
        app.append(now)
        self._in_flight[tenant_id] = in_flight
        return Admission(
            accepted=True,
            minute_remaining=limits.per_minute - len(minute),
            day_remaining=limits.per_day - len(day),
            app_remaining=app_per_minute - len(app),
            in_flight=in_flight,
        )

    def release(self, tenant_id: str) -> None:
        left = self.in_flight(tenant_id) - 1
        if left > 0:
            self._in_flight[tenant_id] = left
        else:
            self._in_flight.pop(tenant_id, None)
