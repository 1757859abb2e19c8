"""The state gauges: facts of the database, read when Prometheus scrapes, so every process gives
the same answer whichever one is scraped (queue depths and oldest waits, dead tasks, connections
that need reconnecting, each practice's Xero budget left, the latest reconciliation's findings).

The queries span every practice: they are the operator's view, as a super admin's is, and say so
in their names (`…_across_practices`). Imports the store, the queues' lease rules and the
governor's limits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from syncd.clock import ensure_aware
from syncd.pipeline.leases import INBOX, OUTBOX
from syncd.store.models import (
    InboxEvent,
    OutboxTask,
    ReconciliationFinding,
    ReconciliationRun,
    XeroConnection,
    XeroRateCall,
    XeroRateTenant,
)
from syncd.xero.governor import DAY, MINUTE, Limits, RateGovernor

# Outbox and inbox states worth a gauge: the finished ones (done, ignored) only ever grow.
OUTBOX_STATES = ("pending", "running", "dead")
INBOX_STATES = ("pending", "processing", "failed", "quarantined")


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    company: str
    tenant_id: str
    needs_reconnect: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Remaining:
    minute: int
    day: int


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """What the database says at `now`."""

    outbox: Mapping[tuple[str, str], int]  # (company, state) -> tasks
    outbox_oldest_due: datetime | None  # since when the longest-waiting claimable task is due
    inbox: Mapping[str, int]  # state -> events
    inbox_oldest_due: datetime | None
    connections: tuple[Connection, ...]
    findings: Mapping[str, int]  # kind -> findings of each practice's latest reconciliation
    budgets: Mapping[str, Remaining] = field(default_factory=dict)  # company -> calls left


class PracticeState:
    """Read-only queries over every practice's rows."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def outbox_counts_across_practices(self) -> dict[tuple[str, str], int]:
        statement = (
            select(OutboxTask.company_id, OutboxTask.state, func.count())
            .where(OutboxTask.state.in_(OUTBOX_STATES))
            .group_by(OutboxTask.company_id, OutboxTask.state)
        )
        rows = (await self.session.execute(statement)).all()
        return {(company, state): int(n) for company, state, n in rows}

    async def outbox_oldest_due_across_practices(self, *, now: datetime) -> datetime | None:
        """When the longest-waiting task a worker could claim now became due: pending and due,
        or running on a lease that ran out (its worker died). A practice that must reconnect is
        not claimed for, so its tasks are left out here (the needs-reconnect gauge tells)."""
        due_since = case(
            (OutboxTask.state == "pending", OutboxTask.run_after), else_=OutboxTask.leased_until
        )
        parked = select(XeroConnection.company_id).where(XeroConnection.needs_reconnect.is_(True))
        statement = select(func.min(due_since)).where(
            or_(
                and_(OutboxTask.state == "pending", OutboxTask.run_after <= now),
                OUTBOX.expired(now),
            ),
            OutboxTask.company_id.not_in(parked),
        )
        return _aware((await self.session.execute(statement)).scalar_one())

    async def inbox_counts_across_practices(self) -> dict[str, int]:
        statement = (
            select(InboxEvent.state, func.count())
            .where(InboxEvent.state.in_(INBOX_STATES))
            .group_by(InboxEvent.state)
        )
        return {state: int(n) for state, n in (await self.session.execute(statement)).all()}

    async def inbox_oldest_due_across_practices(self, *, now: datetime) -> datetime | None:
        due_since = case(
            (
                InboxEvent.state == "pending",
                func.coalesce(InboxEvent.next_attempt_at, InboxEvent.received_at),
            ),
            else_=InboxEvent.leased_until,
        )
        statement = select(func.min(due_since)).where(
            or_(
                and_(
                    InboxEvent.state == "pending",
                    or_(InboxEvent.next_attempt_at.is_(None), InboxEvent.next_attempt_at <= now),
                ),
                INBOX.expired(now),
            )
        )
        return _aware((await self.session.execute(statement)).scalar_one())

    async def connections_across_practices(self) -> list[Connection]:
        statement = (
            select(
                XeroConnection.company_id,
                XeroConnection.tenant_id,
                XeroConnection.needs_reconnect,
            )
            .where(XeroConnection.active.is_(True))
            .order_by(XeroConnection.company_id)
        )
        return [
            Connection(company=company, tenant_id=tenant, needs_reconnect=bool(flag))
            for company, tenant, flag in (await self.session.execute(statement)).all()
        ]

    async def latest_findings_across_practices(self) -> dict[str, int]:
        """Findings by kind, over each practice's latest finished reconciliation."""
        ranked = (
            select(
                ReconciliationRun.id,
                func.row_number()
                .over(
                    partition_by=ReconciliationRun.company_id,
                    order_by=(ReconciliationRun.started_at.desc(), ReconciliationRun.id.desc()),
                )
                .label("rank"),
            )
            .where(ReconciliationRun.state == "finished")
            .subquery()
        )
        latest = select(ranked.c.id).where(ranked.c.rank == 1)
        statement = (
            select(ReconciliationFinding.kind, func.count())
            .where(ReconciliationFinding.run_id.in_(latest))
            .group_by(ReconciliationFinding.kind)
        )
        return {kind: int(n) for kind, n in (await self.session.execute(statement)).all()}

    async def rate_calls_across_practices(
        self, *, now: datetime
    ) -> dict[str, tuple[int, int, bool]]:
        """The shared rate budget (PostgreSQL): per tenant, calls in the minute and day windows
        and whether a 429 closed it, counted as the governor counts them."""
        minute_since = now - timedelta(seconds=MINUTE)
        day_since = now - timedelta(seconds=DAY)
        statement = (
            select(
                XeroRateCall.tenant_id,
                func.count().filter(XeroRateCall.admitted_at > minute_since),
                func.count(),
            )
            .where(XeroRateCall.admitted_at > day_since, XeroRateCall.tenant_id != "")
            .group_by(XeroRateCall.tenant_id)
        )
        counts: dict[str, tuple[int, int, bool]] = {
            tenant: (int(minute), int(day), False)
            for tenant, minute, day in (await self.session.execute(statement)).all()
        }
        closed = select(XeroRateTenant.tenant_id).where(XeroRateTenant.closed_until > now)
        for tenant in (await self.session.execute(closed)).scalars():
            minute, day, _ = counts.get(tenant, (0, 0, False))
            counts[tenant] = (minute, day, True)
        return counts


