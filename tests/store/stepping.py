"""Moving a ManualClock under workers that hold leases: time goes on only once every lease held
outlasts the step, i.e. once the holders' heartbeats have had their chance to renew. The wait
is on that condition (bounded generously), never on the machine's speed."""

from __future__ import annotations

from sqlalchemy import func, select

from syncd.store.db import Database
from syncd.store.models import InboxEvent, OutboxTask
from tests.fakes import ManualClock, eventually


async def soonest_expiry(db: Database) -> float | None:
    """When (seconds since the epoch) the first lease held, outbox or inbox, runs out."""
    soonest = []
    async with db.transaction() as session:
        for model, leased in ((OutboxTask, "running"), (InboxEvent, "processing")):
            statement = select(func.min(model.leased_until)).where(model.state == leased)
            if (until := (await session.execute(statement)).scalar_one_or_none()) is not None:
                soonest.append(until.timestamp())
    return min(soonest, default=None)


async def step(db: Database, clock: ManualClock, seconds: float) -> None:
    """Advance `clock` by `seconds` once no lease held would run out within the step."""

    async def outlasts() -> bool:
        expiry = await soonest_expiry(db)
        return expiry is None or expiry > clock.now().timestamp() + seconds

    await eventually(outlasts, what="every lease holder renews before its lease runs out")
    clock.advance(seconds)
