"""The hand-off from the CRM, the dashboard, the connection page and the settings page."""

from __future__ import annotations

import time
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from syncd.domain.ids import CompanyId
from syncd.domain.statuses import ConflictPolicy, CrmStatus
from syncd.domain.sync_settings import FINDING_KINDS, SettingsInvalid
from syncd.pipeline.connect import ConnectError
from syncd.pipeline.practice import current_settings, dashboard, save_settings
from syncd.services import Services
from syncd.web.auth import JwtVerifier, Role, access
from syncd.web.errors import ApiError
from syncd.web.pages.common import back, page, show
from syncd.web.session import Session, check_form, clear_cookie, set_cookie, start
from syncd.web.templating import render


@access("oauth-state")  # authenticated by the hand-off token itself
async def login(request: Request) -> Response:
    """`/admin/login?token=<short-lived CRM JWT>[&company_id=…]` → a session cookie."""
    token = request.query_params.get("token")
    if not token:
        return render("signed_out.html", status_code=401, nav=())
    verifier: JwtVerifier = request.app.state.jwt
    try:
        principal = verifier.verify(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except ApiError:
        return render(
            "signed_out.html",
            status_code=401,
            nav=(),
            reason="the sign-in link is invalid or has expired",
        )
    if int(claims.get("exp", 0)) - time.time() > 600:
        return render(
            "signed_out.html",
            status_code=401,
            nav=(),
            reason="sign-in links must be short-lived (10 minutes at most)",
        )
    if principal.role is Role.SUPER_ADMIN:
        company = request.query_params.get("company_id")
        if not company:
            return render(
                "forbidden.html",
                status_code=400,
                nav=(),
                reason="a super admin signs in for one practice: add company_id",
            )
    elif principal.role is Role.PRACTICE_ADMIN and principal.company_id:
        company = principal.company_id
    else:
        return render(
            "forbidden.html",
            status_code=403,
            nav=(),
            reason=f"the {principal.role.value} role cannot manage the integration",
        )
    session = start(principal, CompanyId(company))
    response = RedirectResponse("/admin", status_code=303)
    set_cookie(
        response, request.app.state.session_key, session, secure=request.url.scheme == "https"
    )
    return response


@access("session")
async def logout(request: Request) -> Response:
    response = render("signed_out.html", nav=(), reason="you have signed out")
    clear_cookie(response)
    return response


@page
async def home(request: Request, session: Session, services: Services) -> Response:
    figures = await dashboard(services, session.company)
    return show(request, session, "dashboard.html", d=figures)


@page
async def connection(request: Request, session: Session, services: Services) -> Response:
    status: dict[str, Any] = {"connected": False}
    if services.xero is not None:
        status = await services.xero.connect.status(company=session.company)
    return show(
        request, session, "connection.html", status=status, configured=services.xero is not None
    )


@page
async def connect(request: Request, session: Session, services: Services) -> Response:
    await check_form(request, session)
    url = await services.require_xero().connect.start(
        company=session.company, user=session.user, return_to="/admin/connection"
    )
    return RedirectResponse(url, status_code=303)


@page
async def disconnect(request: Request, session: Session, services: Services) -> Response:
    await check_form(request, session)
    try:
        result = await services.require_xero().connect.disconnect(
            company=session.company, user=session.user
        )
    except ConnectError as exc:
        return back("/admin/connection", problem=str(exc))
    return back("/admin/connection", flash=result.message)


@page
async def settings_page(request: Request, session: Session, services: Services) -> Response:
    return show(
        request,
        session,
        "settings.html",
        data=await current_settings(services, session.company),
        policies=[p.value for p in ConflictPolicy],
        kinds=FINDING_KINDS,
        statuses=[s.value for s in CrmStatus if s is not CrmStatus.PENDING],
    )


@page
async def save_settings_page(request: Request, session: Session, services: Services) -> Response:
    form = await check_form(request, session)
    changes: dict[str, Any] = {
        "auto_create_contacts": form.get("auto_create_contacts") == "on",
        "sync_client_details": form.get("sync_client_details") == "on",
        "conflict_policy": form.get("conflict_policy", ""),
        "auto_heal": [kind for kind in FINDING_KINDS if form.get(f"heal:{kind}") == "on"],
        "status_overrides": {
            status: value.strip()
            for status in (s.value for s in CrmStatus if s is not CrmStatus.PENDING)
            if (value := form.get(f"status:{status}", "")).strip()
        },
    }
    for key in ("poll_interval_minutes", "reconcile_interval_minutes"):
        raw = form.get(key, "").strip()
        changes[key] = int(raw) if raw.isdigit() else (None if raw == "" else raw)
    if "state_classes" in form:
        changes["xero_state_classes"] = state_classes(form.get("state_classes", ""))
    if "job_category_id" in form:
        changes["job_category_id"] = form.get("job_category_id", "").strip() or None
    try:
        await save_settings(services, session.company, changes, by=session.user_id)
    except SettingsInvalid as exc:
        problem = "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in exc.errors.items())
        return back("/admin/settings", problem=f"not saved — {problem}")
    return back("/admin/settings", flash="settings saved")


def state_classes(text: str) -> dict[str, str]:
    """ "On Hold = open" lines as a mapping; a line without a class is skipped (nothing
    declared yet), anything else is passed on for validation to name."""
    declared = {}
    for line in text.splitlines():
        state, _, cls = line.partition("=")
        if state.strip() and cls.strip():
            declared[" ".join(state.split())] = cls.strip().lower()
    return declared


routes = [
    Route("/admin/login", login, methods=["GET"]),
    Route("/admin/logout", logout, methods=["GET", "POST"]),
    Route("/admin", home, methods=["GET"]),
    Route("/admin/connection", connection, methods=["GET"]),
    Route("/admin/connection/connect", connect, methods=["POST"]),
    Route("/admin/connection/disconnect", disconnect, methods=["POST"]),
    Route("/admin/settings", settings_page, methods=["GET"]),
    Route("/admin/settings", save_settings_page, methods=["POST"]),
]
