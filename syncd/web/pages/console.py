"""The dashboard, the connection page and the settings page (the hand-off from the CRM and
sign-out are in handoff.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from syncd.domain.statuses import ConflictPolicy, CrmStatus
from syncd.domain.sync_settings import FINDING_KINDS, SettingsInvalid
from syncd.pipeline.connect import ConnectError
from syncd.pipeline.practice import current_settings, dashboard, save_settings
from syncd.services import Services
from syncd.store.activity import ActivityRepository
from syncd.web.connection import start_connect
from syncd.web.pages.common import back, page, show
from syncd.web.pages.figures import day_figures
from syncd.web.pages.names import names_for
from syncd.web.session import Session, check_form


@page
async def home(request: Request, session: Session, services: Services) -> Response:
    figures = await dashboard(services, session.company)
    async with services.db.transaction() as db_session:
        activity = await ActivityRepository(db_session).last_day(
            company=session.company, now=services.clock.now()
        )
    return show(
        request,
        session,
        "dashboard.html",
        d=figures,
        charts=day_figures(activity, day_limit=figures.day_limit),
    )


@page
async def connection(request: Request, session: Session, services: Services) -> Response:
    status: dict[str, Any] = {"connected": False}
    if services.xero is not None:
        status = await services.xero.connect.status(company=session.company)
    return show(
        request,
        session,
        "connection.html",
        status=status,
        configured=services.xero is not None,
        connected_by=await _who(services, session, status.get("connected_by")),
    )


async def _who(services: Services, session: Session, user_id: str | None) -> str | None:
    """Who connected, as a person: "you", an accountant's name, or "another admin"."""
    if not user_id:
        return None
    if user_id == session.user_id:
        return "you"
    names = await names_for(services, session.company)
    return names.people.get(user_id, "another admin of this practice")


@page
async def connect(request: Request, session: Session, services: Services) -> Response:
    await check_form(request, session)
    return await start_connect(
        request,
        company=session.company,
        user=session.user,
        return_to="/admin/connection",
        respond=lambda url: RedirectResponse(url, status_code=303),
    )


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
    Route("/admin", home, methods=["GET"]),
    Route("/admin/connection", connection, methods=["GET"]),
    Route("/admin/connection/connect", connect, methods=["POST"]),
    Route("/admin/connection/disconnect", disconnect, methods=["POST"]),
    Route("/admin/settings", settings_page, methods=["GET"]),
    Route("/admin/settings", save_settings_page, methods=["POST"]),
]
