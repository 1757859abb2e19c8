"""Console sessions: an HttpOnly, SameSite=Lax cookie naming a session row (8 hours) that every
request is checked against and sign-out revokes; every form carries the session's CSRF token,
checked in constant time, and a foreign Origin is refused. See docs/console-security.md.

The cookie carries the practice and a random secret, signed with a key derived from the first
encryption key (rotating keys signs everyone out); the database keeps only the secret's SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from syncd.domain.ids import CompanyId, UserId
from syncd.settings import Settings
from syncd.store.console_sessions import ConsoleSessionRepository
from syncd.store.models import ConsoleSession
from syncd.web.auth import Principal, Role
from syncd.web.context import services_of

COOKIE = "syncd_session"
PATH = "/admin"
LIFETIME = timedelta(hours=8)
ADMIN_ROLES = frozenset({Role.SUPER_ADMIN, Role.PRACTICE_ADMIN})

CookieSecure = Literal["auto", "always", "never"]


class NoSession(Exception):
    """The page needs a session (the admin must come through the CRM again)."""


class Forbidden(Exception):
    """Signed in, but not allowed to see this (another practice, or a form without CSRF)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """How console cookies are signed and flagged, and where sign-in links must come from."""

    key: bytes
    cookie_secure: CookieSecure = "auto"
    crm_origin: str | None = None  # scheme://host[:port] of SYNCD_CRM_URL


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A signed-in admin, as pages see them."""

    id: str  # the row's id: SHA-256 of the cookie's secret
    user_id: str
    role: str
    company_id: str
    csrf: str
    expires: datetime

    @property
    def company(self) -> CompanyId:
        return CompanyId(self.company_id)

    @property
    def user(self) -> UserId:
        return UserId(self.user_id)


# -- pure decisions --------------------------------------------------------------------------


def session_key(secret: str) -> bytes:
    return hashlib.sha256(b"syncd/session/v2\x00" + secret.encode("utf-8")).digest()


def configure(settings: Settings) -> SessionConfig:
    """The app's session settings. Without encryption keys there are no Xero features to
    manage, so a key for this process will do (sessions then end with it)."""
    secret = (
        settings.encryption_keys[0].reveal() if settings.encryption_keys else secrets.token_hex(32)
    )
    return SessionConfig(
        key=session_key(secret),
        cookie_secure=settings.cookie_secure,
        crm_origin=origin_of(settings.crm_url) if settings.crm_url else None,
    )


def digest(value: str) -> str:
    """SHA-256, hex: what the database keeps of a secret."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _mac(key: bytes, body: str) -> str:
    mac = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def encode(key: bytes, company: str, secret: str) -> str:
    """The cookie's value: the practice and the session's secret, signed."""
    payload = json.dumps({"c": company, "s": secret}, separators=(",", ":")).encode()
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")
    return f"{body}.{_mac(key, body)}"


def decode(key: bytes, value: str) -> tuple[CompanyId, str] | None:
    """(practice, secret) from a cookie this app signed, or None."""
    body, _, mac = value.partition(".")
    if not body or not mac or not hmac.compare_digest(_mac(key, body), mac):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        company, secret = data["c"], data["s"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(company, str) or not isinstance(secret, str) or not company or not secret:
        return None
    return CompanyId(company), secret


def secure_flag(mode: CookieSecure, scheme: str) -> bool:
    """SYNCD_COOKIE_SECURE: always, never, or (auto) when the request came over https."""
    return mode == "always" or (mode == "auto" and scheme == "https")


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL (lower case, default port dropped), or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in {"http", "https"} or not host:
        return None
    if ":" in host:
        host = f"[{host}]"  # IPv6
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port in {None, default} else f"{scheme}://{host}:{port}"


def own_origins(scheme: str, netloc: str, mode: CookieSecure) -> frozenset[str]:
    """The origins a browser on this app sends: as the request arrived, and (behind a TLS
    proxy, SYNCD_COOKIE_SECURE=always) as https."""
    schemes = {scheme, "https"} if mode == "always" else {scheme}
    return frozenset(o for s in schemes if (o := origin_of(f"{s}://{netloc}")) is not None)


# -- at the edge -----------------------------------------------------------------------------


def config_of(connection: HTTPConnection) -> SessionConfig:
    config: SessionConfig = connection.app.state.sessions
    return config


def origins_of(connection: HTTPConnection) -> frozenset[str]:
    return own_origins(
        connection.url.scheme, connection.url.netloc, config_of(connection).cookie_secure
    )


def secure(connection: HTTPConnection) -> bool:
    return secure_flag(config_of(connection).cookie_secure, connection.url.scheme)


async def start(
    tx: AsyncSession, *, principal: Principal, company: CompanyId, now: datetime
) -> tuple[Session, str]:
    """A new session row in the caller's transaction; (the session, the cookie's secret).
    Sessions past their expiry are dropped on the way."""
    secret = secrets.token_urlsafe(32)
    row = ConsoleSession(
        id=digest(secret),
        company_id=company,
        user_id=principal.user_id,
        role=principal.role.value,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + LIFETIME,
    )
    repository = ConsoleSessionRepository(tx)
    await repository.purge_expired_across_companies(now=now)
    await repository.add(company=company, session=row)
    return _session(row), secret


def _session(row: ConsoleSession) -> Session:
    return Session(
        id=row.id,
        user_id=row.user_id,
        role=row.role,
        company_id=row.company_id,
        csrf=row.csrf,
        expires=row.expires_at,
    )


def set_cookie(response: Response, request: Request, session: Session, secret: str) -> None:
    response.set_cookie(
        COOKIE,
        encode(config_of(request).key, session.company_id, secret),
        max_age=int(LIFETIME.total_seconds()),
        path=PATH,
        httponly=True,
        samesite="lax",
        secure=secure(request),
    )


def clear_cookie(response: Response, request: HTTPConnection) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="lax", secure=secure(request))


def has_cookie(connection: HTTPConnection) -> bool:
    return COOKIE in connection.cookies


async def current(connection: HTTPConnection) -> Session:
    """The session the cookie names, if its row is neither revoked nor expired."""
    value = connection.cookies.get(COOKIE)
    found = decode(config_of(connection).key, value) if value else None
    if found is None:
        raise NoSession
    company, secret = found
    services = services_of(connection)
    async with services.db.transaction() as tx:
        row = await ConsoleSessionRepository(tx).active(
            company=company, session_id=digest(secret), now=services.clock.now()
        )
    if row is None:
        raise NoSession
    if Role(row.role) not in ADMIN_ROLES:
        raise Forbidden
    return _session(row)


async def end(connection: HTTPConnection, session: Session) -> bool:
    """Revoke the session: its cookie no longer works, wherever it was copied to."""
    services = services_of(connection)
    async with services.db.transaction() as tx:
        return await ConsoleSessionRepository(tx).revoke(
            company=session.company, session_id=session.id, now=services.clock.now()
        )


def same_origin(request: Request) -> bool:
    """Whether the Origin header, when sent, is this app's own."""
    origin = request.headers.get("origin")
    return origin is None or origin_of(origin) in origins_of(request)


async def check_form(request: Request, session: Session) -> dict[str, str]:
    """The posted form, after checking its CSRF token and (when sent) its Origin."""
    if not same_origin(request):
        raise Forbidden
    form = await request.form()
    token = form.get("csrf")
    if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf):
        raise Forbidden
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}
