"""Connecting a practice to Xero, end to end against the sandbox: connect → status → disconnect,
tenant choice, refusals, and the single-flight token refresh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from syncd.domain.errors import NeedsReconnect
from syncd.domain.ids import CompanyId
from syncd.store.db import Database
from syncd.store.models import OAuthGrant, XeroConnection
from syncd.web.auth import Role
from tests.harness import SYNCD, Harness, harness, query_of

A, B = "company-a", "company-b"


@pytest.fixture
async def h(db: Database, fernet_key: str) -> AsyncIterator[Harness]:
    async with harness(db, fernet_key) as ready:
        yield ready


async def status_of(h: Harness, company: str) -> dict[str, object]:
    response = await h.syncd.get(
        "/api/integrations/xero/status", headers=h.auth(Role.PRACTICE_ADMIN, company)
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_connect_status_disconnect(h: Harness) -> None:
    """The whole flow: consent, tenant linked, status shows it, disconnect revokes at Xero."""
    assert (await status_of(h, A))["connected"] is False
    tenant = await h.connect(A, "Alpha Accounting")

    status = await status_of(h, A)
    assert status["connected"] is True
    assert status["tenant_id"] == tenant
    assert status["tenant_name"] == "Alpha Accounting"
    assert status["connected_by"] == "admin-1"
    assert status["needs_reconnect"] is False
    assert status["rate_budget"]["minute_remaining"] <= 60  # type: ignore[index]

    # The connection is usable: a real API call goes through with the stored tokens.
    contact = h.sandbox.add_contact(tenant, "Client One", email="one@example.com")
    found = await h.services.require_xero().contacts.find_by_email(CompanyId(A), "one@example.com")
    assert found is not None and found.contact_id == contact.contact_id

    gone = await h.syncd.post(
        "/api/integrations/xero/disconnect", headers=h.auth(Role.PRACTICE_ADMIN, A)
    )
    assert gone.status_code == 200, gone.text
    assert gone.json()["revoked_at_xero"] is True
    assert (await status_of(h, A))["connected"] is False
    deletes = [e for e in h.sandbox.ledger if e.method == "DELETE" and "/connections/" in e.path]
    revokes = [e for e in h.sandbox.ledger if e.path == "/connect/revocation"]
    # The organisation's connection is removed; the token is never revoked (at Xero that would
    # remove every connection of that user to the app, other practices' included).
    assert (len(deletes), len(revokes)) == (1, 0)
    async with h.services.db.transaction() as s:
        assert (await s.execute(select(OAuthGrant))).scalars().all() == []


async def test_disconnect_when_xero_is_unreachable_still_deactivates(h: Harness) -> None:
    """If Xero can't be told, syncd deactivates anyway and says so."""
    await h.connect(A)
    h.sandbox.faults.fail_next = 10
    h.sandbox.faults.fail_status = 503
    gone = await h.syncd.post(
        "/api/integrations/xero/disconnect", headers=h.auth(Role.PRACTICE_ADMIN, A)
    )
    assert gone.status_code == 200
    assert gone.json()["revoked_at_xero"] is False
    assert "Connected Apps" in gone.json()["message"]
    assert (await status_of(h, A))["connected"] is False