async def read_state(
    session: AsyncSession, *, now: datetime, governor: RateGovernor | None
) -> State:
    """Every state gauge's facts, in one read-only transaction of the caller's."""
    repository = PracticeState(session)
    connections = tuple(await repository.connections_across_practices())
    budgets: dict[str, Remaining] = {}
    if governor is not None:
        budgets = await _budgets(repository, connections, governor, now=now)
    return State(
        outbox=await repository.outbox_counts_across_practices(),
        outbox_oldest_due=await repository.outbox_oldest_due_across_practices(now=now),
        inbox=await repository.inbox_counts_across_practices(),
        inbox_oldest_due=await repository.inbox_oldest_due_across_practices(now=now),
        connections=connections,
        findings=await repository.latest_findings_across_practices(),
        budgets=budgets,
    )


async def _budgets(
    repository: PracticeState,
    connections: Iterable[Connection],
    governor: RateGovernor,
    *,
    now: datetime,
) -> dict[str, Remaining]:
    """Calls each practice may still make: from the shared table on PostgreSQL (every process's
    calls), from this process's governor on SQLite (the one process that calls Xero)."""
    limits: Limits = governor.limits
    dialect = repository.session.bind.dialect.name if repository.session.bind else "sqlite"
    if dialect != "postgresql":
        budgets = {c.company: governor.budget(c.tenant_id) for c in connections}
        return {c: Remaining(minute=b.minute, day=b.day) for c, b in budgets.items()}
    used = await repository.rate_calls_across_practices(now=now)
    remaining: dict[str, Remaining] = {}
    for connection in connections:
        minute, day, closed = used.get(connection.tenant_id, (0, 0, False))
        remaining[connection.company] = Remaining(
            minute=0 if closed else max(0, limits.per_minute - minute),
            day=max(0, limits.per_day - day),
        )
    return remaining


def _aware(value: Any) -> datetime | None:
    return ensure_aware(value) if value is not None else None


def families(state: State, *, now: datetime) -> list[Metric]:
    """The state as Prometheus gauge families."""
    outbox = GaugeMetricFamily(
        "syncd_outbox_tasks",
        "Outbox tasks by practice and state (pending, running, dead).",
        labels=["company", "state"],
    )
    per_company: dict[str, dict[str, int]] = defaultdict(dict)
    for (company, task_state), n in state.outbox.items():
        per_company[company][task_state] = n
    for company in sorted({c.company for c in state.connections} | set(per_company)):
        for task_state in OUTBOX_STATES:
            outbox.add_metric([company, task_state], per_company[company].get(task_state, 0))
    inbox = GaugeMetricFamily(
        "syncd_inbox_events",
        "Inbox events by state (pending, processing, failed, quarantined).",
        labels=["state"],
    )
    for event_state in INBOX_STATES:
        inbox.add_metric([event_state], state.inbox.get(event_state, 0))
    outbox_age = GaugeMetricFamily(
        "syncd_outbox_oldest_due_seconds",
        "Seconds the longest-waiting claimable outbox task has been due (0: none waiting).",
        value=_age(state.outbox_oldest_due, now),
    )
    inbox_age = GaugeMetricFamily(
        "syncd_inbox_oldest_due_seconds",
        "Seconds the longest-waiting claimable inbox event has been due (0: none waiting).",
        value=_age(state.inbox_oldest_due, now),
    )
    reconnect = GaugeMetricFamily(
        "syncd_xero_connection_needs_reconnect",
        "1 when a practice's active Xero connection needs an admin to reconnect it, else 0.",
        labels=["company"],
    )
    for connection in state.connections:
        reconnect.add_metric([connection.company], 1 if connection.needs_reconnect else 0)
    budget = GaugeMetricFamily(
        "syncd_xero_rate_budget_remaining",
        "Xero calls a practice's organisation may still make in the window (minute, day).",
        labels=["company", "window"],
    )
    for company, remaining in sorted(state.budgets.items()):
        budget.add_metric([company, "minute"], remaining.minute)
        budget.add_metric([company, "day"], remaining.day)
    findings = GaugeMetricFamily(
        "syncd_reconcile_findings",
        "Findings of each practice's latest finished reconciliation, summed by kind.",
        labels=["kind"],
    )
    for kind, n in sorted(state.findings.items()):
        findings.add_metric([kind], n)
    return [outbox, inbox, outbox_age, inbox_age, reconnect, budget, findings]


def _age(since: datetime | None, now: datetime) -> float:
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())
