"""Coming in from the CRM, and signing out (docs/console-security.md).

`GET /admin/login?token=<CRM JWT>[&company_id=…]` takes a short-lived JWT that signs in once.
A browser that says it comes from the CRM (Origin or Referer = SYNCD_CRM_URL) is signed in at
once; one that says it comes from anywhere else is refused; one that says nothing (or when
SYNCD_CRM_URL is unset) gets a confirmation form whose one-time nonce is bound to the link and to
this browser, so that a cross-site GET alone never signs anyone in. `POST /admin/login` takes
that form. `POST /admin/logout` (CSRF-checked) revokes the session; `GET` only offers the button.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from syncd.domain.ids import CompanyId
from syncd.logs import get_logger
from syncd.store.console_sessions import HandoffRepository, Redeemed
from syncd.web.auth import LEEWAY, JwtVerifier, Principal, Role, access
from syncd.web.context import services_of
from syncd.web.errors import ApiError
from syncd.web.pages.common import show
from syncd.web.session import (
    Forbidden,
    NoSession,
    Session,
    check_form,
    clear_cookie,
    config_of,
    current,
    digest,
    end,
    origin_of,
    origins_of,
    same_origin,
    secure,
    set_cookie,
    start,
)
from syncd.web.templating import render

log = get_logger("syncd.console")

LOGIN_PATH = "/admin/login"
# The confirmation form's browser binding: an HttpOnly cookie the form must come back with.
BROWSER_COOKIE = "syncd_login"
HANDOFF_MAX_SECONDS = 600
MAX_USER_ID = 200  # the sessions' user_id column
MAX_COMPANY_ID = 36
BROWSER_VALUE = re.compile(r"[A-Za-z0-9_-]{32,64}")

INVALID = "the sign-in link is invalid or has expired"
USED = "this sign-in link has already been used: each link signs in once"
FOREIGN = "sign-in links work only when you open them from the CRM"
STALE = (
    "this sign-in form has expired or was opened in another browser: open the Xero settings "
    "from the CRM again"
)


class Came(StrEnum):
    """Where the browser says a sign-in link came from."""

    CRM = "crm"  # its Origin or Referer is SYNCD_CRM_URL's
    ELSEWHERE = "elsewhere"  # another site's
    UNSAID = "unsaid"  # no Origin or Referer (or this app's own, or no SYNCD_CRM_URL to match)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A verified sign-in link: who, for which practice, and its single-use id."""

    id: str
    principal: Principal
    company: CompanyId
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Why a link signs nobody in: the page, its status and the sentence it shows."""

    template: str
    status: int
    reason: str


# -- pure decisions --------------------------------------------------------------------------


def came_from(
    *, origin: str | None, referer: str | None, crm: str | None, own: Collection[str]
) -> Came:
    """Judge the browser's word (Origin first, else Referer) against the CRM's origin."""
    said = origin if origin and origin != "null" else referer
    if crm is None or not said:
        return Came.UNSAID
    seen = origin_of(said)
    if seen == crm:
        return Came.CRM
    return Came.UNSAID if seen in own else Came.ELSEWHERE


def handoff_id(token: str, claims: Mapping[str, Any]) -> str:
    """What a link is remembered by: its `jti` (with its subject), else the whole token."""
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        return digest(f"jti\x00{claims.get('sub')}\x00{jti}")
    return digest(f"token\x00{token}")


def read_link(
    verifier: JwtVerifier, token: str, asked: str | None, *, now: float
) -> Link | Refusal:
    """Verify a sign-in link and resolve the practice it opens (super admins name one)."""
    try:
        principal = verifier.verify(token)
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except (ApiError, jwt.PyJWTError):
        return Refusal(template="signed_out.html", status=401, reason=INVALID)
    expires = int(claims.get("exp", 0))
    if expires - now > HANDOFF_MAX_SECONDS:
        return Refusal(
            template="signed_out.html",
            status=401,
            reason="sign-in links must be short-lived (10 minutes at most)",
        )
    if len(principal.user_id) > MAX_USER_ID:
        return Refusal(template="signed_out.html", status=401, reason=INVALID)
    if principal.role is Role.SUPER_ADMIN:
        if not asked:
            return Refusal(
                template="forbidden.html",
                status=400,
                reason="a super admin signs in for one practice: add company_id",
            )
        company = asked
    elif principal.role is Role.PRACTICE_ADMIN and principal.company_id:
        company = principal.company_id
    else:
        return Refusal(
            template="forbidden.html",
            status=403,
            reason=f"the {principal.role.value} role cannot manage the integration",
        )
    if len(company) > MAX_COMPANY_ID:
        return Refusal(template="forbidden.html", status=400, reason="no such practice")
    return Link(
        id=handoff_id(token, claims),
        principal=principal,
        company=CompanyId(company),
        expires_at=datetime.fromtimestamp(expires, UTC) + LEEWAY,
    )


# -- pages -----------------------------------------------------------------------------------


def _refused(refusal: Refusal) -> Response:
    response = render(refusal.template, status_code=refusal.status, nav=(), reason=refusal.reason)
    response.headers["Cache-Control"] = "no-store"
    return response


def _link(request: Request, token: str, asked: str | None) -> Link | Refusal:
    return read_link(request.app.state.jwt, token, asked or None, now=time.time())


def _signed_in(request: Request, session: Session, secret: str, *, via: Came) -> Response:
    log.info("console.signed_in", company=session.company_id, user=session.user_id, via=via.value)
    response = RedirectResponse("/admin", status_code=303)
    set_cookie(response, request, session, secret)
    if BROWSER_COOKIE in request.cookies:
        response.delete_cookie(
            BROWSER_COOKIE, path=LOGIN_PATH, httponly=True, samesite="lax", secure=secure(request)
        )
    return response


def _refuse(refusal: Refusal, *, why: str, link: Link | None = None) -> Response:
    log.warning(
        "console.sign_in_refused",
        why=why,
        status=refusal.status,
        company=link.company if link else None,
        user=link.principal.user_id if link else None,
    )
    return _refused(refusal)


@access("oauth-state")  # authenticated by the link itself
async def login(request: Request) -> Response:
    """The CRM's link: sign in (from the CRM), refuse (from elsewhere), or ask to confirm."""
    token = request.query_params.get("token")
    if not token:
        return _refused(Refusal(template="signed_out.html", status=401, reason=""))
    asked = request.query_params.get("company_id")
    link = _link(request, token, asked)
    if isinstance(link, Refusal):
        return _refuse(link, why="link")
    came = came_from(
        origin=request.headers.get("origin"),
        referer=request.headers.get("referer"),
        crm=config_of(request).crm_origin,
        own=origins_of(request),
    )
    if came is Came.ELSEWHERE:
        refusal = Refusal(template="forbidden.html", status=403, reason=FOREIGN)
        return _refuse(refusal, why="foreign_referer", link=link)
    services = services_of(request)
    now = services.clock.now()
    if came is Came.CRM:
        opened: tuple[Session, str] | None = None
        async with services.db.transaction() as tx:
            handoffs = HandoffRepository(tx)
            await handoffs.purge_expired_across_companies(now=now)
            if await handoffs.claim(
                company=link.company,
                handoff_id=link.id,
                user=link.principal.user_id,
                expires_at=link.expires_at,
                now=now,
            ):
                opened = await start(tx, principal=link.principal, company=link.company, now=now)
        if opened is None:
            used = Refusal(template="signed_out.html", status=401, reason=USED)
            return _refuse(used, why="used", link=link)
        return _signed_in(request, *opened, via=came)
    return await _confirmation(request, token, asked, link)


