"""The reconciliation runner: per practice, snapshot both sides (Xero within the rate budget,
reusing the poller's fresh listing), run the pure reconcilers, apply the practice's policy, and
store the report.

Healing goes through the ordinary paths: job creation and state changes are outbox tasks (same
handlers, same idempotency), a Xero state accepted into the CRM is the inbound compare-and-set,
mappings change through their repositories. `dry_run` proposes only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row

from reconcilers import Action, Finding, Kind, reconcile
from reconcilers.snapshots import (
    Capabilities,
    CrmPerson,
    CrmRequest,
    CrmService,
    Link,
    Mappings,
    Snapshot,
    XeroContact,
    XeroJob,
    XeroStaff,
)
from syncd.clock import Clock
from syncd.crm.port import CrmPerson as Person
from syncd.crm.port import CrmPort
from syncd.domain.ids import CompanyId, new_id
from syncd.domain.statuses import StatusClass, StatusMapping
from syncd.domain.sync_settings import Practice, SyncSettings
from syncd.domain.tasks import TaskSpec, create_job, request_order, set_job_state
from syncd.logs import get_logger
from syncd.pipeline.inbound import apply_crm_status
from syncd.pipeline.outbox import TaskRepository, enqueue, new_task
from syncd.pipeline.poller import JobCache, Observation, observe
from syncd.pipeline.worker import TaskContext
from syncd.store import snapshot_rows
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import (
    ContactMappingRepository,
    StaffMappingRepository,
)
from syncd.store.models import JobLink, ReconciliationFinding, ReconciliationRun
from syncd.store.reports import FindingRepository, RunRepository
from syncd.store.settings import SettingsRepository
from syncd.xero.audit import call_scope
from syncd.xero.jobs import Backends

log = get_logger("syncd.reconcile")

RECONCILE = "reconcile_company"
OPEN = StatusClass.OPEN
HEALABLE = frozenset(
    {
        Action.CREATE_JOB,
        Action.RECREATE_JOB,
        Action.PUSH_CRM_STATUS,
        Action.APPLY_XERO_STATUS,
        Action.MAP_STAFF_BY_EMAIL,
        Action.REMAP_CONTACT,
    }
)
Progress = Callable[[str, int, int], None]


def reconcile_task(company: CompanyId, *, run_id: str, key: str) -> TaskSpec:
    # One order key per practice: a practice is reconciled by one worker at a time.
    return TaskSpec(
        kind=RECONCILE, key=key, order_key=f"reconcile:{company}", payload={"run_id": run_id}
    )


def scheduled_key(company: CompanyId, now: datetime, interval_minutes: int) -> str:
    return f"reconcile:{company}:{int(now.timestamp() // (interval_minutes * 60))}"


@dataclass(slots=True)
class RunOutcome:
    run_id: str
    counts: dict[str, int]
    open: int
    healed: int
    xero_calls: int
    actions: dict[str, int] = field(default_factory=dict)


async def queue_run(
    db: Database,
    company: CompanyId,
    *,
    trigger: str,
    dry_run: bool,
    by: str | None,
    now: datetime,
) -> ReconciliationRun:
    """Record a queued run and the task that will carry it out (one transaction)."""
    run = await _queue(db, company, trigger=trigger, dry_run=dry_run, by=by, now=now, key=None)
    assert run is not None  # a key of its own run id is new
    return run


async def queue_scheduled_run(db: Database, company: CompanyId, *, now: datetime, key: str) -> bool:
    """Queue the practice's scheduled run for the interval `key` names, unless a scheduler in
    another process already did: False then, and nothing written (the run row is added only with
    its task, so no run is left queued without one)."""
    queued = await _queue(db, company, trigger="schedule", dry_run=False, by=None, now=now, key=key)
    return queued is not None


async def _queue(
    db: Database,
    company: CompanyId,
    *,
    trigger: str,
    dry_run: bool,
    by: str | None,
    now: datetime,
    key: str | None,
) -> ReconciliationRun | None:
    run_id = new_id()
    async with db.transaction() as session:
        spec = reconcile_task(company, run_id=run_id, key=key or f"reconcile:{company}:{run_id}")
        if await enqueue(session, new_task(company, spec), now=now) is None:
            return None
        return await RunRepository(session).add(
            company=company,
            run=ReconciliationRun(
                id=run_id,
                company_id=company,
                trigger=trigger,
                dry_run=dry_run,
                state="queued",
                requested_by=by,
                started_at=now,
            ),
        )


class Reconciler:
    def __init__(
        self,
        *,
        db: Database,
        crm: CrmPort,
        backends: Backends,
        clock: Clock,
        cache: JobCache | None = None,
    ) -> None:
        self.db = db
        self.crm = crm
        self.backends = backends
        self.clock = clock
        self.cache = cache
        self.progress: dict[str, Progress] = {}  # run id -> listener (the CLI's progress bar)

    async def __call__(self, context: TaskContext) -> dict[str, Any]:
        """The outbox handler: runs the task's run (or a scheduled one it creates)."""
        company = context.task.company
        run_id = context.task.payload.get("run_id")
        if not isinstance(run_id, str):
            raise ValueError("a reconcile task carries its run id")
        outcome = await self.run(company, run_id=run_id)
        return {
            "run_id": outcome.run_id,
            "open": outcome.open,
            "healed": outcome.healed,
            "xero_calls": outcome.xero_calls,
        }

    async def run(self, company: CompanyId, *, run_id: str) -> RunOutcome:
        report = self.progress.get(run_id, _quiet)
        now = self.clock.now()
        async with self.db.transaction() as session:
            run = await RunRepository(session).get(company=company, run_id=run_id)
            if run is None:
                raise ValueError(f"no reconciliation run {run_id} for practice {company}")
            dry_run = run.dry_run
            run.state, run.started_at = "running", now
            practice = await SettingsRepository(session).practice(company=company)
        try:
            with call_scope() as scope:
                snapshot = await self._snapshot(company, practice, report)
                report("comparing", 4, 6)
                result = reconcile(snapshot)
                report("healing" if not dry_run else "proposing", 5, 6)
                states, actions = await self._apply(
                    company, result.findings, practice.settings, dry_run, run_id
                )
            outcome = await self._store(
                company, run_id, result.findings, states, actions, scope.calls
            )
        except Exception as exc:
            async with self.db.transaction() as session:
                failed = await RunRepository(session).get(company=company, run_id=run_id)
                if failed is not None:
                    failed.state, failed.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
                    failed.finished_at = self.clock.now()
            raise
        report("done", 6, 6)
        log.info(
            "reconcile.finished",
            company=company,
            run=run_id,
            open=outcome.open,
            healed=outcome.healed,
            xero_calls=outcome.xero_calls,
        )
        return outcome

    # -- snapshot ----------------------------------------------------------------------------

    async def _snapshot(self, company: CompanyId, practice: Practice, report: Progress) -> Snapshot:
        report("reading the CRM", 1, 6)
        crm = await read_crm(self.crm, company)
        mapping = practice.mapping
        store = await read_store(self.db, company, mapping=mapping, requests=crm.requests)
        report("listing Xero jobs", 2, 6)
        seen: Observation | None = None
        if self.cache is not None and not store.verify:
            seen = self.cache.fresh(company, links_changed_at=store.changed_at)
        if seen is None:
            # observe() reads only the link attributes the rows carry (LINK_COLUMNS).
            rows = cast("list[JobLink]", store.unlisted)
            seen = await observe(self.backends, company, practice, rows, verify=store.verify)
        report("listing Xero contacts and staff", 3, 6)
        backend = self.backends.of(practice.backend)
        contacts = await backend.clients(company, include_archived=True)
        staff = await backend.staff(company)
        capabilities = practice.capabilities
        return Snapshot(
            requests=crm.requests,
            clients=crm.clients,
            accountants=crm.accountants,
            services=crm.services,
            jobs=[
                XeroJob(job_id=j.job_id, contact_id=j.client_id, name=j.name, status=j.state)
                for j in seen.jobs.values()
            ],
            contacts=[
                XeroContact(contact_id=c.client_id, name=c.name, email=c.email, archived=c.archived)
                for c in contacts
            ],
            staff=[XeroStaff(staff_id=u.staff_id, name=u.name, email=u.email) for u in staff],
            links=_mark_deleted(store.links, seen.deleted),
            mappings=store.mappings,
            busy_requests=frozenset(store.busy),
            capabilities=Capabilities(
                templates=capabilities.templates,
                staff=True,
                lists_closed_jobs=capabilities.lists_closed_jobs,
            ),
            status_mapping=mapping,
            conflict_policy=practice.settings.conflict_policy,
        )

    # -- policy --------------------------------------------------------------------------------

    async def _apply(
        self,
        company: CompanyId,
        findings: list[Finding],
        settings: SyncSettings,
        dry_run: bool,
        run_id: str,
    ) -> tuple[list[str], dict[str, int]]:
        states: list[str] = []
        actions: dict[str, int] = {}
        for finding in findings:
            automatic = (
                not dry_run
                and finding.kind.value in settings.auto_heal
                and finding.action in HEALABLE
                # A status conflict under the manual policy waits for a person.
                and not (
                    finding.kind is Kind.STATUS_DRIFT and settings.conflict_policy.value == "manual"
                )
            )
            if automatic and await self.heal(company, finding, finding.action, run_id=run_id):
                states.append("healed")
                actions[finding.action.value] = actions.get(finding.action.value, 0) + 1
            else:
                states.append("open")
        return states, actions

    async def heal(
        self,
        company: CompanyId,
        finding: Finding | ReconciliationFinding,
        action: Action,
        *,
        run_id: str,
    ) -> bool:
        """Carry out `action` for a finding; False when it cannot be done automatically."""
        now = self.clock.now()
        request_id = finding.request_id
        crm = finding.crm or {}
        if action is Action.CREATE_JOB and request_id:
            async with self.db.transaction() as session:
                spec = create_job(request_id)
                if await enqueue(session, new_task(company, spec), now=now) is None:
                    existing = await TaskRepository(session).by_key(company=company, key=spec.key)
                    if existing is not None and existing.state == "dead":
                        await TaskRepository(session).retry_dead(
                            company=company, task_id=existing.id, now=now
                        )
                    elif existing is not None and existing.state == "done":
                        # Created once and lost since: a fresh creation under a new key.
                        await enqueue(
                            session, new_task(company, _recreate(request_id, run_id)), now=now
                        )
            return True
        if action is Action.RECREATE_JOB and request_id:
            async with self.db.transaction() as session:
                link = await JobLinkRepository(session).for_request(
                    company=company, request_id=request_id, lock=True
                )
                if link is not None:
                    link.state, link.xero_job_id, link.xero_job_number = "pending", None, None
                    link.xero_status_seen = link.xero_status_written = None
                    link.xero_manager_seen = link.xero_manager_written = None
                    link.xero_due_seen = link.manager_written = None
                    link.version += 1
                    link.updated_at = now
                await enqueue(session, new_task(company, _recreate(request_id, run_id)), now=now)
            return True
        if action is Action.PUSH_CRM_STATUS and request_id:
            request = await self.crm.get_request(company=company, request_id=request_id)
            async with self.db.transaction() as session:
                practice = await SettingsRepository(session).practice(company=company)
                target = practice.mapping.xero_state_for(request.status) if request else None
                if request is None or target is None:
                    return False
                observed = (finding.xero or {}).get("status")
                link = await JobLinkRepository(session).for_request(
                    company=company, request_id=request_id, lock=True
                )
                if link is not None and isinstance(observed, str):
                    # What the snapshot saw in Xero, so the task does not skip the write
                    # believing Xero already has the CRM's state.
                    link.xero_status_seen = observed
                    link.updated_at = now
                spec = set_job_state(request_id, target, f"reconcile-{run_id}")
                await enqueue(session, new_task(company, spec), now=now)
            return True
        if action is Action.APPLY_XERO_STATUS and request_id:
            return await apply_crm_status(
                db=self.db,
                crm=self.crm,
                backends=self.backends,
                clock=self.clock,
                company=company,
                request_id=request_id,
            )
        if action is Action.MAP_STAFF_BY_EMAIL:
            staff_id = (finding.xero or {}).get("suggested_staff_id")
            accountant = crm.get("accountant_id")
            if not staff_id or not accountant:
                return False
            async with self.db.transaction() as session:
                await StaffMappingRepository(session).save(
                    company=company,
                    user_id=str(accountant),
                    staff_id=str(staff_id),
                    staff_name=crm.get("name"),
                    now=now,
                )
            return True
        if action is Action.REMAP_CONTACT and crm.get("client_id"):
            async with self.db.transaction() as session:
                await ContactMappingRepository(session).remove(
                    company=company, client_id=str(crm["client_id"])
                )
            return True
        return False

    # -- storage -------------------------------------------------------------------------------

    async def _store(
        self,
        company: CompanyId,
        run_id: str,
        findings: list[Finding],
        states: list[str],
        actions: dict[str, int],
        calls: int,
    ) -> RunOutcome:
        now = self.clock.now()
        counts = {kind.value: 0 for kind in Kind}
        for finding in findings:
            counts[finding.kind.value] += 1
        async with self.db.transaction() as session:
            run = await RunRepository(session).get(company=company, run_id=run_id)
            assert run is not None
            await FindingRepository(session).add_all(
                company=company,
                findings=[
                    ReconciliationFinding(
                        company_id=company,
                        run_id=run_id,
                        kind=f.kind.value,
                        severity=f.severity.value,
                        request_id=f.request_id,
                        subject=f.subject,
                        crm=f.crm,
                        xero=f.xero,
                        action=f.action.value,
                        alternative=f.alternative.value if f.alternative else None,
                        detail=f.detail,
                        state=state,
                        resolved_by="policy" if state == "healed" else None,
                        resolved_at=now if state == "healed" else None,
                        created_at=now,
                    )
                    for f, state in zip(findings, states, strict=True)
                ],
            )
            run.state, run.finished_at = "finished", now
            run.counts, run.actions, run.xero_calls = counts, actions, calls
        return RunOutcome(
            run_id=run_id,
            counts=counts,
            open=states.count("open"),
            healed=states.count("healed"),
            xero_calls=calls,
            actions=actions,
        )


