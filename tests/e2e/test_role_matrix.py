"""The role matrix, for every route of the app: each route declares how it is protected, and
every admin route lets super admins (naming a practice) and the practice's own admin in, and
keeps everyone else out. A route added without a declaration fails this test."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from starlette.routing import Mount, Route

from syncd.store.db import Database
from syncd.web.app import all_routes
from syncd.web.auth import Role, access_of
from tests.harness import Harness, harness

OWN, OTHER = "company-own", "company-other"
KNOWN_ACCESS = {"public", "admin", "oauth-state", "xero-signature", "crm-signature", "session"}


def endpoints() -> list[tuple[str, str, object]]:
    """(method, path, endpoint) for every route, mounts included."""
    found: list[tuple[str, str, object]] = []

    def walk(routes: list[object], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount) and route.routes:
                walk(list(route.routes), prefix + route.path)
            elif isinstance(route, Mount):  # a mounted app (static files): declared as a whole
                found.append(("GET", prefix + route.path, route.app))
            elif isinstance(route, Route):
                for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                    found.append((method, prefix + route.path, route.endpoint))

    walk(list(all_routes()), "")
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_route_declares_its_access() -> None:
    """No route is left out of the matrix."""
    undeclared = [f"{m} {p}" for m, p, e in endpoints() if access_of(e) not in KNOWN_ACCESS]
    assert undeclared == []
    assert any(access_of(e) == "admin" for _, _, e in endpoints())


ADMIN_ROUTES = [(m, p) for m, p, e in endpoints() if access_of(e) == "admin"]

# (who, token role, token company, query company_id, allowed?)
CASES = [
    ("super admin naming a practice", Role.SUPER_ADMIN, None, OWN, True),
    ("super admin naming no practice", Role.SUPER_ADMIN, None, None, False),
    ("practice admin, own practice", Role.PRACTICE_ADMIN, OWN, None, True),
    ("practice admin naming own practice", Role.PRACTICE_ADMIN, OWN, OWN, True),
    ("practice admin naming another", Role.PRACTICE_ADMIN, OWN, OTHER, False),
    ("accountant", Role.ACCOUNTANT, OWN, None, False),
    ("client", Role.CLIENT, OWN, None, False),
]


@pytest.fixture
async def h(db: Database, fernet_key: str) -> AsyncIterator[Harness]:
    async with harness(db, fernet_key) as ready:
        yield ready


SESSION_ROUTES = [(m, p) for m, p, e in endpoints() if access_of(e) == "session"]


async def signed_in(h: Harness, role: Role, company: str | None, **params: str) -> int:
    """Exchange a short-lived CRM token for a page session; the status of the hand-off."""
    from datetime import timedelta

    from syncd.web.auth import mint_token

    token = mint_token(
        h.settings, user="admin-1", role=role, company=company, ttl=timedelta(minutes=2)
    )
    answer = await h.syncd.get("/admin/login", params={"token": token, **params})
    return answer.status_code


async def test_only_admins_get_a_page_session(h: Harness) -> None:
    """The hand-off gives practice admins (own practice) and super admins (a named practice)
    a session; accountants and clients are refused; a bad token signs nobody in."""
    assert await signed_in(h, Role.ACCOUNTANT, OWN) == 403
    assert await signed_in(h, Role.CLIENT, OWN) == 403
    assert await signed_in(h, Role.SUPER_ADMIN, None) == 400
    assert "syncd_session" not in h.syncd.cookies
    bad = await h.syncd.get("/admin/login", params={"token": "a.b.c"})
    assert bad.status_code == 401
    assert await signed_in(h, Role.SUPER_ADMIN, None, company_id=OTHER) == 303
    assert (await h.syncd.get("/admin")).status_code == 200
    h.syncd.cookies.clear()
    assert await signed_in(h, Role.PRACTICE_ADMIN, OWN) == 303
    cookie = next(c for c in h.syncd.cookies.jar if c.name == "syncd_session")
    assert cookie.path == "/admin"
    assert cookie.has_nonstandard_attr("HttpOnly")


async def test_a_long_lived_token_is_not_a_hand_off(h: Harness) -> None:
    """Only short-lived tokens (≤ 10 minutes) can open a page session."""
    from datetime import timedelta

    from syncd.web.auth import mint_token

    token = mint_token(
        h.settings, user="u", role=Role.PRACTICE_ADMIN, company=OWN, ttl=timedelta(days=1)
    )
    answer = await h.syncd.get("/admin/login", params={"token": token})
    assert answer.status_code == 401


@pytest.mark.parametrize(("method", "path"), SESSION_ROUTES)
async def test_pages_follow_the_role_matrix(h: Harness, method: str, path: str) -> None:
    """Every page: no session → 401; another practice asked for → 403; a form without the
    session's CSRF token → 403; the practice's own admin gets through."""
    url = concrete(path)
    anonymous = await h.syncd.request(method, url)
    if path == "/admin/logout":
        assert anonymous.status_code == 200  # signing out needs no session
        return
    assert anonymous.status_code == 401
    assert await signed_in(h, Role.PRACTICE_ADMIN, OWN) == 303
    other = await h.syncd.request(method, url, params={"company_id": OTHER})
    assert other.status_code == 403
    if method == "POST":
        forged = await h.syncd.post(url, data={"csrf": "not-the-token"})
        assert forged.status_code == 403
    else:
        own = await h.syncd.get(url)
        assert own.status_code in {200, 404}, own.text[:300]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_admin_routes_follow_the_role_matrix(h: Harness, method: str, path: str) -> None:
    """Allowed callers get past authorisation; the others get 400/401/403 and change nothing."""
    url = concrete(path)
    for who, role, token_company, query_company, allowed in CASES:
        params = {"company_id": query_company} if query_company else {}
        response = await h.syncd.request(
            method, url, params=params, headers=h.auth(role, token_company), json=None
        )
        if allowed:
            assert response.status_code not in {400, 401, 403}, (who, response.text)
        else:
            assert response.status_code in {400, 403}, (who, response.status_code)
    anonymous = await h.syncd.request(method, url)
    assert anonymous.status_code == 401
    assert "Bearer" in anonymous.headers["www-authenticate"]
    forged = await h.syncd.request(method, url, headers={"Authorization": "Bearer a.b.c"})
    assert forged.status_code == 401
