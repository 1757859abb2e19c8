"""What every page shares: the session check (401 and 403 pages), the navigation, flash
messages after a form, and the practice the session belongs to."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from syncd.services import Services
from syncd.web.auth import access
from syncd.web.context import services_of
from syncd.web.session import Forbidden, NoSession, Session, clear_cookie, current, has_cookie
from syncd.web.templating import render

NAV = (
    ("/admin", "Dashboard"),
    ("/admin/connection", "Connection"),
    ("/admin/staff", "Staff"),
    ("/admin/services", "Services"),
    ("/admin/clients", "Clients"),
    ("/admin/settings", "Settings"),
    ("/admin/sync-log", "Sync log"),
    ("/admin/reconciliations", "Reconciliations"),
)

Page = Callable[[Request, Session, Services], Awaitable[Response]]


def page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """A session-protected page: no session (or a revoked or expired one, whose cookie is
    cleared) → 401 page; another practice asked for → 403."""

    @access("session")
    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            session = await current(request)
            asked = request.query_params.get("company_id")
            if asked and asked != session.company_id:
                raise Forbidden
            return await handler(request, session, services_of(request))
        except NoSession:
            response = render("signed_out.html", status_code=401, nav=())
            if has_cookie(request):
                clear_cookie(response, request)
            return response
        except Forbidden:
            return render("forbidden.html", status_code=403, nav=())

    return endpoint


def page_context(request: Request, session: Session) -> dict[str, Any]:
    """The navigation, the session, its CSRF token and any message from the last form."""
    return {
        "nav": NAV,
        "here": request.url.path,
        "session": session,
        "csrf": session.csrf,
        "flash": request.query_params.get("flash"),
        "problem": request.query_params.get("problem"),
    }


def show(request: Request, session: Session, template: str, **context: Any) -> Response:
    return render(template, **page_context(request, session), **context)


def back(path: str, *, flash: str | None = None, problem: str | None = None) -> Response:
    """After a form: 303 to a page, with a message for it (post/redirect/get)."""
    query = urlencode({k: v for k, v in (("flash", flash), ("problem", problem)) if v})
    joiner = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{joiner}{query}" if query else path, status_code=303)
