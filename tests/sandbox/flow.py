"""The OAuth dance against the in-process sandbox, shared by the sandbox and contract tests."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx

from syncd.sandbox.app import create_sandbox_app
from syncd.sandbox.state import SandboxState

BASE = "http://sandbox.test"
CLIENT_ID = "syncd-test"
CLIENT_SECRET = "sandbox-secret-0123456789"
PKCE_CLIENT_ID = "syncd-pkce"
REDIRECT = "http://syncd.test/api/integrations/xero/callback"
SCOPES = "openid profile email offline_access projects accounting.contacts"
PROJECTS = "/projects.xro/2.0"
ACCOUNTING = "/api.xro/2.0"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def seeded_state(state: SandboxState) -> SandboxState:
    state.register_app(CLIENT_ID, CLIENT_SECRET, [REDIRECT])
    state.register_app(PKCE_CLIENT_ID, None, [REDIRECT])
    return state


def client_for(
    state: SandboxState, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    transport = transport or httpx.ASGITransport(app=create_sandbox_app(state))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def authorize(
    client: httpx.AsyncClient,
    *,
    client_id: str = CLIENT_ID,
    challenge: str | None = None,
    scope: str = SCOPES,
    state: str = "st-1",
    redirect_uri: str = REDIRECT,
) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return await client.get("/identity/connect/authorize", params=params)


async def token_request(
    client: httpx.AsyncClient, form: dict[str, str], *, basic: bool = True
) -> httpx.Response:
    auth = httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET) if basic else None
    return await client.post("/connect/token", data=form, auth=auth)


@dataclass
class Session:
    access_token: str
    refresh_token: str
    tenant_id: str
    body: dict[str, object]

    def headers(self, tenant_id: str | None = None, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.access_token}",
            "Xero-tenant-id": tenant_id or self.tenant_id,
            "Accept": "application/json",
            **extra,
        }


async def connect(client: httpx.AsyncClient, *, scope: str = SCOPES) -> Session:
    """Authorize (PKCE), exchange the code, list connections: a ready API session."""
    verifier, challenge = pkce_pair()
    answer = await authorize(client, challenge=challenge, scope=scope)
    assert answer.status_code == 302, answer.text
    code = query_of(answer.headers["location"])["code"]
    tokens = await token_request(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    connections = await client.get(
        "/connections", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert connections.status_code == 200, connections.text
    return Session(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token", ""),
        tenant_id=connections.json()[0]["tenantId"],
        body=body,
    )
