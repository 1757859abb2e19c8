"""Console sessions against the real app and database: a sign-in link works once, sign-out is a
CSRF-checked POST that kills the cookie server-side, a link opened from another site signs
nobody in (refused, or a one-time confirmation form), the Secure flag follows
SYNCD_COOKIE_SECURE, and every page carries the browser security headers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.routing import Route

from syncd.domain.ids import CompanyId
from syncd.store.console_sessions import ConsoleSessionRepository, HandoffRepository
from syncd.store.db import Database
from syncd.store.models import ConsoleHandoff, ConsoleSession
from syncd.web.app import all_routes, create_app
from syncd.web.auth import Role, access_of, mint_token
from syncd.web.session import COOKIE, digest
from syncd.xero.webhooks import sign
from tests.harness import SYNCD, Harness, harness

A, B = "company-a", "company-b"
CRM = "https://crm.example"
FROM_CRM = {"referer": f"{CRM}/practices/a/settings/integrations"}
NONCE = re.compile(r'name="nonce" value="([^"]+)"')
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}


@pytest.fixture
async def h(db: Database, fernet_key: str) -> AsyncIterator[Harness]:
    """syncd told where the CRM is (SYNCD_CRM_URL)."""
    async with harness(db, fernet_key, crm_url=CRM) as ready:
        yield ready


@asynccontextmanager
async def browser(h: Harness, base_url: str = SYNCD) -> AsyncIterator[httpx.AsyncClient]:
    """Another browser on the same syncd: its own cookie jar."""
    app = create_app(h.settings, services=h.services, run_scheduler=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as c:
        yield c


def link(h: Harness, company: str | None = A, role: Role = Role.PRACTICE_ADMIN) -> str:
    """A CRM sign-in link's token: five minutes, its own jti."""
    return mint_token(
        h.settings, user="admin-1", role=role, company=company, ttl=timedelta(minutes=5)
    )


async def sign_in(client: httpx.AsyncClient, token: str, **params: str) -> httpx.Response:
    """Open the link as the CRM sends the admin there (its Referer)."""
    return await client.get("/admin/login", params={"token": token, **params}, headers=FROM_CRM)


async def signed_in_client(h: Harness, client: httpx.AsyncClient) -> str:
    """Sign `client` in to practice A; the session's CSRF token."""
    answer = await sign_in(client, link(h))
    assert answer.status_code == 303, answer.text
    page = await client.get("/admin/settings")
    assert page.status_code == 200
    match = CSRF.search(page.text)
    assert match is not None
    return match[1]


def set_cookies(response: httpx.Response) -> dict[str, dict[str, Any]]:
    """Each Set-Cookie of the answer: name → its attributes (and `value`)."""
    found: dict[str, dict[str, Any]] = {}
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            found[name] = {"value": morsel.value, **{k: v for k, v in morsel.items() if v}}
    return found


async def count(h: Harness, model: type[Any]) -> int:
    async with h.services.db.transaction() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


# -- single use --------------------------------------------------------------------------------


async def test_a_sign_in_link_works_once(h: Harness) -> None:
    """The first use signs in; the same link again (any browser) is the signed-out page."""
    token = link(h)
    first = await sign_in(h.syncd, token)
    assert first.status_code == 303
    assert first.headers["location"] == "/admin"
    assert (await h.syncd.get("/admin")).status_code == 200
    async with browser(h) as other:
        again = await sign_in(other, token)
        assert again.status_code == 401
        assert "already been used" in again.text
        assert COOKIE not in set_cookies(again)
        assert (await other.get("/admin")).status_code == 401
    assert await count(h, ConsoleSession) == 1


async def test_racing_uses_of_one_link_open_one_session(h: Harness) -> None:
    """Four browsers opening the same link at once: one signs in, three are refused."""
    token = link(h)
    async with browser(h) as b1, browser(h) as b2, browser(h) as b3, browser(h) as b4:
        answers = await asyncio.gather(*(sign_in(b, token) for b in (b1, b2, b3, b4)))
    assert sorted(a.status_code for a in answers) == [303, 401, 401, 401]
    assert await count(h, ConsoleSession) == 1