def run_row(run: ReconciliationRun) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "company_id": run.company_id,
        "trigger": run.trigger,
        "dry_run": run.dry_run,
        "state": run.state,
        "requested_by": run.requested_by,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "counts": run.counts,
        "actions": run.actions,
        "xero_calls": run.xero_calls,
        "error": run.error,
    }


def finding_row(finding: ReconciliationFinding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "kind": finding.kind,
        "severity": finding.severity,
        "state": finding.state,
        "request_id": finding.request_id,
        "subject": finding.subject,
        "crm": finding.crm or {},
        "xero": finding.xero or {},
        "action": finding.action,
        "alternative": finding.alternative,
        "detail": finding.detail,
        "resolved_by": finding.resolved_by,
        "resolved_at": finding.resolved_at.isoformat() if finding.resolved_at else None,
        "note": finding.note,
    }


def _quiet(step: str, done: int, total: int) -> None:
    return None


def _recreate(request_id: str, run_id: str) -> TaskSpec:
    spec = create_job(request_id)
    return TaskSpec(
        kind=spec.kind,
        key=f"recreate:{request_id}:{run_id}",
        order_key=request_order(request_id),
        payload=spec.payload,
    )


@dataclass(slots=True)
class CrmSide:
    requests: list[CrmRequest]
    clients: list[CrmPerson]
    accountants: list[CrmPerson]
    services: list[CrmService]