async def _confirmation(request: Request, token: str, asked: str | None, link: Link) -> Response:
    """The form that signs in with one click, carrying a fresh nonce bound to the link and to
    this browser (an HttpOnly cookie)."""
    services = services_of(request)
    now = services.clock.now()
    nonce = secrets.token_urlsafe(32)
    browser = request.cookies.get(BROWSER_COOKIE, "")
    if not BROWSER_VALUE.fullmatch(browser):
        browser = secrets.token_urlsafe(32)
    async with services.db.transaction() as tx:
        handoffs = HandoffRepository(tx)
        await handoffs.purge_expired_across_companies(now=now)
        offered = await handoffs.offer(
            company=link.company,
            handoff_id=link.id,
            user=link.principal.user_id,
            expires_at=link.expires_at,
            nonce_hash=digest(nonce),
            browser_hash=digest(browser),
            now=now,
        )
    if not offered:
        used = Refusal(template="signed_out.html", status=401, reason=USED)
        return _refuse(used, why="used", link=link)
    response = render(
        "handoff.html",
        nav=(),
        token=token,
        company_id=asked,
        nonce=nonce,
        user=link.principal.user_id,
        company=link.company,
    )
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        BROWSER_COOKIE,
        browser,
        max_age=HANDOFF_MAX_SECONDS,
        path=LOGIN_PATH,
        httponly=True,
        samesite="lax",
        secure=secure(request),
    )
    return response


