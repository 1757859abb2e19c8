"""Admin API for a practice's mappings and sync settings (all scoped to the caller's practice;
a super admin names one with `company_id`).

    GET|PUT /api/integrations/xero/mappings/staff      accountants ↔ Xero staff (or Projects users)
    GET|PUT /api/integrations/xero/mappings/services   services ↔ job templates
    GET|PUT /api/integrations/xero/mappings/contacts   clients ↔ contacts (link / unlink)
    GET|PUT /api/integrations/xero/settings            sync settings, versioned

PUT bodies: `{"mappings": [{"accountant_id": "...", "staff_id": "..." | null}, ...]}` (null
unmaps). Every id is checked (CRM and Xero) before anything is written; a bad row answers 422
with the offending rows. Suggestions come back marked `"suggested": true` until saved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from syncd.domain.ids import CompanyId
from syncd.domain.sync_settings import SettingsInvalid
from syncd.pipeline import mappings as mapping
from syncd.pipeline.practice import current_settings, save_settings
from syncd.services import NotConfigured, Services
from syncd.web.auth import access, admin_scope
from syncd.web.context import services_of
from syncd.web.errors import ApiError
from syncd.web.requests import json_object

PREFIX = "/api/integrations/xero"

View = Callable[[Services, CompanyId], Awaitable[mapping.MappingView]]
Save = Callable[[Services, CompanyId, Any], Awaitable[None]]
KINDS: dict[str, tuple[View, Save, str, str]] = {
    "staff": (mapping.staff_view, mapping.save_staff, "accountant_id", "staff_id"),
    "services": (mapping.service_view, mapping.save_services, "service_id", "template_id"),
    "contacts": (mapping.contact_view, mapping.save_contacts, "client_id", "contact_id"),
}


async def _guarded(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except mapping.NotConnected as exc:
        raise ApiError(409, str(exc)) from None
    except NotConfigured as exc:
        raise ApiError(503, str(exc)) from None
    except mapping.MappingInvalid as exc:
        raise ApiError(422, "nothing was saved: fix the rows listed", rows=exc.rows) from None


def _mapping_route(kind: str) -> Callable[[Request], Awaitable[JSONResponse]]:
    view, save, crm_field, xero_field = KINDS[kind]

    @access("admin")
    async def endpoint(request: Request) -> JSONResponse:
        _, company = admin_scope(request)
        services = services_of(request)
        if request.method == "PUT":
            body = await json_object(request)
            await _guarded(save(services, company, body.get("mappings")))
        shown = await _guarded(view(services, company))
        return JSONResponse(
            {"company_id": company, **mapping.view_json(shown, crm_field, xero_field)}
        )

    endpoint.__name__ = f"{kind}_mappings"
    return endpoint


@access("admin")
async def settings_endpoint(request: Request) -> JSONResponse:
    principal, company = admin_scope(request)
    services = services_of(request)
    if request.method == "PUT":
        body = await json_object(request)
        try:
            await save_settings(services, company, body, by=principal.user_id)
        except SettingsInvalid as exc:
            raise ApiError(
                422, "nothing was saved: fix the settings listed", errors=exc.errors
            ) from None
    return JSONResponse(await current_settings(services, company))


routes = [
    *(
        Route(f"{PREFIX}/mappings/{kind}", _mapping_route(kind), methods=["GET", "PUT"])
        for kind in KINDS
    ),
    Route(f"{PREFIX}/settings", settings_endpoint, methods=["GET", "PUT"]),
]