async def read_crm(crm: CrmPort, company: CompanyId) -> CrmSide:
    """The CRM's side of a snapshot. Each list the port returns is dropped once turned into
    snapshot values, so at most one is held twice."""
    requests = [
        CrmRequest(
            request_id=r.request_id,
            client_id=r.client_id,
            service_id=r.service_id,
            accountant_id=r.accountant_id,
            status=r.status,
            updated_at=r.updated_at,
        )
        for r in await crm.list_requests(company=company)
    ]
    clients = _people(await crm.list_clients(company=company))
    accountants = _people(await crm.list_accountants(company=company))
    services = [
        CrmService(service_id=s.service_id, name=s.name)
        for s in await crm.list_services(company=company)
    ]
    return CrmSide(requests, clients, accountants, services)


def _people(people: list[Person]) -> list[CrmPerson]:
    return [
        CrmPerson(person_id=p.user_id, name=p.full_name, email=p.email, active=p.is_active)
        for p in people
    ]


@dataclass(slots=True)
class StoreSide:
    links: list[Link]  # `deleted` as syncd last recorded it
    mappings: Mappings
    busy: set[str]
    verify: frozenset[str]  # jobs last seen closed whose request is open again
    changed_at: datetime | None  # the last change to any link
    unlisted: list[Row[Any]]  # the link rows whose jobs the Xero listing may leave out


