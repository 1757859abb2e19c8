"""Who is calling: the CRM's JWTs (claims `sub`, `role`, `company_id`), the role rules, and the
access label every route carries so a test can check that no route is left unplaced.

Roles (the CRM design): super admin — any practice, naming it with `company_id`; practice admin
— their own practice only; accountant and client — nothing here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Literal, TypeVar

import jwt
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from syncd.domain.ids import CompanyId, UserId
from syncd.settings import Settings
from syncd.web.errors import ApiError

LEEWAY = timedelta(seconds=30)

Access = Literal[
    "public", "admin", "oauth-state", "xero-signature", "crm-signature", "session", "metrics-token"
]
Endpoint = Callable[[Request], Awaitable[Response]]
E = TypeVar("E", bound=Callable[..., object])


class Role(StrEnum):
    SUPER_ADMIN = "super_admin"
    PRACTICE_ADMIN = "practice_admin"
    ACCOUNTANT = "accountant"
    CLIENT = "client"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UserId
    role: Role
    company_id: CompanyId | None


def access(label: Access) -> Callable[[E], E]:
    """Declare how a route is protected (checked by the role-matrix test for every route)."""

    def mark(endpoint: E) -> E:
        endpoint.__syncd_access__ = label  # type: ignore[attr-defined]
        return endpoint

    return mark


def access_of(endpoint: object) -> Access | None:
    label: Access | None = getattr(endpoint, "__syncd_access__", None)
    return label


class JwtVerifier:
    """Verifies the CRM's tokens with the HS256 secret or the RS256 public key."""

    def __init__(self, settings: Settings) -> None:
        if settings.jwt_public_key is not None:
            self._key: str = settings.jwt_public_key
            self._algorithms = ["RS256"]
        elif settings.jwt_secret is not None:
            self._key = settings.jwt_secret.reveal()
            self._algorithms = ["HS256"]
        else:
            self._key = ""
            self._algorithms = []

    def verify(self, token: str) -> Principal:
        if not self._algorithms:
            raise ApiError(503, "JWT verification is not configured (SYNCD_JWT_SECRET)")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                leeway=LEEWAY,
                options={"require": ["exp", "sub", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorised("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise _unauthorised(f"invalid token: {exc}") from None
        try:
            role = Role(str(claims["role"]))
        except ValueError:
            raise ApiError(403, f"role {claims['role']!r} has no access here") from None
        company = claims.get("company_id")
        return Principal(
            user_id=UserId(str(claims["sub"])),
            role=role,
            company_id=CompanyId(str(company)) if company else None,
        )


def _unauthorised(message: str) -> ApiError:
    error = ApiError(401, message)
    error.headers = {"WWW-Authenticate": 'Bearer realm="syncd"'}
    return error


def bearer_token(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(request: HTTPConnection) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise _unauthorised("sign in through the CRM: an `Authorization: Bearer` JWT is required")
    verifier: JwtVerifier = request.app.state.jwt
    return verifier.verify(token)


def company_for(principal: Principal, requested: str | None) -> CompanyId:
    """The practice this admin call acts on, or a 400/403 saying why not."""
    if principal.role is Role.SUPER_ADMIN:
        if not requested:
            raise ApiError(400, "a super admin must name the practice with company_id")
        return CompanyId(requested)
    if principal.role is Role.PRACTICE_ADMIN:
        if principal.company_id is None:
            raise ApiError(403, "this practice admin token names no practice")
        if requested and requested != principal.company_id:
            raise ApiError(403, "practice admins can only manage their own practice")
        return principal.company_id
    raise ApiError(403, f"the {principal.role.value} role cannot manage Xero integration")


def admin_scope(request: Request) -> tuple[Principal, CompanyId]:
    """Authenticate an admin API call and resolve the practice it acts on."""
    principal = authenticate(request)
    return principal, company_for(principal, request.query_params.get("company_id"))


def mint_token(
    settings: Settings, *, user: str, role: Role, company: str | None, ttl: timedelta
) -> str:
    """A development JWT like the CRM's (HS256 with SYNCD_JWT_SECRET), for curl and tests. Each
    has its own `jti`, so two minted in the same second are still two sign-in links."""
    import secrets
    import time

    if settings.jwt_secret is None:
        raise ValueError("SYNCD_JWT_SECRET must be set to mint development tokens")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user,
        "role": role.value,
        "iat": now,
        "exp": now + int(ttl.total_seconds()),
        "jti": secrets.token_urlsafe(16),
    }
    if company:
        claims["company_id"] = company
    return jwt.encode(claims, settings.jwt_secret.reveal(), algorithm="HS256")
