"""Xero OAuth 2.0 (authorization code + PKCE): URL and state building (pure) and the identity
calls (code exchange, refresh, revocation, connections) over the one HTTP client factory.

Errors are translated here once: `invalid_grant` is `InvalidGrant` (a NeedsReconnect), network
trouble and 5xx are transient, other refusals permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from syncd.clock import Clock
from syncd.domain.errors import NeedsReconnect, PermanentError, TransientError
from syncd.domain.ids import CompanyId
from syncd.xero.audit import CallAudit, CallRecord

AUTHORIZE_PATH = "/identity/connect/authorize"
TOKEN_PATH = "/connect/token"  # noqa: S105 - a URL path, not a password
REVOKE_PATH = "/connect/revocation"
CONNECTIONS_PATH = "/connections"


class InvalidGrant(NeedsReconnect):
    """Xero refused the refresh token for good (revoked, expired, or reused after its grace)."""


class StateError(Exception):
    """An OAuth `state` that is forged, malformed, expired or already used."""


# -- pure helpers ----------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier (64 chars of the allowed alphabet) and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)[:64]
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(
    *,
    login_url: str,
    client_id: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    state: str,
    code_challenge: str,
) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{login_url}{AUTHORIZE_PATH}?{query}"


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")


def sign_token(key: bytes, *parts: str) -> str:
    """`part1.part2....mac` with each part base64url-encoded: tamper-evident, not secret."""
    if any(not part for part in parts):
        raise ValueError("signed parts must be non-empty")
    body = ".".join(_b64(part) for part in parts)
    return f"{body}.{_mac(key, body)}"


def unsign_token(key: bytes, token: str, *, parts: int) -> list[str]:
    pieces = token.split(".")
    if len(pieces) != parts + 1 or not all(pieces):
        raise StateError("malformed state")
    body = ".".join(pieces[:-1])
    if not hmac.compare_digest(_mac(key, body), pieces[-1]):
        raise StateError("state signature does not match")
    try:
        return [_unb64(piece) for piece in pieces[:-1]]
    except (ValueError, UnicodeDecodeError):
        raise StateError("malformed state") from None


def state_signing_key(secret: str) -> bytes:
    """A key for signing states, derived from a deployment secret (not the secret itself)."""
    return hashlib.sha256(b"syncd/oauth-state/v1\x00" + secret.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str

    def expires_at(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.expires_in)

    @property
    def auth_event_id(self) -> str | None:
        """Xero access tokens are JWTs naming the consent (`authentication_event_id`).

        Read without verification: it only narrows `/connections` to this consent's tenants.
        """
        try:
            claims = jwt.decode(self.access_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        value = claims.get("authentication_event_id")
        return str(value) if value else None


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantConnection:
    connection_id: str
    tenant_id: str
    tenant_type: str
    tenant_name: str | None
    auth_event_id: str | None


def parse_token_response(data: Any) -> TokenSet:
    try:
        return TokenSet(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            expires_in=int(data.get("expires_in", 1800)),
            scope=str(data.get("scope", "")),
        )
    except (KeyError, TypeError, ValueError):
        raise PermanentError(
            "Xero's token answer had no refresh token: is `offline_access` in XERO_SCOPES?"
        ) from None


def parse_connections(data: Any) -> list[TenantConnection]:
    if not isinstance(data, list):
        raise PermanentError("Xero's /connections answer was not a list")
    return [
        TenantConnection(
            connection_id=str(item["id"]),
            tenant_id=str(item["tenantId"]),
            tenant_type=str(item.get("tenantType") or "ORGANISATION"),
            tenant_name=item.get("tenantName"),
            auth_event_id=item.get("authEventId"),
        )
        for item in data
        if isinstance(item, dict) and item.get("id") and item.get("tenantId")
    ]


# -- identity calls --------------------------------------------------------------------------


class IdentityClient:
    """Xero's identity service and /connections, for one OAuth app."""

    def __init__(
        self,
        *,
        identity: httpx.AsyncClient,
        api: httpx.AsyncClient,
        client_id: str,
        client_secret: str | None,
        audit: CallAudit,
        clock: Clock,
    ) -> None:
        self._identity = identity
        self._api = api
        self._client_id = client_id
        self._client_secret = client_secret
        self._audit = audit
        self._clock = clock

    def _client_auth(self, form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        if self._client_secret is None:
            return {**form, "client_id": self._client_id}, {}
        basic = base64.b64encode(f"{self._client_id}:{self._client_secret}".encode()).decode()
        return form, {"Authorization": f"Basic {basic}"}

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        company: CompanyId | None,
        **kwargs: Any,
    ) -> httpx.Response:
        started = time.monotonic()
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            await self._record(company, method, path, None, started, type(exc).__name__)
            raise TransientError(f"Xero identity unreachable ({type(exc).__name__})") from exc
        await self._record(company, method, path, response.status_code, started, None)
        return response

    async def _record(
        self,
        company: CompanyId | None,
        method: str,
        path: str,
        status: int | None,
        started: float,
        error: str | None,
    ) -> None:
        await self._audit.record(
            CallRecord(
                company=company,
                method=method,
                path=path,
                status=status,
                error=error,
                duration_ms=int((time.monotonic() - started) * 1000),
                at=self._clock.now(),
            )
        )

    async def _token_call(self, form: dict[str, str], company: CompanyId | None) -> TokenSet:
        body, headers = self._client_auth(form)
        response = await self._send(
            self._identity, "POST", TOKEN_PATH, company, data=body, headers=headers
        )
        if response.status_code == 200:
            return parse_token_response(response.json())
        error = _oauth_error(response)
        if error == "invalid_grant":
            raise InvalidGrant("Xero refused the grant (invalid_grant): reconnect needed")
        if response.status_code >= 500:
            raise TransientError(f"Xero identity answered {response.status_code}")
        raise PermanentError(f"Xero identity refused the request: {error or response.status_code}")

    async def exchange_code(
        self, *, code: str, code_verifier: str, redirect_uri: str, company: CompanyId
    ) -> TokenSet:
        return await self._token_call(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            },
            company,
        )

    async def refresh(self, refresh_token: str, *, company: CompanyId | None) -> TokenSet:
        return await self._token_call(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, company
        )

    async def revoke(self, refresh_token: str, *, company: CompanyId | None) -> None:
        body, headers = self._client_auth({"token": refresh_token})
        response = await self._send(
            self._identity, "POST", REVOKE_PATH, company, data=body, headers=headers
        )
        if response.status_code >= 500:
            raise TransientError(f"Xero revocation answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentError(f"Xero refused the revocation ({response.status_code})")

    async def connections(
        self, access_token: str, *, company: CompanyId | None, auth_event_id: str | None = None
    ) -> list[TenantConnection]:
        params = {"authEventId": auth_event_id} if auth_event_id else None
        response = await self._send(
            self._api,
            "GET",
            CONNECTIONS_PATH,
            company,
            params=params,
            headers={"Authorization": f"Bearer {access_token}"},
        )
        _raise_for_api(response)
        return parse_connections(response.json())

    async def delete_connection(
        self, access_token: str, connection_id: str, *, company: CompanyId | None
    ) -> None:
        response = await self._send(
            self._api,
            "DELETE",
            f"{CONNECTIONS_PATH}/{connection_id}",
            company,
            headers={"Authorization": f"Bearer {access_token}"},
        )
        if response.status_code == 404:
            return  # already gone: the goal is met
        _raise_for_api(response)


def _oauth_error(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return str(data.get("error")) if isinstance(data, dict) and data.get("error") else None


def _raise_for_api(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    if response.status_code in {401, 403}:
        raise NeedsReconnect(f"Xero refused the token ({response.status_code})")
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"Xero answered {response.status_code}")
    raise PermanentError(f"Xero answered {response.status_code}")
