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
