"""Reconciliation for admins: start a run, list runs, read one (JSON, CSV or a readable page),
resolve a finding.

    POST /api/integrations/xero/reconcile                      ?dry_run=true → 202 {run_id}
    GET  /api/integrations/xero/reconciliations                ?limit=&offset=
    GET  /api/integrations/xero/reconciliations/{id}           ?format=json|csv|html
    POST /api/integrations/xero/findings/{id}/resolve          {"resolution": heal|accept|ignore}
"""

from __future__ import annotations

from datetime import datetime
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
from syncd.web.requests import MAX_BIGINT, json_object, path_int, query_int
from syncd.web.templating import render

PREFIX = "/api/integrations/xero"
RESOLUTIONS = ("heal", "accept", "ignore")
RESOLVED_AS = {"heal": "healed", "accept": "accepted", "ignore": "ignored"}


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
    ignore → hide. Only open findings; an action that cannot run is a 409 saying why.

    The finding is claimed first, compare-and-set (open → the new state, in one statement), so
    of concurrent resolutions exactly one carries out the action and the others get 409; if the
    action cannot be done (or fails), the claim is undone and the finding is open again."""
    if resolution not in RESOLUTIONS:
        raise ApiError(422, f"resolution must be one of {', '.join(RESOLUTIONS)}")
    if not 0 < finding_id <= MAX_BIGINT:
        raise ApiError(404, "no such finding in this practice")
    reconciler = _reconciler(services)
    state = RESOLVED_AS[resolution]
    now = services.clock.now()
    async with services.db.transaction() as session:
        findings = FindingRepository(session)
        claimed = await findings.claim(
            company=company, finding_id=finding_id, state=state, by=by, note=note, now=now
        )
        finding = await findings.get(company=company, finding_id=finding_id)
    if finding is None:
        raise ApiError(404, "no such finding in this practice")
    if not claimed:
        raise ApiError(409, f"this finding is already {finding.state}")
    action = {"heal": finding.action, "accept": finding.alternative}.get(resolution)
    if action is not None:
        try:
            done = await reconciler.heal(company, finding, Action(action), run_id=finding.run_id)
        except Exception:
            await _reopen(services, company, finding_id, state=state, claimed_at=now)
            raise
        if not done:
            await _reopen(services, company, finding_id, state=state, claimed_at=now)
            raise ApiError(
                409,
                f"'{action.replace('_', ' ')}' cannot be done automatically for this finding: "
                "map it in the admin console, or ignore it",
            )
    return finding


async def _reopen(
    services: Services, company: CompanyId, finding_id: int, *, state: str, claimed_at: datetime
) -> None:
    async with services.db.transaction() as session:
        await FindingRepository(session).reopen(
            company=company, finding_id=finding_id, state=state, claimed_at=claimed_at
        )


@access("admin")
async def resolve(request: Request) -> JSONResponse:
    principal, company = admin_scope(request)
    finding_id = path_int(request, "finding_id", label="finding id")
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