async def test_a_super_admin_link_opens_one_practice_only(h: Harness) -> None:
    """A super admin's link used for practice A cannot then open practice B."""
    token = link(h, company=None, role=Role.SUPER_ADMIN)
    assert (await sign_in(h.syncd, token, company_id=A)).status_code == 303
    async with browser(h) as other:
        assert (await sign_in(other, token, company_id=B)).status_code == 401


async def test_a_link_without_jti_is_remembered_by_its_hash(h: Harness) -> None:
    """A CRM token without `jti` is single use all the same (keyed by the token's hash)."""
    import jwt

    assert h.settings.jwt_secret is not None
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": "admin-1", "role": "practice_admin", "company_id": A, "exp": now + 300}
    token = jwt.encode(claims, h.settings.jwt_secret.reveal(), algorithm="HS256")
    assert (await sign_in(h.syncd, token)).status_code == 303
    async with browser(h) as other:
        assert (await sign_in(other, token)).status_code == 401
    async with h.services.db.transaction() as s:
        [row] = (await s.execute(select(ConsoleHandoff))).scalars().all()
    assert row.id == digest(f"token\x00{token}")
    assert token not in {row.id, row.nonce_hash, row.browser_hash}


async def test_expired_records_are_dropped_when_someone_signs_in(h: Harness) -> None:
    """Links and sessions past their expiry are deleted on the next sign-in."""
    past = datetime.now(UTC) - timedelta(hours=9)
    async with h.services.db.transaction() as s:
        await HandoffRepository(s).claim(
            company=CompanyId(B), handoff_id="old", user="u", expires_at=past, now=past
        )
        await ConsoleSessionRepository(s).add(
            company=CompanyId(B),
            session=ConsoleSession(
                id="old-session",
                company_id=B,
                user_id="u",
                role="practice_admin",
                csrf="c",
                created_at=past,
                expires_at=past + timedelta(hours=8),
            ),
        )
    assert (await sign_in(h.syncd, link(h))).status_code == 303
    async with h.services.db.transaction() as s:
        handoffs = {r.id for r in (await s.execute(select(ConsoleHandoff))).scalars()}
        sessions = {r.id for r in (await s.execute(select(ConsoleSession))).scalars()}
    assert "old" not in handoffs and len(handoffs) == 1
    assert "old-session" not in sessions and len(sessions) == 1


# -- sign-out ----------------------------------------------------------------------------------


async def test_sign_out_kills_the_cookie_server_side(h: Harness) -> None:
    """After sign-out, a copy of the old cookie (another browser) no longer opens any page."""
    csrf = await signed_in_client(h, h.syncd)
    stolen = h.syncd.cookies[COOKIE]
    out = await h.syncd.post("/admin/logout", data={"csrf": csrf})
    assert out.status_code == 200
    assert "you have signed out" in out.text.lower()
    assert set_cookies(out)[COOKIE]["value"] in {"", '""'}
    async with browser(h) as thief:
        thief.cookies.set(COOKIE, stolen, domain="syncd.test", path="/admin")
        dead = await thief.get("/admin")
        assert dead.status_code == 401
        assert COOKIE in set_cookies(dead)  # the dead cookie is cleared
        assert (await thief.get("/admin/settings")).status_code == 401
    async with h.services.db.transaction() as s:
        [row] = (await s.execute(select(ConsoleSession))).scalars().all()
    assert row.revoked_at is not None


