"""Page sessions: the CRM hands an admin over with a short-lived JWT, exchanged once for an
HttpOnly, SameSite=Lax session cookie (signed, 8 hours); every form carries the session's CSRF
token, checked in constant time, and a foreign Origin is refused.

The cookie is stateless (a signed, base64url JSON payload), keyed by a key derived from the first
encryption key: nothing to store, and rotating keys signs everyone out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from syncd.domain.ids import CompanyId, UserId
from syncd.web.auth import Principal, Role

COOKIE = "syncd_session"
PATH = "/admin"
LIFETIME = 8 * 3600
HANDOFF_MAX_SECONDS = 600


class NoSession(Exception):
    """The page needs a session (the admin must come through the CRM again)."""


class Forbidden(Exception):
    """Signed in, but not allowed to see this (another practice, or a form without CSRF)."""


@dataclass(frozen=True, slots=True)
class Session:
    user_id: str
    role: str
    company_id: str
    csrf: str
    expires: int

    @property
    def company(self) -> CompanyId:
        return CompanyId(self.company_id)

    @property
    def user(self) -> UserId:
        return UserId(self.user_id)


def session_key(secret: str) -> bytes:
    return hashlib.sha256(b"syncd/session/v1\x00" + secret.encode("utf-8")).digest()


def _mac(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def encode(key: bytes, session: Session) -> str:
    body = (
        base64.urlsafe_b64encode(json.dumps(asdict(session), separators=(",", ":")).encode())
        .rstrip(b"=")
        .decode("ascii")
    )
    return f"{body}.{_mac(key, body)}"


def decode(key: bytes, value: str, *, now: float | None = None) -> Session | None:
    body, _, mac = value.partition(".")
    if not body or not mac or not hmac.compare_digest(_mac(key, body), mac):
        return None
    try:
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        session = Session(**data)
    except (ValueError, TypeError):
        return None
    return session if session.expires > (now if now is not None else time.time()) else None


def start(principal: Principal, company: CompanyId) -> Session:
    return Session(
        user_id=principal.user_id,
        role=principal.role.value,
        company_id=company,
        csrf=secrets.token_urlsafe(24),
        expires=int(time.time()) + LIFETIME,
    )


def set_cookie(response: Response, key: bytes, session: Session, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        encode(key, session),
        max_age=LIFETIME,
        path=PATH,
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH)


def current(connection: HTTPConnection) -> Session:
    key: bytes = connection.app.state.session_key
    value = connection.cookies.get(COOKIE)
    session = decode(key, value) if value else None
    if session is None:
        raise NoSession
    if Role(session.role) not in {Role.SUPER_ADMIN, Role.PRACTICE_ADMIN}:
        raise Forbidden
    return session


async def check_form(request: Request, session: Session) -> dict[str, str]:
    """The posted form, after checking its CSRF token and (when sent) its Origin."""
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        raise Forbidden
    form = await request.form()
    token = form.get("csrf")
    if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf):
        raise Forbidden
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}