async def test_several_tenants_let_the_admin_choose(h: Harness) -> None:
    """A consent covering two organisations asks which one; the choice is linked, single use."""
    first = h.sandbox.add_tenant("First Org")
    second = h.sandbox.add_tenant("Second Org")
    h.sandbox.consent_tenant_ids = [first.tenant_id, second.tenant_id]
    answer = await h.start_connect(A)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "choose_tenant"
    assert {t["tenant_name"] for t in body["tenants"]} == {"First Org", "Second Org"}
    chosen = await h.syncd.post(
        body["select_url"], json={"selection": body["selection"], "tenant_id": second.tenant_id}
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["tenant_name"] == "Second Org"
    again = await h.syncd.post(
        body["select_url"], json={"selection": body["selection"], "tenant_id": first.tenant_id}
    )
    assert again.status_code == 400
    assert (await status_of(h, A))["tenant_id"] == second.tenant_id


async def still_works(h: Harness, company: str, tenant: str) -> None:
    """The practice's link to Xero still answers a real API call."""
    contact = h.sandbox.add_contact(tenant, f"Probe {company}", email=f"probe@{company}.example")
    found = await h.services.require_xero().contacts.find_by_email(
        CompanyId(company), f"probe@{company}.example"
    )
    assert found is not None and found.contact_id == contact.contact_id


async def test_a_tenant_of_another_practice_is_refused(h: Harness) -> None:
    """Connecting an organisation that another practice holds is a 409, and nothing changes:
    the same Xero user's consent is the other practice's own connection at Xero, so it is
    neither removed nor revoked, and that practice keeps working."""
    tenant = await h.connect(A, "Shared Org")
    h.sandbox.consent_tenant_ids = [tenant]
    refused = await h.start_connect(B)
    assert refused.status_code == 409
    assert "another practice" in refused.json()["error"]
    assert (await status_of(h, B))["connected"] is False
    assert (await status_of(h, A))["connected"] is True
    assert not [e for e in h.sandbox.ledger if e.path == "/connect/revocation"]
    assert not [e for e in h.sandbox.ledger if e.method == "DELETE"]
    await still_works(h, A, tenant)


async def test_a_refused_consent_by_another_user_removes_only_its_own_connection(
    h: Harness,
) -> None:
    """Another Xero user consents to the organisation practice A holds: that user's surplus
    connection is removed (DELETE /connections/{id}), nothing is revoked, A keeps working."""
    tenant = await h.connect(A, "Shared Org")
    h.sandbox.consent_tenant_ids = [tenant]
    h.sandbox.consent_user_id = "xero-user-of-b"
    refused = await h.start_connect(B)
    assert refused.status_code == 409
    deletes = [e for e in h.sandbox.ledger if e.method == "DELETE"]
    assert len(deletes) == 1 and deletes[0].path.startswith("/connections/")
    assert not [e for e in h.sandbox.ledger if e.path == "/connect/revocation"]
    assert [c.user_id for c in h.sandbox.authority.connections.values()] == [
        h.sandbox.authority.default_user_id
    ]
    await still_works(h, A, tenant)


async def test_the_callback_must_come_from_the_browser_that_started(h: Harness) -> None:
    """Someone else opening the consent URL (no cookie, or another browser's) cannot finish the
    connect: 403, the state is not spent, and the admin's own browser still can."""
    tenant = h.sandbox.add_tenant("Org")
    h.sandbox.consent_tenant_ids = [tenant.tenant_id]
    start = await h.syncd.get(
        "/api/integrations/xero/connect", headers=h.auth(Role.PRACTICE_ADMIN, A)
    )
    cookie = start.cookies.get("syncd_connect")
    assert cookie and "httponly" in start.headers["set-cookie"].lower()
    assert "samesite=lax" in start.headers["set-cookie"].lower()
    consent = await h.xero.get(start.headers["location"])
    back = urlsplit(consent.headers["location"])
    callback = f"{back.path}?{back.query}"
    transport = httpx.ASGITransport(app=h.app)
    async with httpx.AsyncClient(transport=transport, base_url=SYNCD) as stranger:
        refused = await stranger.get(callback)
        assert refused.status_code == 403
        assert "another browser" in refused.json()["error"]
        stranger.cookies.set("syncd_connect", "guessed", path="/api/integrations/xero")
        assert (await stranger.get(callback)).status_code == 403
    assert (await status_of(h, A))["connected"] is False
    mine = await h.syncd.get(callback)
    assert mine.status_code == 200, mine.text
    assert (await status_of(h, A))["connected"] is True


async def test_state_is_single_use_and_must_be_genuine(h: Harness) -> None:
    """A replayed callback, a forged state or a missing code gets a clear 400."""
    tenant = h.sandbox.add_tenant("Org")
    h.sandbox.consent_tenant_ids = [tenant.tenant_id]
    start = await h.syncd.get(
        "/api/integrations/xero/connect", headers=h.auth(Role.PRACTICE_ADMIN, A)
    )
    consent = await h.xero.get(start.headers["location"])
    callback = consent.headers["location"].removeprefix("http://syncd.test")
    assert (await h.syncd.get(callback)).status_code == 200
    replay = await h.syncd.get(callback)
    assert replay.status_code == 400
    assert "already used" in replay.json()["error"]
    state = query_of(callback)["state"]
    forged = state[:-3] + ("AAA" if not state.endswith("AAA") else "BBB")
    bad = await h.syncd.get(f"/api/integrations/xero/callback?code=x&state={forged}")
    assert bad.status_code == 400
    assert "state" in bad.json()["error"]
    missing = await h.syncd.get(f"/api/integrations/xero/callback?state={state}")
    assert missing.status_code == 400
    denied = await h.syncd.get("/api/integrations/xero/callback?error=access_denied&state=x")
    assert denied.status_code == 400


async def test_connect_can_answer_json_and_rejects_open_redirects(h: Harness) -> None:
    """`format=json` returns the URL for SPA callers; `return_to` must be a local path."""
    headers = h.auth(Role.PRACTICE_ADMIN, A)
    answer = await h.syncd.get("/api/integrations/xero/connect?format=json", headers=headers)
    assert answer.status_code == 200
    assert answer.json()["authorization_url"].startswith("http://sandbox.test/identity/connect")
    evil = await h.syncd.get(
        "/api/integrations/xero/connect?return_to=https://evil.example/", headers=headers
    )
    assert evil.status_code == 400


async def test_return_to_brings_the_admin_back(h: Harness) -> None:
    """With a return_to path, the callback redirects there marked connected."""
    tenant = h.sandbox.add_tenant("Org")
    h.sandbox.consent_tenant_ids = [tenant.tenant_id]
    start = await h.syncd.get(
        "/api/integrations/xero/connect?return_to=/settings/integrations",
        headers=h.auth(Role.PRACTICE_ADMIN, A),
    )
    consent = await h.xero.get(start.headers["location"])
    back = await h.syncd.get(consent.headers["location"].removeprefix("http://syncd.test"))
    assert back.status_code == 302
    assert back.headers["location"] == "/settings/integrations?xero=connected"


async def test_eight_concurrent_callers_cause_exactly_one_refresh(h: Harness) -> None:
    """With the access token expired, 8 callers at once make 1 token call and all succeed."""
    tenant = await h.connect(A)
    h.sandbox.add_contact(tenant, "C", email="c@example.com")
    await expire_locally(h, A)
    before = h.token_calls()
    xero = h.services.require_xero()
    results = await asyncio.gather(
        *(xero.contacts.find_by_email(CompanyId(A), "c@example.com") for _ in range(8))
    )
    assert all(r is not None for r in results)
    assert h.token_calls() - before == 1
    # And the connection still works afterwards.
    assert await xero.contacts.find_by_email(CompanyId(A), "c@example.com") is not None
    assert h.token_calls() - before == 1


async def test_a_lost_refresh_answer_is_recovered_through_the_grace_window(h: Harness) -> None:
    """Xero rotated the token but the answer was lost: the old token still works (grace)."""
    tenant = await h.connect(A)
    h.sandbox.add_contact(tenant, "C", email="c@example.com")
    await expire_locally(h, A)
    h.sandbox.faults.drop_next = 1
    h.sandbox.faults.path_prefix = "/connect/token"
    xero = h.services.require_xero()
    with pytest.raises(Exception):  # noqa: B017,PT011 - a transient error, retried by the outbox
        await xero.contacts.find_by_email(CompanyId(A), "c@example.com")
    h.sandbox.faults.path_prefix = None
    assert await xero.contacts.find_by_email(CompanyId(A), "c@example.com") is not None
    assert (await status_of(h, A))["connected"] is True


async def test_invalid_grant_marks_the_connection_for_reconnect(h: Harness) -> None:
    """A refresh refused for good is visible in /status and stops calls with NeedsReconnect."""
    await h.connect(A)
    await expire_locally(h, A)
    h.sandbox.revoke_refresh_tokens()
    xero = h.services.require_xero()
    with pytest.raises(NeedsReconnect):
        await xero.contacts.find_by_email(CompanyId(A), "x@example.com")
    status = await status_of(h, A)
    assert status["needs_reconnect"] is True
    assert status["connected"] is False
    calls = h.token_calls()
    with pytest.raises(NeedsReconnect):
        await xero.contacts.find_by_email(CompanyId(A), "x@example.com")
    assert h.token_calls() == calls  # no more refresh attempts once marked
    # Reconnecting heals it.
    await h.connect(A, "Org of company-a")
    assert (await status_of(h, A))["needs_reconnect"] is False


async def expire_locally(h: Harness, company: str) -> None:
    """Make syncd's stored access token look expired (Xero's side expires it too)."""
    h.sandbox.expire_access_tokens()
    async with h.services.db.transaction() as s:
        connection = (
            await s.execute(select(XeroConnection).where(XeroConnection.company_id == company))
        ).scalar_one()
        grant = await s.get(OAuthGrant, connection.grant_id)
        assert grant is not None
        grant.access_expires_at = h.services.clock.now() - timedelta(minutes=1)


async def test_a_browser_chooses_the_tenant_on_a_page(h: Harness) -> None:
    """With several organisations and a browser, the callback shows a form; posting it links
    the choice and brings the admin back to where they started."""
    first = h.sandbox.add_tenant("First Org")
    second = h.sandbox.add_tenant("Second Org")
    h.sandbox.consent_tenant_ids = [first.tenant_id, second.tenant_id]
    start = await h.syncd.get(
        "/api/integrations/xero/connect?return_to=/admin/connection",
        headers=h.auth(Role.PRACTICE_ADMIN, A),
    )
    consent = await h.xero.get(start.headers["location"])
    page = await h.syncd.get(
        consent.headers["location"].removeprefix("http://syncd.test"),
        headers={"accept": "text/html"},
    )
    assert page.status_code == 200
    assert "Second Org" in page.text and 'type="radio"' in page.text
    selection = page.text.split('name="selection" value="')[1].split('"')[0]
    chosen = await h.syncd.post(
        "/api/integrations/xero/connect/select",
        data={"selection": selection, "tenant_id": second.tenant_id},
    )
    assert chosen.status_code == 302
    assert chosen.headers["location"] == "/admin/connection?xero=connected"
    assert (await status_of(h, A))["tenant_id"] == second.tenant_id