async def test_get_logout_does_not_sign_out(h: Harness) -> None:
    """GET /admin/logout only offers the POST button; a POST without the CSRF token, or from
    another origin, is refused; the session lives on."""
    csrf = await signed_in_client(h, h.syncd)
    offered = await h.syncd.get("/admin/logout")
    assert offered.status_code == 200
    assert 'action="/admin/logout"' in offered.text and 'method="post"' in offered.text
    assert COOKIE not in set_cookies(offered)
    forged = await h.syncd.post("/admin/logout", data={"csrf": "not-the-token"})
    assert forged.status_code == 403
    foreign = await h.syncd.post(
        "/admin/logout", data={"csrf": csrf}, headers={"origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert (await h.syncd.get("/admin")).status_code == 200
    async with h.services.db.transaction() as s:
        [row] = (await s.execute(select(ConsoleSession))).scalars().all()
    assert row.revoked_at is None


async def test_a_cookie_names_its_practice_only(h: Harness) -> None:
    """The session repository asked for another practice does not find the session."""
    await signed_in_client(h, h.syncd)
    async with h.services.db.transaction() as s:
        [row] = (await s.execute(select(ConsoleSession))).scalars().all()
        repository = ConsoleSessionRepository(s)
        now = datetime.now(UTC)
        assert await repository.active(company=CompanyId(B), session_id=row.id, now=now) is None
        assert not await repository.revoke(company=CompanyId(B), session_id=row.id, now=now)
        assert await repository.active(company=CompanyId(A), session_id=row.id, now=now)


# -- where the browser came from ---------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"referer": "https://evil.example/crm.example/page"},
        {"origin": "https://evil.example"},
        {"referer": "http://crm.example/"},  # the CRM's host over another scheme
        {"referer": "https://crm.example.evil.example/"},
    ],
)
async def test_a_link_from_another_site_is_refused(h: Harness, headers: dict[str, str]) -> None:
    """With SYNCD_CRM_URL set, a link whose Referer/Origin is another site's is a 403 page;
    nothing is written, so the admin's own use from the CRM still works."""
    token = link(h)
    refused = await h.syncd.get("/admin/login", params={"token": token}, headers=headers)
    assert refused.status_code == 403
    assert "open them from the CRM" in refused.text
    assert set_cookies(refused) == {}
    assert await count(h, ConsoleHandoff) == 0
    assert (await sign_in(h.syncd, token)).status_code == 303


async def confirm_form(client: httpx.AsyncClient, token: str, **headers: str) -> str:
    """Open the link without a Referer: the confirmation page; its nonce."""
    page = await client.get("/admin/login", params={"token": token}, headers=headers)
    assert page.status_code == 200, page.text
    assert COOKIE not in set_cookies(page)
    assert page.headers["cache-control"] == "no-store"
    match = NONCE.search(page.text)
    assert match is not None
    return match[1]


async def test_without_a_referer_the_link_asks_to_confirm(h: Harness) -> None:
    """No Referer: a form with a one-time nonce, no session yet; sending it signs in once, and
    the same form sent again (a replayed nonce) is refused."""
    token = link(h)
    nonce = await confirm_form(h.syncd, token)
    assert (await h.syncd.get("/admin")).status_code == 401
    confirmed = await h.syncd.post("/admin/login", data={"token": token, "nonce": nonce})
    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == "/admin"
    assert (await h.syncd.get("/admin")).status_code == 200
    replayed = await h.syncd.post("/admin/login", data={"token": token, "nonce": nonce})
    assert replayed.status_code == 401
    assert "already been used" in replayed.text
    assert (await h.syncd.get("/admin/login", params={"token": token})).status_code == 401
    assert await count(h, ConsoleSession) == 1


