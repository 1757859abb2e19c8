"""The sandbox's OAuth 2.0 authority: consents, authorization codes (PKCE), grants with rotating
refresh tokens and a grace window, HS256 access tokens, and the connections each consent makes.

No HTTP here: `identity.py` maps requests onto these methods. Times come from the injected clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import jwt

from syncd.clock import Clock
from syncd.sandbox.models import OAuthApp

ACCESS_TOKEN_SECONDS = 1800
AUTH_CODE_SECONDS = 300
REFRESH_GRACE_SECONDS = 1800
REFRESH_IDLE_DAYS = 60
ISSUER = "https://identity.xero.com"
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


class OAuthError(Exception):
    """An OAuth protocol error: `error` is the RFC 6749 code sent to the client."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


class TokenRejected(Exception):
    """A bearer token the API refuses: missing, expired (TokenExpired) or not ours."""

    def __init__(self, detail: str, *, expired: bool = False, missing: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.expired = expired
        self.missing = missing


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    user_id: str
    auth_event_id: str
    expires_at: datetime
    used: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """One authorisation (token family): what its tokens may do and for whom."""

    grant_id: str
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    auth_event_id: str
    revoked: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshToken:
    token: str
    grant_id: str
    issued_at: datetime
    superseded_at: datetime | None = None
    revoked: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessGrant:
    """What a valid access token stands for."""

    grant: Grant
    jti: str
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    connection_id: str
    tenant_id: str
    client_id: str
    user_id: str
    auth_event_id: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSet:
    access_token: str
    expires_in: int
    refresh_token: str | None
    scopes: tuple[str, ...]
    id_token: str | None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
            "scope": " ".join(self.scopes),
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        if self.id_token is not None:
            body["id_token"] = self.id_token
        return body


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class Authority:
    """Issues and checks every credential of the sandbox."""

    def __init__(self, clock: Clock, rng: random.Random) -> None:
        self._clock = clock
        self._rng = rng
        self._secret = rng.randbytes(32)
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessGrant] = {}
        self.connections: dict[str, Connection] = {}
        self.default_user_id = self.new_id()

    # -- ids and secrets ------------------------------------------------------------------

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _opaque(self) -> str:
        return base64.urlsafe_b64encode(self._rng.randbytes(32)).rstrip(b"=").decode("ascii")

    # -- consent and codes ----------------------------------------------------------------

    def consent(
        self,
        *,
        app: OAuthApp,
        redirect_uri: str,
        scopes: tuple[str, ...],
        code_challenge: str | None,
        user_id: str | None,
        tenant_ids: Iterable[str],
    ) -> AuthCode:
        """The user consents: connect the tenants (one auth event) and issue a code."""
        now = self._clock.now()
        user = user_id or self.default_user_id
        auth_event_id = self.new_id()
        for tenant_id in tenant_ids:
            existing = self._connection_for(app.client_id, user, tenant_id)
            if existing is None:
                connection = Connection(
                    connection_id=self.new_id(),
                    tenant_id=tenant_id,
                    client_id=app.client_id,
                    user_id=user,
                    auth_event_id=auth_event_id,
                    created_at=now,
                    updated_at=now,
                )
            else:
                connection = replace(existing, auth_event_id=auth_event_id, updated_at=now)
            self.connections[connection.connection_id] = connection
        code = AuthCode(
            code=self._opaque(),
            client_id=app.client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            code_challenge=code_challenge,
            user_id=user,
            auth_event_id=auth_event_id,
            expires_at=now + timedelta(seconds=AUTH_CODE_SECONDS),
        )
        self.codes[code.code] = code
        return code

    def exchange_code(
        self, *, app: OAuthApp, code: str, redirect_uri: str | None, code_verifier: str | None
    ) -> TokenSet:
        found = self.codes.get(code)
        if found is None or found.client_id != app.client_id:
            raise OAuthError("invalid_grant", "unknown authorization code")
        if found.used:
            raise OAuthError("invalid_grant", "authorization code already used")
        if self._clock.now() >= found.expires_at:
            raise OAuthError("invalid_grant", "authorization code expired")
        if redirect_uri != found.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorize request")
        if found.code_challenge is not None:
            if code_verifier is None or not _VERIFIER.match(code_verifier):
                raise OAuthError("invalid_grant", "code_verifier missing or malformed")
            if not hmac.compare_digest(s256(code_verifier), found.code_challenge):
                raise OAuthError("invalid_grant", "code_verifier does not match code_challenge")
        elif code_verifier is not None:
            raise OAuthError("invalid_grant", "code_verifier sent but no code_challenge was")
        self.codes[code] = replace(found, used=True)
        grant = Grant(
            grant_id=self.new_id(),
            client_id=app.client_id,
            user_id=found.user_id,
            scopes=found.scopes,
            auth_event_id=found.auth_event_id,
        )
        self.grants[grant.grant_id] = grant
        return self._issue(grant)

    # -- refresh, rotation and grace ------------------------------------------------------

    def refresh(self, *, app: OAuthApp, refresh_token: str) -> TokenSet:
        """Rotate: a new pair each time; a superseded token works for the grace window."""
        record = self.refresh_tokens.get(refresh_token)
        if record is None or record.revoked:
            raise OAuthError("invalid_grant", "unknown or revoked refresh token")
        grant = self.grants[record.grant_id]
        if grant.revoked or grant.client_id != app.client_id:
            raise OAuthError("invalid_grant", "unknown or revoked refresh token")
        now = self._clock.now()
        if record.superseded_at is not None:
            if (now - record.superseded_at).total_seconds() > REFRESH_GRACE_SECONDS:
                raise OAuthError("invalid_grant", "refresh token was rotated and its grace ended")
        elif now - record.issued_at > timedelta(days=REFRESH_IDLE_DAYS):
            raise OAuthError("invalid_grant", "refresh token expired (unused for 60 days)")
        for token, other in list(self.refresh_tokens.items()):
            if other.grant_id == grant.grant_id and other.superseded_at is None:
                self.refresh_tokens[token] = replace(other, superseded_at=now)
        return self._issue(grant)

    def revoke(self, *, app: OAuthApp, token: str) -> bool:
        """Revoke the grant of a refresh token and remove its user's connections to the app."""
        record = self.refresh_tokens.get(token)
        if record is None:
            return False
        grant = self.grants[record.grant_id]
        if grant.client_id != app.client_id:
            return False
        self.grants[grant.grant_id] = replace(grant, revoked=True)
        for key, other in list(self.refresh_tokens.items()):
            if other.grant_id == grant.grant_id:
                self.refresh_tokens[key] = replace(other, revoked=True)
        for jti, access in list(self.access_tokens.items()):
            if access.grant.grant_id == grant.grant_id:
                del self.access_tokens[jti]
        for connection_id, connection in list(self.connections.items()):
            if connection.client_id == grant.client_id and connection.user_id == grant.user_id:
                del self.connections[connection_id]
        return True

    def expire_access_tokens(self) -> None:
        now = self._clock.now()
        for jti, access in list(self.access_tokens.items()):
            self.access_tokens[jti] = replace(access, expires_at=min(access.expires_at, now))

    def revoke_refresh_tokens(self) -> None:
        for token, record in list(self.refresh_tokens.items()):
            self.refresh_tokens[token] = replace(record, revoked=True)

    # -- access tokens --------------------------------------------------------------------

    def _issue(self, grant: Grant) -> TokenSet:
        now = self._clock.now()
        expires_at = now + timedelta(seconds=ACCESS_TOKEN_SECONDS)
        jti = self.new_id().replace("-", "")
        claims = {
            "iss": ISSUER,
            "aud": f"{ISSUER}/resources",
            "nbf": int(now.timestamp()),
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "client_id": grant.client_id,
            "sub": grant.user_id.replace("-", ""),
            "xero_userid": grant.user_id,
            "authentication_event_id": grant.auth_event_id,
            "jti": jti,
            "scope": list(grant.scopes),
        }
        access_token = jwt.encode(claims, self._secret, algorithm="HS256")
        self.access_tokens[jti] = AccessGrant(grant=grant, jti=jti, expires_at=expires_at)
        refresh: str | None = None
        if "offline_access" in grant.scopes:
            refresh = self._opaque()
            self.refresh_tokens[refresh] = RefreshToken(
                token=refresh, grant_id=grant.grant_id, issued_at=now
            )
        id_token = self._id_token(grant, now) if "openid" in grant.scopes else None
        return TokenSet(
            access_token=access_token,
            expires_in=ACCESS_TOKEN_SECONDS,
            refresh_token=refresh,
            scopes=grant.scopes,
            id_token=id_token,
        )

    def _id_token(self, grant: Grant, now: datetime) -> str:
        claims = {
            "iss": ISSUER,
            "aud": grant.client_id,
            "nbf": int(now.timestamp()),
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=5)).timestamp()),
            "sub": grant.user_id.replace("-", ""),
            "xero_userid": grant.user_id,
            "preferred_username": "sandbox.user@example.com",
            "email": "sandbox.user@example.com",
            "given_name": "Sandbox",
            "family_name": "User",
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> AccessGrant:
        """The grant behind a bearer token, checked against the sandbox clock."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=f"{ISSUER}/resources",
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise TokenRejected("AuthenticationUnsuccessful") from None
        access = self.access_tokens.get(str(claims.get("jti")))
        if access is None:
            raise TokenRejected("AuthenticationUnsuccessful")
        grant = self.grants[access.grant.grant_id]
        if grant.revoked:
            raise TokenRejected("AuthenticationUnsuccessful")
        if self._clock.now() >= access.expires_at:
            stamp = access.expires_at.strftime("%m/%d/%Y %H:%M:%S")
            raise TokenRejected(f"TokenExpired: token expired at {stamp}", expired=True)
        return replace(access, grant=grant)

    # -- connections ----------------------------------------------------------------------

    def _connection_for(self, client_id: str, user_id: str, tenant_id: str) -> Connection | None:
        for connection in self.connections.values():
            if (connection.client_id, connection.user_id, connection.tenant_id) == (
                client_id,
                user_id,
                tenant_id,
            ):
                return connection
        return None

    def connections_of(self, grant: Grant) -> list[Connection]:
        """The connections a grant's tokens see: its user's connections to its app."""
        return [
            c
            for c in self.connections.values()
            if c.client_id == grant.client_id and c.user_id == grant.user_id
        ]

    def is_connected(self, grant: Grant, tenant_id: str) -> bool:
        return self._connection_for(grant.client_id, grant.user_id, tenant_id) is not None

    def drop_tenant(self, tenant_id: str) -> None:
        for connection_id, connection in list(self.connections.items()):
            if connection.tenant_id == tenant_id:
                del self.connections[connection_id]
