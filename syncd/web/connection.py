"""Admin endpoints for a practice's Xero connection (the CRM design's connect flow); a
ConnectError anywhere below becomes its JSON answer in syncd.web.errors:

GET  /api/integrations/xero/connect          302 to Xero's consent (admin JWT)
GET  /api/integrations/xero/callback         Xero returns here (authenticated by the state)
POST /api/integrations/xero/connect/select   pick one tenant of a multi-tenant consent
POST /api/integrations/xero/disconnect       remove the connection at Xero, deactivate locally
GET  /api/integrations/xero/status           connected?, tenant, by/at, reconnect, budget

`connect` binds the flow to the admin's browser (an HttpOnly, SameSite=Lax cookie); the callback
and the tenant choice refuse a browser without it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from syncd.domain.ids import CompanyId, UserId
from syncd.pipeline.connect import ChooseTenant, Connected
from syncd.services import NotConfigured, XeroSide
from syncd.web.auth import access, admin_scope
from syncd.web.context import services_of
from syncd.web.errors import ApiError
from syncd.web.requests import json_object
from syncd.web.session import secure
from syncd.web.templating import render

PREFIX = "/api/integrations/xero"
# The connect flow's browser binding: set by whoever starts a connect, read at the callback and
# the tenant choice (both under PREFIX). Long enough for the consent and a tenant choice.
BROWSER_COOKIE = "syncd_connect"
BROWSER_COOKIE_SECONDS = 30 * 60


def _xero(request: Request) -> XeroSide:
    try:
        return services_of(request).require_xero()
    except NotConfigured as exc:
        raise ApiError(503, str(exc)) from None


def _safe_return_to(value: str | None) -> str | None:
    """Only same-site relative paths: never an open redirect."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        raise ApiError(400, "return_to must be a path on this site, like /settings/integrations")
    return value


async def start_connect(
    request: Request,
    *,
    company: CompanyId,
    user: UserId,
    return_to: str | None,
    respond: Callable[[str], Response],
) -> Response:
    """Start a connect for `company` bound to this browser: `respond(authorize_url)` answers,
    and the answer sets the binding cookie the callback will want back."""
    browser = secrets.token_urlsafe(32)
    url = await _xero(request).connect.start(
        company=company, user=user, browser=browser, return_to=return_to
    )
    response = respond(url)
    response.set_cookie(
        BROWSER_COOKIE,
        browser,
        max_age=BROWSER_COOKIE_SECONDS,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=secure(request),
    )
    return response


@access("admin")
async def connect(request: Request) -> Response:
    principal, company = admin_scope(request)
    return_to = _safe_return_to(request.query_params.get("return_to"))

    def respond(url: str) -> Response:
        if request.query_params.get("format") == "json":
            return JSONResponse({"authorization_url": url, "company_id": company})
        return RedirectResponse(url, status_code=302)

    return await start_connect(
        request, company=company, user=principal.user_id, return_to=return_to, respond=respond
    )


@access("oauth-state")
async def callback(request: Request) -> Response:
    params = request.query_params
    if params.get("error"):
        raise ApiError(400, f"Xero did not grant access: {params.get('error')}")
    state, code = params.get("state"), params.get("code")
    if not state or not code:
        raise ApiError(400, "the callback needs both `code` and `state` from Xero")
    outcome = await _xero(request).connect.finish(
        state=state, code=code, browser=request.cookies.get(BROWSER_COOKIE)
    )
    if isinstance(outcome, ChooseTenant) and "text/html" in request.headers.get("accept", ""):
        # A browser: let the admin pick on a page (the form posts to connect/select).
        return render(
            "choose_tenant.html",
            nav=(),
            selection=outcome.selection,
            tenants=outcome.tenants,
            action=f"{PREFIX}/connect/select",
        )
    return _outcome_response(outcome)


@access("oauth-state")
async def select_tenant(request: Request) -> Response:
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = await request.form()
        body: dict[str, object] = {k: v for k, v in form.items() if isinstance(v, str)}
    else:
        body = await json_object(request)
    selection, tenant_id = body.get("selection"), body.get("tenant_id")
    if not isinstance(selection, str) or not isinstance(tenant_id, str):
        raise ApiError(400, "send JSON with `selection` (from the callback) and `tenant_id`")
    outcome = await _xero(request).connect.choose(
        selection=selection, tenant_id=tenant_id, browser=request.cookies.get(BROWSER_COOKIE)
    )
    return _outcome_response(outcome)


def _outcome_response(outcome: Connected | ChooseTenant) -> Response:
    if isinstance(outcome, ChooseTenant):
        return JSONResponse(
            {
                "status": "choose_tenant",
                "company_id": outcome.company,
                "selection": outcome.selection,
                "tenants": [
                    {k: t[k] for k in ("tenant_id", "tenant_name", "tenant_type")}
                    for t in outcome.tenants
                ],
                "select_url": f"{PREFIX}/connect/select",
            }
        )
    response: Response
    if outcome.return_to:
        separator = "&" if "?" in outcome.return_to else "?"
        target = f"{outcome.return_to}{separator}{urlencode({'xero': 'connected'})}"
        response = RedirectResponse(target, status_code=302)
    else:
        response = JSONResponse(_connected_body(outcome))
    response.delete_cookie(BROWSER_COOKIE, path=PREFIX)  # the flow is over
    return response


def _connected_body(outcome: Connected) -> dict[str, Any]:
    return {
        "status": "connected",
        "company_id": outcome.company,
        "tenant_id": outcome.tenant_id,
        "tenant_name": outcome.tenant_name,
    }


@access("admin")
async def disconnect(request: Request) -> Response:
    principal, company = admin_scope(request)
    result = await _xero(request).connect.disconnect(company=company, user=principal.user_id)
    return JSONResponse(
        {
            "disconnected": True,
            "company_id": company,
            "revoked_at_xero": result.revoked_at_xero,
            "message": result.message,
        }
    )


@access("admin")
async def status(request: Request) -> Response:
    _, company = admin_scope(request)
    return JSONResponse(await _xero(request).connect.status(company=company))


routes = [
    Route(f"{PREFIX}/connect", connect, methods=["GET"]),
    Route(f"{PREFIX}/callback", callback, methods=["GET"]),
    Route(f"{PREFIX}/connect/select", select_tenant, methods=["POST"]),
    Route(f"{PREFIX}/disconnect", disconnect, methods=["POST"]),
    Route(f"{PREFIX}/status", status, methods=["GET"]),
]
