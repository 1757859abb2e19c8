"""A practice's sync settings (validated, versioned: who changed what, when) and its dashboard
figures (rate budget used today, outbox depth, last webhook, last reconcile, open findings)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from syncd.domain.backends import Backend, default_mapping
from syncd.domain.errors import SyncError
from syncd.domain.ids import CompanyId
from syncd.domain.sync_settings import SettingsInvalid, SyncSettings, parse_settings
from syncd.logs import get_logger
from syncd.pipeline.outbox import TaskRepository
from syncd.services import Services
from syncd.store.connections import ConnectionRepository
from syncd.store.links import JobLinkRepository
from syncd.store.models import InboxEvent, ReconciliationFinding, ReconciliationRun
from syncd.store.reports import RunRepository
from syncd.store.settings import SettingsRepository
from syncd.store.sync_log import SyncLogRepository
from syncd.xero.jobs import Choice

log = get_logger("syncd.practice")


async def job_categories(services: Services, company: CompanyId) -> list[Choice] | None:
    """The job categories a practice can choose its default from (None: its backend has none,
    or it is not connected)."""
    async with services.db.transaction() as session:
        connection = await ConnectionRepository(session).get_active(company=company)
    xero = services.xero
    if connection is None or xero is None:
        return None
    return await xero.backends.of(Backend(connection.backend)).categories(company)


async def current_settings(
    services: Services, company: CompanyId, *, with_categories: bool = True
) -> dict[str, Any]:
    """The settings, their defaults and history, the backend's state mapping (defaults and
    the states seen in Xero that the practice has not classed) and, on Practice Manager, the
    job categories to choose from (one Xero call; `with_categories` False skips it)."""
    async with services.db.transaction() as session:
        repository = SettingsRepository(session)
        latest = await repository.latest_row(company=company)
        history = await repository.history(company=company)
        practice = await repository.practice(company=company)
        seen_states = await JobLinkRepository(session).seen_states(company=company)
    settings, mapping = practice.settings, practice.mapping
    categories = None
    if with_categories and practice.capabilities.categories:
        try:
            categories = await job_categories(services, company)
        except SyncError as exc:
            categories = None
            log.warning("settings.categories_unavailable", company=company, error=str(exc))
    return {
        "company_id": company,
        "version": latest.version if latest else 0,
        "settings": settings.to_json(),
        "backend": practice.backend.value,
        "backend_name": practice.backend.label,
        "states": {
            "default_mapping": {
                status.value: state
                for status, state in default_mapping(practice.backend).outbound.items()
            },
            "fixed": practice.capabilities.fixed_states,
            "unclassed_seen": sorted(s for s in seen_states if not mapping.knows(s)),
        },
        "categories": None
        if categories is None
        else [{"id": c.choice_id, "name": c.name} for c in categories],
        "defaults": {
            "poll_interval_minutes": services.settings.poll_interval_minutes,
            "reconcile_interval_minutes": services.settings.reconcile_interval_minutes,
        },
        "changed_by": latest.changed_by if latest else None,
        "changed_at": latest.changed_at.isoformat() if latest else None,
        "history": [
            {
                "version": row.version,
                "changed_by": row.changed_by,
                "changed_at": row.changed_at.isoformat(),
                "changes": _diff(
                    history[n + 1].settings if n + 1 < len(history) else SyncSettings().to_json(),
                    row.settings,
                ),
            }
            for n, row in enumerate(history)
        ],
    }


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    return {key: after[key] for key in after if before.get(key) != after[key]}


async def save_settings(
    services: Services, company: CompanyId, changes: Mapping[str, Any], *, by: str
) -> SyncSettings:
    """Validate `changes` over the current settings (all problems at once) against what the
    practice's backend has, and store them as a new version. Raises SettingsInvalid."""
    async with services.db.transaction() as session:
        practice = await SettingsRepository(session).practice(company=company)
    current = practice.settings
    updated = parse_settings(changes, base=current, backend=practice.backend)
    if updated.job_category_id and updated.job_category_id != current.job_category_id:
        categories = await job_categories(services, company) or []
        if updated.job_category_id not in {c.choice_id for c in categories}:
            raise SettingsInvalid(
                {"job_category_id": "no such job category in this practice's Practice Manager"}
            )
    async with services.db.transaction() as session:
        repository = SettingsRepository(session)
        if await repository.current(company=company) != current:
            raise SettingsInvalid({"settings": "changed by someone else meanwhile: reload"})
        if updated != current:
            await repository.save(
                company=company, settings=updated, by=by, now=services.clock.now()
            )
    return updated


@dataclass(frozen=True, slots=True, kw_only=True)
class Dashboard:
    connected: bool
    tenant_name: str | None
    backend_name: str | None
    needs_reconnect: bool
    calls_today: int
    day_limit: int
    outbox: dict[str, int]
    last_webhook_at: datetime | None
    last_reconcile: dict[str, Any] | None
    open_findings: int


async def dashboard(services: Services, company: CompanyId) -> Dashboard:
    now = services.clock.now()
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    async with services.db.transaction() as session:
        connection = await ConnectionRepository(session).get(company=company)
        calls = await SyncLogRepository(session).count_since(company=company, since=midnight)
        outbox = await TaskRepository(session).counts(company=company)
        runs = await RunRepository(session).list(company=company, limit=5)
        last_webhook = None
        if connection is not None:
            last_webhook = (
                await session.execute(
                    select(func.max(InboxEvent.received_at)).where(
                        InboxEvent.tenant_id == connection.tenant_id, InboxEvent.source == "webhook"
                    )
                )
            ).scalar_one_or_none()
        finished: ReconciliationRun | None = next((r for r in runs if r.state == "finished"), None)
        open_findings = 0
        if finished is not None:
            open_findings = int(
                (
                    await session.execute(
                        select(func.count()).where(
                            ReconciliationFinding.company_id == company,
                            ReconciliationFinding.run_id == finished.id,
                            ReconciliationFinding.state == "open",
                        )
                    )
                ).scalar_one()
            )
    active = connection is not None and connection.active
    xero = services.xero
    return Dashboard(
        connected=bool(active and connection and not connection.needs_reconnect),
        tenant_name=connection.tenant_name if active and connection else None,
        backend_name=Backend(connection.backend).label if active and connection else None,
        needs_reconnect=bool(active and connection and connection.needs_reconnect),
        calls_today=calls,
        day_limit=xero.governor.limits.per_day if xero else services.settings.xero_day_limit,
        outbox=outbox,
        last_webhook_at=_aware(last_webhook),
        last_reconcile=None
        if finished is None
        else {
            "run_id": finished.id,
            "finished_at": finished.finished_at,
            "counts": finished.counts,
        },
        open_findings=open_findings,
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
