"""Reconciliation for admins: start a run, list runs, read one (JSON, CSV or a readable page),
resolve a finding.

    POST /api/integrations/xero/reconcile                      ?dry_run=true → 202 {run_id}
    GET  /api/integrations/xero/reconciliations                ?limit=&offset=
    GET  /api/integrations/xero/reconciliations/{id}           ?format=json|csv|html
    POST /api/integrations/xero/findings/{id}/resolve          {"resolution": heal|accept|ignore}
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from reconcilers import Action
from reconcilers.report import to_csv
from syncd.domain.ids import CompanyId
from syncd.pipeline.reconcile import finding_row, queue_run, run_row
from syncd.services import Services
from syncd.store.models import ReconciliationFinding, ReconciliationRun
from syncd.store.reports import FindingRepository, RunRepository
from syncd.web.auth import access, admin_scope
from syncd.web.context import services_of
from syncd.web.errors import ApiError
from syncd.web.requests import json_object, query_int
from syncd.web.templating import render

PREFIX = "/api/integrations/xero"
RESOLUTIONS = ("heal", "accept", "ignore")


def run_json(run: ReconciliationRun) -> dict[str, Any]:
    return {
        **run_row(run),
        "url": f"{PREFIX}/reconciliations/{run.id}",
        "csv_url": f"{PREFIX}/reconciliations/{run.id}?format=csv",
        "html_url": f"{PREFIX}/reconciliations/{run.id}?format=html",
    }


def finding_json(finding: ReconciliationFinding) -> dict[str, Any]:
    return finding_row(finding)


def _reconciler(services: Services) -> Any:
    if services.reconciler is None:
        raise ApiError(503, "reconciliation needs Xero and a CRM configured")
    return services.reconciler


@access("admin")
async def start(request: Request) -> JSONResponse:
    principal, company = admin_scope(request)
    services = services_of(request)
    _reconciler(services)
    dry_run = request.query_params.get("dry_run", "false").lower() in {"1", "true", "yes"}
    run = await queue_run(
        services.db,
        company,
        trigger="manual",
        dry_run=dry_run,
        by=principal.user_id,
        now=services.clock.now(),
    )
    return JSONResponse(run_json(run), status_code=202)


@access("admin")
async def list_runs(request: Request) -> JSONResponse:
    _, company = admin_scope(request)
    limit = query_int(request, "limit", 20, 1, 200)
    offset = query_int(request, "offset", 0, 0, 1_000_000)
    async with services_of(request).db.transaction() as session:
        runs = await RunRepository(session).list(company=company, limit=limit, offset=offset)
    return JSONResponse(
        {
            "company_id": company,
            "items": [run_json(r) for r in runs],
            "limit": limit,
            "offset": offset,
        }
    )


async def load_report(
    services: Services, company: CompanyId, run_id: str
) -> tuple[ReconciliationRun, list[ReconciliationFinding]]:
    async with services.db.transaction() as session:
        run = await RunRepository(session).get(company=company, run_id=run_id)
        if run is None:
            raise ApiError(404, "no such reconciliation in this practice")
        findings = await FindingRepository(session).for_run(company=company, run_id=run_id)
    return run, findings


def report_page(
    run: ReconciliationRun,
    findings: list[ReconciliationFinding],
    *,
    csv_url: str,
    resolve_url: str,
    csrf: str | None = None,
    **page: Any,
) -> Response:
    """The report as a page; with a CSRF token (a page session) it has resolve buttons.
    `page` carries the console's navigation and messages (see syncd.web.pages.common)."""
    rows = [finding_json(f) for f in findings]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["kind"], []).append(row)
    return render(
        "report.html",
        run=run_json(run),
        findings=rows,
        groups=sorted(groups.items()),
        open_count=sum(1 for r in rows if r["state"] == "open"),
        csv_url=csv_url,
        resolve_url=resolve_url,
        **{**page, "csrf": csrf or page.get("csrf") or ""},
        can_resolve=bool(csrf or page.get("csrf")),
    )


@access("admin")
async def show_run(request: Request) -> Response:
    _, company = admin_scope(request)
    run, findings = await load_report(
        services_of(request), company, str(request.path_params["run_id"])
    )
    shape = request.query_params.get("format", "json")
    if shape == "csv":
        return PlainTextResponse(
            to_csv(finding_json(f) for f in findings),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="reconciliation-{run.id}.csv"'},
        )
    if shape == "html":
        return report_page(
            run,
            findings,
            csv_url=f"{PREFIX}/reconciliations/{run.id}?format=csv",
            resolve_url=f"{PREFIX}/findings/",
            csrf=None,
        )
    if shape != "json":
        raise ApiError(422, "format must be json, csv or html")
    return JSONResponse({**run_json(run), "findings": [finding_json(f) for f in findings]})


async def resolve_finding(
    services: Services,
    company: CompanyId,
    finding_id: int,
    resolution: str,
    *,
    by: str,
    note: str | None,
) -> ReconciliationFinding:
    """heal → the proposed action; accept → the other side's action (or just acknowledge);
    ignore → hide. Only open findings; an action that cannot run is a 409 saying why."""
    if resolution not in RESOLUTIONS:
        raise ApiError(422, f"resolution must be one of {', '.join(RESOLUTIONS)}")
    async with services.db.transaction() as session:
        finding = await FindingRepository(session).get(company=company, finding_id=finding_id)
        if finding is None:
            raise ApiError(404, "no such finding in this practice")
        if finding.state != "open":
            raise ApiError(409, f"this finding is already {finding.state}")
    reconciler = _reconciler(services)
    action: str | None = None
    if resolution == "heal":
        action = finding.action
    elif resolution == "accept":
        action = finding.alternative
    if action is not None:
        done = await reconciler.heal(company, finding, Action(action), run_id=finding.run_id)
        if not done:
            raise ApiError(
                409,
                f"'{action.replace('_', ' ')}' cannot be done automatically for this finding: "
                "map it in the admin console, or ignore it",
            )
    state = {"heal": "healed", "accept": "accepted", "ignore": "ignored"}[resolution]
    async with services.db.transaction() as session:
        stored = await FindingRepository(session).get(company=company, finding_id=finding_id)
        assert stored is not None
        stored.state, stored.resolved_by = state, by
        stored.resolved_at, stored.note = services.clock.now(), note
    async with services.db.transaction() as session:
        refreshed = await FindingRepository(session).get(company=company, finding_id=finding_id)
    assert refreshed is not None
    return refreshed


@access("admin")
async def resolve(request: Request) -> JSONResponse:
    principal, company = admin_scope(request)
    try:
        finding_id = int(request.path_params["finding_id"])
    except ValueError:
        raise ApiError(404, "no such finding") from None
    body = await json_object(request)
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise ApiError(422, "note must be text")
    finding = await resolve_finding(
        services_of(request),
        company,
        finding_id,
        str(body.get("resolution", "")),
        by=principal.user_id,
        note=note,
    )
    return JSONResponse(finding_json(finding))


routes = [
    Route(f"{PREFIX}/reconcile", start, methods=["POST"]),
    Route(f"{PREFIX}/reconciliations", list_runs, methods=["GET"]),
    Route(f"{PREFIX}/reconciliations/{{run_id}}", show_run, methods=["GET"]),
    Route(f"{PREFIX}/findings/{{finding_id}}/resolve", resolve, methods=["POST"]),
]