async def test_a_stale_or_foreign_confirmation_is_refused(h: Harness) -> None:
    """The nonce must be the latest one shown, sent back from the same browser, from this
    origin; each refusal leaves the link usable."""
    token = link(h)
    older = await confirm_form(h.syncd, token)
    nonce = await confirm_form(h.syncd, token)
    assert older != nonce
    stale = await h.syncd.post("/admin/login", data={"token": token, "nonce": older})
    assert stale.status_code == 403
    wrong = await h.syncd.post("/admin/login", data={"token": token, "nonce": "guess"})
    assert wrong.status_code == 403
    async with browser(h) as other:  # the form's nonce without the browser's cookie
        elsewhere = await other.post("/admin/login", data={"token": token, "nonce": nonce})
        assert elsewhere.status_code == 403
    foreign = await h.syncd.post(
        "/admin/login",
        data={"token": token, "nonce": nonce},
        headers={"origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert await count(h, ConsoleSession) == 0
    ok = await h.syncd.post("/admin/login", data={"token": token, "nonce": nonce})
    assert ok.status_code == 303


async def test_without_a_crm_url_every_link_asks_to_confirm(db: Database, fernet_key: str) -> None:
    """SYNCD_CRM_URL unset: whatever the Referer, a GET signs nobody in; the form does."""
    async with harness(db, fernet_key) as h:
        token = link(h)
        nonce = await confirm_form(h.syncd, token, referer="https://evil.example/")
        assert (await h.syncd.get("/admin")).status_code == 401
        confirmed = await h.syncd.post("/admin/login", data={"token": token, "nonce": nonce})
        assert confirmed.status_code == 303


async def test_a_confirmation_for_a_used_link_is_refused(h: Harness) -> None:
    """A form shown before the link was used from the CRM is dead afterwards."""
    token = link(h)
    nonce = await confirm_form(h.syncd, token)
    assert (await sign_in(h.syncd, token)).status_code == 303
    late = await h.syncd.post("/admin/login", data={"token": token, "nonce": nonce})
    assert late.status_code == 401


# -- the Secure flag ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "base_url", "secure"),
    [
        ("auto", "http://syncd.test", False),
        ("auto", "https://syncd.test", True),
        ("always", "http://syncd.test", True),  # behind a TLS-terminating proxy
        ("never", "https://syncd.test", False),
    ],
)
async def test_the_secure_flag_follows_the_setting(
    db: Database, fernet_key: str, setting: str, base_url: str, secure: bool
) -> None:
    """SYNCD_COOKIE_SECURE: auto (the request's scheme), always, never — on the session cookie,
    the confirmation form's cookie and the sign-out's clearing."""
    async with harness(db, fernet_key, crm_url=CRM, cookie_secure=setting) as h:
        async with browser(h, base_url) as client:
            form = await client.get("/admin/login", params={"token": link(h)})
            assert ("secure" in set_cookies(form)["syncd_login"]) is secure
            answer = await sign_in(client, link(h))
            cookie = set_cookies(answer)[COOKIE]
            assert ("secure" in cookie) is secure
            assert cookie["httponly"] and cookie["samesite"] == "lax"
            assert cookie["path"] == "/admin"
        async with browser(h, base_url) as client:
            cleared = await client.post("/admin/logout")
            assert ("secure" in set_cookies(cleared)[COOKIE]) is secure


# -- security headers --------------------------------------------------------------------------


def page_paths() -> list[str]:
    """Every GET page of the console (session pages, the sign-in and sign-out pages)."""
    return sorted(
        {
            re.sub(r"\{[^}]+\}", "1", route.path)
            for route in all_routes()
            if isinstance(route, Route)
            and access_of(route.endpoint) in {"session", "oauth-state"}
            and route.path.startswith("/admin")
            and "GET" in (route.methods or ())
        }
    )


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.url, name)
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


async def test_every_page_carries_the_security_headers(h: Harness) -> None:
    """Signed out and signed in, every console page (whatever its status) sends CSP, framing,
    referrer and nosniff headers; so do static files and JSON answers."""
    paths = page_paths()
    assert {"/admin", "/admin/login", "/admin/logout", "/admin/settings"} <= set(paths)
    for path in paths:
        assert_security_headers(await h.syncd.get(path))
    await signed_in_client(h, h.syncd)
    for path in paths:
        answer = await h.syncd.get(path)
        assert answer.status_code < 500, (path, answer.status_code)
        assert_security_headers(answer)
    assert_security_headers(await h.syncd.get("/static/syncd.js"))
    assert_security_headers(
        await h.syncd.get("/api/integrations/xero/status", headers=h.auth(Role.PRACTICE_ADMIN, A))
    )


async def test_the_pages_need_no_inline_code(h: Harness) -> None:
    """The CSP forbids inline scripts and styles: no page uses them."""
    await signed_in_client(h, h.syncd)
    for path in page_paths():
        text = (await h.syncd.get(path)).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", text), path


async def test_the_webhook_answer_stays_empty(h: Harness) -> None:
    """The webhook's acknowledgement: no body, no cookie, and none of the page headers (it is
    read by Xero's servers, never rendered; it skips the middleware for speed)."""
    body = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"x"}'
    assert h.settings.xero_webhook_key is not None
    answer = await h.syncd.post(
        "/api/integrations/xero/webhook",
        content=body,
        headers={"x-xero-signature": sign(body, h.settings.xero_webhook_key.reveal())},
    )
    assert answer.status_code == 200
    assert answer.content == b""
    assert "set-cookie" not in answer.headers
    assert not {*SECURITY_HEADERS, "content-security-policy"} & set(answer.headers)
