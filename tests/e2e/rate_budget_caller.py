"""One process of the multi-process rate budget test: as many Xero calls for one tenant as its
governor lets it make, until a deadline. Run as `python -m tests.e2e.rate_budget_caller CONFIG`
(CONFIG is JSON); prints what happened as one JSON line.

Its clock and the sandbox's are the same function of the wall clock (`WallScaledClock`), so every
process and the sandbox agree on scaled time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.domain.errors import RateLimited, SyncError
from syncd.domain.ids import CompanyId
from syncd.store.db import Database
from syncd.store.rate_budget import RateBudget
from syncd.xero.governor import Limits, RateGovernor
from syncd.xero.http import Credentials, XeroHttp, build_client
from syncd.xero.shared_governor import SharedRateGovernor
from tests.fakes import MemoryAudit

COMPANY = CompanyId("company-a")


class WallScaledClock:
    """`factor` times real time from the wall-clock instant `origin` (seconds since the epoch):
    the same in every process that is given the same two numbers."""

    def __init__(self, factor: float, origin: float) -> None:
        self.factor = factor
        self.origin = origin
        self._start = datetime.fromtimestamp(origin, UTC)

    def monotonic(self) -> float:
        return (time.time() - self.origin) * self.factor

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)


# The probe of the call being made (sent as a query parameter, so the sandbox's ledger names it).
PROBE: ContextVar[str] = ContextVar("probe", default="")


class ProbedGovernor(SharedRateGovernor):
    """The shared governor, noting when each probed call leaves (the moment its row is
    re-stamped with), to measure the way from there to the sandbox."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: dict[str, float] = {}

    @asynccontextmanager
    async def slot(self, tenant_id: str, *, company: str | None = None) -> AsyncIterator[None]:
        async with super().slot(tenant_id, company=company):
            self.sent[PROBE.get()] = self.clock.monotonic()
            yield


class FixedTokens:
    """A TokenSource with one token that outlives the test."""

    def __init__(self, access_token: str, tenant_id: str) -> None:
        self._credentials = Credentials(access_token, tenant_id)

    async def credentials(self, company: CompanyId) -> Credentials:
        return self._credentials

    async def refreshed(self, company: CompanyId, *, stale: str) -> Credentials:
        return self._credentials


async def run(config: dict[str, Any]) -> dict[str, Any]:
    clock = WallScaledClock(config["factor"], config["origin"])
    limits = Limits(**config["limits"])
    db = Database(config["database_url"])
    governor = (
        ProbedGovernor(RateBudget(db, holder=config["name"]), limits, clock=clock)
        if config["governor"] == "shared"
        else RateGovernor(limits, clock=clock)
    )
    outcomes: Counter[str] = Counter()
    try:
        async with build_client(base_url=config["api_url"]) as client:
            http = XeroHttp(
                client,
                tokens=FixedTokens(config["access_token"], config["tenant_id"]),
                governor=governor,
                audit=MemoryAudit(),
                clock=clock,
            )

            async def caller(number: int) -> None:
                calls = 0
                while clock.monotonic() < config["until"]:
                    calls += 1
                    probe = f"{config['name']}-{number}-{calls}"
                    PROBE.set(probe)
                    try:
                        await http.request(
                            COMPANY, "GET", "/api.xro/2.0/Contacts", params={"probe": probe}
                        )
                        outcomes["ok"] += 1
                    except RateLimited:
                        outcomes["429"] += 1
                    except SyncError as exc:
                        outcomes[type(exc).__name__] += 1

            # Callers still waiting for a slot at the deadline are cancelled (the shared
            # governor finishes any call admitted meanwhile).
            stop = config["until"] / config["factor"] + config["origin"] - time.time() + 0.5
            try:
                async with asyncio.timeout(max(stop, 0.1)):
                    await asyncio.gather(*(caller(n) for n in range(config["callers"])))
            except TimeoutError:
                outcomes["cancelled_at_deadline"] += 1
    finally:
        await governor.close()
        await db.dispose()
    sent = governor.sent if isinstance(governor, ProbedGovernor) else {}
    return {"outcomes": dict(outcomes), "sent": sent}


def main() -> None:
    config = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(run(config))))


if __name__ == "__main__":
    main()
