"""The CRM change feed: per practice, read the requests changed since the practice's cursor and
plan their tasks, in one transaction with the cursor's advance (nothing read is lost, nothing is
planned twice).

Rows changed in the last few seconds are left for the next pass: a CRM transaction that stamped
`updated_at` before committing could otherwise commit behind a cursor that already moved on.
"""

from __future__ import annotations

from datetime import timedelta

from syncd.clock import Clock
from syncd.crm.port import ChangeCursor, CrmPort
from syncd.domain.ids import CompanyId
from syncd.logs import get_logger
from syncd.pipeline.planner import plan
from syncd.store.connections import ConnectionRepository
from syncd.store.cursors import CursorRepository
from syncd.store.db import Database
from syncd.store.settings import SettingsRepository

log = get_logger("syncd.changefeed")

CURSOR = "crm_changes"
SETTLE = timedelta(seconds=2)
BATCH = 200


class ChangeFeed:
    def __init__(
        self,
        *,
        db: Database,
        crm: CrmPort,
        clock: Clock,
        settle: timedelta = SETTLE,
        batch: int = BATCH,
    ) -> None:
        self.db = db
        self.crm = crm
        self.clock = clock
        self.settle = settle
        self.batch = batch

    async def read(self, company: CompanyId) -> int:
        """One pass for one practice; returns how many changed requests were read."""
        async with self.db.transaction() as session:
            stored = await CursorRepository(session).get(company=company, name=CURSOR)
            connection = await ConnectionRepository(session).get_active(company=company)
        if connection is None:
            return 0
        # A new connection starts at its own moment; what was assigned before is
        # reconciliation's to find ("assigned without a job").
        cursor = (
            ChangeCursor.decode(stored) if stored else ChangeCursor(connection.connected_at, "")
        )
        horizon = self.clock.now() - self.settle
        total = 0
        while True:
            rows = await self.crm.changed_requests(company=company, after=cursor, limit=self.batch)
            settled = [row for row in rows if row.updated_at <= horizon]
            if len(settled) < len(rows):
                rows = settled  # keyset order: everything after the first unsettled row is newer
            if not rows:
                return total
            clients = {
                client_id: await self.crm.get_client(company=company, client_id=client_id)
                for client_id in {row.client_id for row in rows}
            }
            now = self.clock.now()
            async with self.db.transaction() as session:
                practice = await SettingsRepository(session).practice(company=company)
                planned = 0
                for row in rows:
                    planned += len(
                        await plan(
                            session,
                            company=company,
                            request=row,
                            client=clients[row.client_id],
                            practice=practice,
                            now=now,
                        )
                    )
                cursor = ChangeCursor(rows[-1].updated_at, rows[-1].request_id)
                await CursorRepository(session).set(
                    company=company, name=CURSOR, value=cursor.encode(), now=now
                )
            total += len(rows)
            if planned:
                log.info("changefeed.planned", company=company, read=len(rows), tasks=planned)
            if len(rows) < self.batch:
                return total
