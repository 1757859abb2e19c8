"""Staff, service → template and client ↔ contact mapping pages: a table of CRM records beside
a choice of Xero records (the suggestion preselected and labelled until saved)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.domain.ids import CompanyId
from syncd.pipeline import mappings as mapping
from syncd.services import Services
from syncd.web.pages.common import back, page, show
from syncd.web.session import Session, check_form

View = Callable[[Services, CompanyId], Awaitable[mapping.MappingView]]
Save = Callable[[Services, CompanyId, Any], Awaitable[None]]

PAGES: dict[str, tuple[str, View, Save, str, str, str]] = {
    # path: (title, view, save, crm field, xero field, noun for Xero records)
    "staff": (
        "Staff",
        mapping.staff_view,
        mapping.save_staff,
        "accountant_id",
        "staff_id",
        "Xero staff member",
    ),
    "services": (
        "Services → job templates",
        mapping.service_view,
        mapping.save_services,
        "service_id",
        "template_id",
        "job template",
    ),
    "clients": (
        "Client matching",
        mapping.contact_view,
        mapping.save_contacts,
        "client_id",
        "contact_id",
        "Xero contact",
    ),
}


def _show(kind: str) -> Callable[[Request], Awaitable[Response]]:
    title, view, _, _, _, noun = PAGES[kind]

    @page
    async def handler(request: Request, session: Session, services: Services) -> Response:
        try:
            shown = await view(services, session.company)
        except mapping.NotConnected as exc:
            return show(
                request,
                session,
                "mapping.html",
                title=title,
                view=None,
                notice=str(exc),
                kind=kind,
                noun=noun,
            )
        return show(
            request,
            session,
            "mapping.html",
            title=title,
            view=shown,
            kind=kind,
            noun=noun,
            notice=shown.message,
        )

    handler.__name__ = f"{kind}_page"
    return handler


def _save(kind: str) -> Callable[[Request], Awaitable[Response]]:
    _, _, save, crm_field, xero_field, _ = PAGES[kind]

    @page
    async def handler(request: Request, session: Session, services: Services) -> Response:
        form = await check_form(request, session)
        # One select per row, named "map:<crm id>"; "" = not mapped. With scripts on, only rows
        # that change something are sent; without, all are (saving an unchanged row is a no-op).
        rows = [
            {crm_field: name.removeprefix("map:"), xero_field: value or None}
            for name, value in form.items()
            if name.startswith("map:")
        ]
        try:
            await save(services, session.company, rows)
        except mapping.MappingInvalid as exc:
            problems = "; ".join(str(row.get("problem")) for row in exc.rows)
            return back(f"/admin/{kind}", problem=f"nothing saved — {problems}")
        except mapping.NotConnected as exc:
            return back(f"/admin/{kind}", problem=str(exc))
        return back(f"/admin/{kind}", flash=f"saved {len(rows)} row(s)")

    handler.__name__ = f"save_{kind}_page"
    return handler


routes = [
    route
    for kind in PAGES
    for route in (
        Route(f"/admin/{kind}", _show(kind), methods=["GET"]),
        Route(f"/admin/{kind}", _save(kind), methods=["POST"]),
    )
]