async def read_store(
    db: Database, company: CompanyId, *, mapping: StatusMapping, requests: list[CrmRequest]
) -> StoreSide:
    """syncd's side of a snapshot: links, mappings and busy requests, streamed as plain rows
    (syncd.store.snapshot_rows) and turned into snapshot values batch by batch."""
    reopened = {r.request_id for r in requests if mapping.crm_class(r.status) is OPEN}
    links: list[Link] = []
    unlisted: list[Row[Any]] = []
    verify: set[str] = set()
    changed_at: datetime | None = None
    async with db.transaction() as session:
        async for rows in snapshot_rows.link_batches(session, company=company):
            for row in rows:
                job_id = row.xero_job_id
                links.append(
                    Link(
                        request_id=row.request_id,
                        job_id=job_id,
                        crm_seen=row.crm_status_seen,
                        xero_seen=row.xero_status_seen,
                        xero_written=row.xero_status_written,
                        deleted=row.state == "missing",
                    )
                )
                if changed_at is None or row.updated_at > changed_at:
                    changed_at = row.updated_at
                if job_id is None:
                    continue
                if row.state != "missing":
                    unlisted.append(row)
                # A job the listing leaves out (closed, on XPM) stands as its link last saw
                # it; where its request is open again, what Xero has now matters.
                if (
                    row.request_id in reopened
                    and mapping.xero_class(row.xero_status_seen or "") is StatusClass.CLOSED
                ):
                    verify.add(job_id)
        mappings = Mappings(
            contacts=await snapshot_rows.contact_map(session, company=company),
            staff=await snapshot_rows.staff_map(session, company=company),
            services=await snapshot_rows.service_map(session, company=company),
        )
        busy = await snapshot_rows.busy_requests(session, company=company)
    return StoreSide(links, mappings, busy, frozenset(verify), changed_at, unlisted)


def _mark_deleted(links: list[Link], deleted: set[str]) -> list[Link]:
    """The links whose jobs the look at Xero found deleted, marked so."""
    if not deleted:
        return links
    return [
        replace(link, deleted=True)
        if link.job_id is not None and link.job_id in deleted and not link.deleted
        else link
        for link in links
    ]