@access("oauth-state")  # authenticated by the link, its nonce and the browser's cookie
async def confirm(request: Request) -> Response:
    """The confirmation form: sign in once, from the browser the form was shown in."""
    if not same_origin(request):
        refusal = Refusal(template="forbidden.html", status=403, reason=STALE)
        return _refuse(refusal, why="foreign_origin")
    form = await request.form()
    token, nonce, asked = form.get("token"), form.get("nonce"), form.get("company_id")
    if not isinstance(token, str) or not isinstance(nonce, str) or not token or not nonce:
        return _refused(Refusal(template="signed_out.html", status=401, reason=INVALID))
    link = _link(request, token, asked if isinstance(asked, str) else None)
    if isinstance(link, Refusal):
        return _refuse(link, why="link")
    # Without the browser's cookie nothing matches (a used link still says so).
    browser = request.cookies.get(BROWSER_COOKIE, "")
    services = services_of(request)
    now = services.clock.now()
    opened: tuple[Session, str] | None = None
    async with services.db.transaction() as tx:
        outcome = await HandoffRepository(tx).redeem(
            company=link.company,
            handoff_id=link.id,
            nonce_hash=digest(nonce),
            browser_hash=digest(browser),
            now=now,
        )
        if outcome is Redeemed.SIGNED_IN:
            opened = await start(tx, principal=link.principal, company=link.company, now=now)
    if outcome is Redeemed.USED:
        used = Refusal(template="signed_out.html", status=401, reason=USED)
        return _refuse(used, why="used", link=link)
    if opened is None:
        refusal = Refusal(template="forbidden.html", status=403, reason=STALE)
        return _refuse(refusal, why="stale_nonce", link=link)
    return _signed_in(request, *opened, via=Came.UNSAID)


@access("session")  # signing out needs no session; with one, the POST needs its CSRF token
async def logout(request: Request) -> Response:
    """GET offers the sign-out button; POST (with the session's CSRF token) revokes."""
    try:
        session: Session | None = await current(request)
    except (NoSession, Forbidden):
        session = None
    if session is None:
        response = render("signed_out.html", nav=(), reason="you are signed out")
        clear_cookie(response, request)
        return response
    if request.method == "GET":
        return show(request, session, "sign_out.html")
    try:
        await check_form(request, session)
    except Forbidden:
        return render(
            "forbidden.html",
            status_code=403,
            nav=(),
            reason="sign-out works only from the console's own Sign out button",
        )
    await end(request, session)
    log.info("console.signed_out", company=session.company_id, user=session.user_id)
    response = render("signed_out.html", nav=(), reason="you have signed out")
    clear_cookie(response, request)
    return response


routes = [
    Route(LOGIN_PATH, login, methods=["GET"]),
    Route(LOGIN_PATH, confirm, methods=["POST"]),
    Route("/admin/logout", logout, methods=["GET", "POST"]),
]
