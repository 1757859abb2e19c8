"""The sync log (filter by state, a task's Xero call trail, retry a dead task) and
reconciliation reports (list, start, one report with resolve buttons, CSV download)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from reconcilers.report import to_csv
from syncd.pipeline.outbox import TaskRepository
from syncd.pipeline.reconcile import finding_row, queue_run
from syncd.services import Services
from syncd.store.connections import ConnectionRepository
from syncd.store.reports import RunRepository
from syncd.store.sync_log import SyncLogRepository
from syncd.web.errors import ApiError
from syncd.web.pages.common import back, page, page_context, show
from syncd.web.pages.figures import RUNS_SHOWN, runs_figure
from syncd.web.pages.names import names_for
from syncd.web.reconcile import load_report, report_page, resolve_finding, run_json
from syncd.web.requests import MAX_BIGINT, path_int, query_int
from syncd.web.session import Session, check_form
from syncd.web.synclog import STATES, call_json, task_json
from syncd.web.templating import render

PAGE_SIZE = 50


@page
async def sync_log(request: Request, session: Session, services: Services) -> Response:
    state = request.query_params.get("state") or None
    if state is not None and state not in STATES:
        state = None
    offset = query_int(request, "offset", 0, 0, MAX_BIGINT)
    async with services.db.transaction() as db_session:
        tasks, total = await TaskRepository(db_session).page(
            company=session.company,
            states=[state] if state else None,
            limit=PAGE_SIZE,
            offset=offset,
        )
        counts = await TaskRepository(db_session).counts(company=session.company)
    shown = [task_json(t) for t in tasks]
    names = await names_for(
        services, session.company, request_ids=[t["request_id"] for t in shown if t["request_id"]]
    )
    return show(
        request,
        session,
        "sync_log.html",
        tasks=shown,
        names=names,
        total=total,
        counts=counts,
        states=STATES,
        state=state,
        offset=offset,
        page_size=PAGE_SIZE,
    )


@page
async def task_page(request: Request, session: Session, services: Services) -> Response:
    task_id = path_int(request, "task_id")
    async with services.db.transaction() as db_session:
        task = await TaskRepository(db_session).get(company=session.company, task_id=task_id)
        calls = await SyncLogRepository(db_session).for_task(
            company=session.company, task_id=task_id
        )
    if task is None:
        return render(
            "forbidden.html", status_code=404, nav=(), reason="no such task in your practice"
        )
    shown = task_json(task)
    names = await names_for(
        services,
        session.company,
        request_ids=[shown["request_id"] or ""],
        sides=[shown["result"] or {}],
    )
    return show(
        request,
        session,
        "task.html",
        task=shown,
        names=names,
        calls=[call_json(c) for c in calls],
    )


@page
async def retry(request: Request, session: Session, services: Services) -> Response:
    form = await check_form(request, session)
    task_id = path_int(request, "task_id")
    state = form.get("back_state", "")
    listing = f"/admin/sync-log?state={state}" if state in STATES else "/admin/sync-log"
    async with services.db.transaction() as db_session:
        retried = await TaskRepository(db_session).retry_dead(
            company=session.company, task_id=task_id, now=services.clock.now()
        )
    if not retried:
        return back(listing, problem=f"task {task_id} is not dead: nothing to retry")
    return back(listing, flash=f"task {task_id} will run again")


@page
async def reconciliations(request: Request, session: Session, services: Services) -> Response:
    async with services.db.transaction() as db_session:
        runs = await RunRepository(db_session).list(company=session.company, limit=50)
    return show(
        request,
        session,
        "reconciliations.html",
        runs=[run_json(r) for r in runs],
        chart=runs_figure(runs),
        available=services.reconciler is not None,
    )


@page
async def start_run(request: Request, session: Session, services: Services) -> Response:
    form = await check_form(request, session)
    if services.reconciler is None:
        return back("/admin/reconciliations", problem="reconciliation needs Xero and a CRM")
    run = await queue_run(
        services.db,
        session.company,
        trigger="manual",
        dry_run=form.get("dry_run") == "on",
        by=session.user_id,
        now=services.clock.now(),
    )
    return back(f"/admin/reconciliations/{run.id}", flash="reconciliation started")


@page
async def report(request: Request, session: Session, services: Services) -> Response:
    run_id = str(request.path_params["run_id"])
    try:
        run, findings = await load_report(services, session.company, run_id)
    except ApiError:
        return render(
            "forbidden.html",
            status_code=404,
            nav=(),
            reason="no such reconciliation in your practice",
        )
    if request.url.path.endswith(".csv"):
        return PlainTextResponse(
            to_csv(finding_row(f) for f in findings),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="reconciliation-{run.id}.csv"'},
        )
    async with services.db.transaction() as db_session:
        runs = await RunRepository(db_session).list(company=session.company, limit=200)
        connection = await ConnectionRepository(db_session).get(company=session.company)
    # The runs up to this one, so an old report shows the trend that led to it.
    earlier = [r for r in runs if r.started_at <= run.started_at][: RUNS_SHOWN * 2]
    sides = [side for f in findings for side in (f.crm or {}, f.xero or {})]
    return report_page(
        run,
        findings,
        csv_url=f"/admin/reconciliations/{run.id}.csv",
        resolve_url=f"/admin/reconciliations/{run.id}/findings/",
        names=await names_for(
            services,
            session.company,
            request_ids=[f.request_id for f in findings if f.request_id],
            sides=sides,
        ),
        practice_name=connection.tenant_name if connection else None,
        chart=runs_figure(earlier, key="chart-report-runs"),
        **page_context(request, session),
    )


@page
async def resolve(request: Request, session: Session, services: Services) -> Response:
    form = await check_form(request, session)
    run_id = str(request.path_params["run_id"])
    try:
        finding = await resolve_finding(
            services,
            session.company,
            path_int(request, "finding_id"),
            form.get("resolution", ""),
            by=session.user_id,
            note=form.get("note") or None,
        )
    except ApiError as exc:
        return back(f"/admin/reconciliations/{run_id}", problem=str(exc.detail))
    return back(f"/admin/reconciliations/{run_id}", flash=f"finding {finding.id}: {finding.state}")


routes = [
    Route("/admin/sync-log", sync_log, methods=["GET"]),
    Route("/admin/sync-log/{task_id}", task_page, methods=["GET"]),
    Route("/admin/sync-log/{task_id}/retry", retry, methods=["POST"]),
    Route("/admin/reconciliations", reconciliations, methods=["GET"]),
    Route("/admin/reconciliations", start_run, methods=["POST"]),
    Route("/admin/reconciliations/{run_id}.csv", report, methods=["GET"]),
    Route("/admin/reconciliations/{run_id}", report, methods=["GET"]),
    Route(
        "/admin/reconciliations/{run_id}/findings/{finding_id}/resolve", resolve, methods=["POST"]
    ),
]
