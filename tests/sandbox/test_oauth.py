"""The sandbox's OAuth 2.0: authorize, code exchange with PKCE, rotation, grace, revocation."""

from __future__ import annotations

import httpx
import jwt
import pytest

from syncd.sandbox.models import Tenant
from syncd.sandbox.state import SandboxState
from tests.fakes import ManualClock
from tests.sandbox.flow import (
    CLIENT_ID,
    CLIENT_SECRET,
    PKCE_CLIENT_ID,
    PROJECTS,
    REDIRECT,
    SCOPES,
    Session,
    authorize,
    connect,
    pkce_pair,
    query_of,
    token_request,
)


async def _code(client: httpx.AsyncClient, **kwargs: str) -> str:
    answer = await authorize(client, **kwargs)
    assert answer.status_code == 302, answer.text
    return query_of(answer.headers["location"])["code"]


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await token_request(client, {"grant_type": "refresh_token", "refresh_token": token})


async def test_full_pkce_flow_reaches_the_api(
    client: httpx.AsyncClient, state: SandboxState, tenant: Tenant
) -> None:
    """authorize → token → connections → a Projects call works end to end for a PKCE app."""
    state.consent_tenant_ids = [tenant.tenant_id]
    verifier, challenge = pkce_pair()
    answer = await authorize(client, client_id=PKCE_CLIENT_ID, challenge=challenge)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(REDIRECT + "?")
    back = query_of(answer.headers["location"])
    assert back["state"] == "st-1"
    tokens = await client.post(
        "/connect/token",
        data={
            "grant_type": "authorization_code",
            "client_id": PKCE_CLIENT_ID,
            "code": back["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800
    assert set(body) == {
        "access_token",
        "expires_in",
        "token_type",
        "refresh_token",
        "scope",
        "id_token",
    }
    assert body["scope"] == SCOPES
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    connections = (await client.get("/connections", headers=bearer)).json()
    assert [c["tenantId"] for c in connections] == [tenant.tenant_id]
    listed = await client.get(
        f"{PROJECTS}/Projects", headers={**bearer, "Xero-Tenant-Id": tenant.tenant_id}
    )
    assert listed.status_code == 200
    assert listed.json()["items"] == []


async def test_access_token_is_an_hs256_jwt_with_xero_claims(
    session: Session, state: SandboxState, clock: ManualClock
) -> None:
    """The access token carries exp, iat, client_id, xero_userid, the auth event and scopes."""
    header = jwt.get_unverified_header(session.access_token)
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert claims["client_id"] == CLIENT_ID
    assert claims["exp"] - claims["iat"] == 1800
    assert claims["iat"] == int(clock.now().timestamp())
    assert claims["xero_userid"] == state.authority.default_user_id
    assert claims["scope"] == SCOPES.split()
    connection = next(iter(state.authority.connections.values()))
    assert claims["authentication_event_id"] == connection.auth_event_id


async def test_no_refresh_token_without_offline_access_and_no_id_token_without_openid(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    """refresh_token needs offline_access; id_token needs openid (as Xero's AccessToken)."""
    code = await _code(client, scope="projects")
    tokens = await token_request(
        client, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    )
    assert tokens.status_code == 200
    assert "refresh_token" not in tokens.json()
    assert "id_token" not in tokens.json()


async def test_confidential_client_may_authenticate_in_the_body(
    client: httpx.AsyncClient,
) -> None:
    """client_id and client_secret in the form work like HTTP Basic."""
    code = await _code(client)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert (await token_request(client, form, basic=False)).status_code == 200


async def test_wrong_client_secret_is_invalid_client(client: httpx.AsyncClient) -> None:
    """A wrong secret over Basic is 401 invalid_client; in the body it is 400."""
    code = await _code(client)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    basic = await client.post("/connect/token", data=form, auth=httpx.BasicAuth(CLIENT_ID, "wrong"))
    assert basic.status_code == 401
    assert basic.json()["error"] == "invalid_client"
    body = await client.post(
        "/connect/token", data={**form, "client_id": CLIENT_ID, "client_secret": "wrong"}
    )
    assert body.status_code == 400
    assert body.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": "nobody"},
        {"redirect_uri": "http://evil.example/callback"},
        {"redirect_uri": REDIRECT + "/"},
    ],
)
async def test_bad_client_or_redirect_gets_a_page_never_a_redirect(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    """Unknown client or an inexact redirect_uri answers 400 HTML, never a redirect."""
    answer = await authorize(client, **params)
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")


async def test_pkce_app_must_send_a_challenge(client: httpx.AsyncClient) -> None:
    """A PKCE-only app without code_challenge is sent back with error=invalid_request."""
    answer = await authorize(client, client_id=PKCE_CLIENT_ID)
    assert answer.status_code == 302
    back = query_of(answer.headers["location"])
    assert back["error"] == "invalid_request"
    assert back["state"] == "st-1"


async def test_wrong_code_verifier_is_refused(client: httpx.AsyncClient) -> None:
    """A verifier that does not hash to the challenge gives invalid_grant."""
    _, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()
    code = await _code(client, challenge=challenge)
    answer = await token_request(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": other_verifier,
        },
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


async def test_code_is_single_use_and_bound_to_redirect_uri(client: httpx.AsyncClient) -> None:
    """A different redirect_uri is refused; a used code cannot be exchanged again."""
    code = await _code(client)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    wrong = await token_request(client, {**form, "redirect_uri": "http://syncd.test/other"})
    assert wrong.json()["error"] == "invalid_grant"
    assert (await token_request(client, form)).status_code == 200
    again = await token_request(client, form)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_code_expires_after_five_minutes(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """An authorization code older than 300 s of the sandbox clock is refused."""
    code = await _code(client)
    clock.advance(301)
    answer = await token_request(
        client, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    )
    assert answer.json()["error"] == "invalid_grant"


async def test_refresh_rotates_the_refresh_token(
    client: httpx.AsyncClient, session: Session
) -> None:
    """Every refresh rotates: a different refresh token and a working access token."""
    first = await _refresh(client, session.refresh_token)
    assert first.status_code == 200
    rotated = first.json()["refresh_token"]
    assert rotated != session.refresh_token
    second = await _refresh(client, rotated)
    assert second.status_code == 200
    assert second.json()["refresh_token"] not in (rotated, session.refresh_token)
    answer = await client.get(
        "/connections", headers={"Authorization": f"Bearer {second.json()['access_token']}"}
    )
    assert answer.status_code == 200


async def test_old_refresh_token_works_within_grace_and_fails_after(
    client: httpx.AsyncClient, session: Session, clock: ManualClock
) -> None:
    """The superseded token gives a fresh pair for 30 minutes, then invalid_grant."""
    assert (await _refresh(client, session.refresh_token)).status_code == 200
    clock.advance(1799)
    within = await _refresh(client, session.refresh_token)
    assert within.status_code == 200
    assert within.json()["refresh_token"] != session.refresh_token
    clock.advance(2)
    after = await _refresh(client, session.refresh_token)
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"
    assert (await _refresh(client, within.json()["refresh_token"])).status_code == 200


async def test_revoke_refresh_tokens_makes_the_next_refresh_fail(
    client: httpx.AsyncClient, session: Session, state: SandboxState
) -> None:
    """After revoke_refresh_tokens() every refresh is invalid_grant."""
    state.revoke_refresh_tokens()
    answer = await _refresh(client, session.refresh_token)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": answer.json()["error_description"],
    }


async def test_revocation_removes_the_connections_and_the_grant(
    client: httpx.AsyncClient, session: Session
) -> None:
    """POST /connect/revocation answers 200, empties /connections and kills refresh."""
    answer = await client.post(
        "/connect/revocation",
        data={"token": session.refresh_token},
        auth=httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET),
    )
    assert answer.status_code == 200
    assert (await _refresh(client, session.refresh_token)).json()["error"] == "invalid_grant"
    later = await connect(client)
    listed = await client.get("/connections", headers=later.headers())
    assert [c["tenantId"] for c in listed.json()] == [session.tenant_id]


async def test_expired_access_token_is_401_with_invalid_token_challenge(
    client: httpx.AsyncClient, session: Session, clock: ManualClock, state: SandboxState
) -> None:
    """After 1800 s (or expire_access_tokens) API calls answer 401 TokenExpired."""
    clock.advance(1800)
    answer = await client.get(f"{PROJECTS}/Projects", headers=session.headers())
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert answer.json()["Detail"].startswith("TokenExpired")
    fresh = await _refresh(client, session.refresh_token)
    headers = {**session.headers(), "Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert (await client.get(f"{PROJECTS}/Projects", headers=headers)).status_code == 200
    state.expire_access_tokens()
    assert (await client.get(f"{PROJECTS}/Projects", headers=headers)).status_code == 401


async def test_garbage_or_missing_token_is_401(client: httpx.AsyncClient, session: Session) -> None:
    """A token the sandbox did not sign, or none at all, is 401."""
    forged = jwt.encode({"jti": "x"}, "not-the-sandbox-secret-but-long-enough", algorithm="HS256")
    bad = await client.get("/connections", headers={"Authorization": f"Bearer {forged}"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert (await client.get("/connections")).status_code == 401


async def test_tenant_not_connected_is_403(
    client: httpx.AsyncClient, session: Session, state: SandboxState
) -> None:
    """A tenant the grant is not connected to (or no tenant header) answers 403."""
    other = next(t for t in state.tenants.values() if t.tenant_id != session.tenant_id)
    answer = await client.get(f"{PROJECTS}/Projects", headers=session.headers(other.tenant_id))
    assert answer.status_code == 403
    assert answer.json()["Detail"] == "AuthenticationUnsuccessful"
    headers = {"Authorization": f"Bearer {session.access_token}"}
    assert (await client.get(f"{PROJECTS}/Projects", headers=headers)).status_code == 403


async def test_tenant_header_name_is_case_insensitive(
    client: httpx.AsyncClient, session: Session
) -> None:
    """xero-tenant-id, Xero-Tenant-Id and XERO-TENANT-ID all work."""
    bearer = {"Authorization": f"Bearer {session.access_token}"}
    for name in ("xero-tenant-id", "Xero-Tenant-Id", "XERO-TENANT-ID"):
        answer = await client.get(
            f"{PROJECTS}/Projects", headers={**bearer, name: session.tenant_id}
        )
        assert answer.status_code == 200


async def test_missing_scope_is_401_authorization_unsuccessful(
    client: httpx.AsyncClient, state: SandboxState, tenant: Tenant
) -> None:
    """A token without the projects scopes cannot call Projects; read scope cannot write."""
    state.consent_tenant_ids = [tenant.tenant_id]
    contacts_only = await connect(client, scope="offline_access accounting.contacts")
    answer = await client.get(f"{PROJECTS}/Projects", headers=contacts_only.headers())
    assert answer.status_code == 401
    assert answer.json()["Detail"] == "AuthorizationUnsuccessful"
    read_only = await connect(client, scope="offline_access projects.read")
    assert (
        await client.get(f"{PROJECTS}/Projects", headers=read_only.headers())
    ).status_code == 200
    write = await client.post(f"{PROJECTS}/Projects", headers=read_only.headers(), json={})
    assert write.status_code == 401


async def test_connections_shape_and_auth_event_filter(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    """Each consent is one auth event; ?authEventId= lists only that consent's tenants."""
    first, second = list(state.tenants.values())
    state.consent_tenant_ids = [first.tenant_id]
    one = await connect(client)
    state.consent_tenant_ids = [second.tenant_id]
    two = await connect(client)
    listed = (await client.get("/Connections", headers=two.headers())).json()
    assert {c["tenantId"] for c in listed} == {first.tenant_id, second.tenant_id}
    connection = next(c for c in listed if c["tenantId"] == second.tenant_id)
    assert set(connection) == {
        "id",
        "authEventId",
        "tenantId",
        "tenantType",
        "tenantName",
        "createdDateUtc",
        "updatedDateUtc",
    }
    assert connection["tenantType"] == "ORGANISATION"
    assert connection["tenantName"] == "Other Org"
    assert not connection["createdDateUtc"].endswith("Z")
    assert len(connection["createdDateUtc"].split(".")[1]) == 7
    claims = jwt.decode(two.access_token, options={"verify_signature": False})
    assert connection["authEventId"] == claims["authentication_event_id"]
    filtered = await client.get(
        "/connections", params={"authEventId": connection["authEventId"]}, headers=one.headers()
    )
    assert [c["tenantId"] for c in filtered.json()] == [second.tenant_id]


async def test_delete_connection_by_id(client: httpx.AsyncClient, session: Session) -> None:
    """DELETE /connections/{id} answers 204, then 404; the tenant is no longer reachable."""
    connection = (await client.get("/connections", headers=session.headers())).json()[0]
    gone = await client.delete(f"/connections/{connection['id']}", headers=session.headers())
    assert gone.status_code == 204
    again = await client.delete(f"/connections/{connection['id']}", headers=session.headers())
    assert again.status_code == 404
    assert (await client.get(f"{PROJECTS}/Projects", headers=session.headers())).status_code == 403


async def test_reconsent_updates_the_connection(
    client: httpx.AsyncClient, session: Session, clock: ManualClock
) -> None:
    """Consenting again to the same tenant keeps the connection id and bumps updatedDateUtc."""
    before = (await client.get("/connections", headers=session.headers())).json()[0]
    clock.advance(60)
    again = await connect(client)
    after = (await client.get("/connections", headers=again.headers())).json()[0]
    assert after["id"] == before["id"]
    assert after["createdDateUtc"] == before["createdDateUtc"]
    assert after["updatedDateUtc"] != before["updatedDateUtc"]
    assert after["authEventId"] != before["authEventId"]
