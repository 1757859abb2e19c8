"""The role matrix, for every route of the app: each route declares how it is protected and what
an allowed caller gets. Every admin route answers super admins (naming a practice) and the
practice's own admin with its success status exactly, on a practice with something to act on;
every page does the same for the practice's admin. Everyone else is refused with the exact
status, and a refused call changes nothing: every table of syncd's database, the CRM's writes
and the calls Xero saw are the same after it as before. A route added without a declaration
fails this test."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from starlette.routing import Mount, Route

from syncd.crm.memory import MemoryCrm
from syncd.domain.ids import CompanyId
from syncd.domain.statuses import ConflictPolicy
from syncd.pipeline.outbox import NewTask, enqueue
from syncd.pipeline.reconcile import queue_run
from syncd.store.db import Database
from syncd.store.models import Base, OutboxTask, ReconciliationFinding
from syncd.web.app import all_routes
from syncd.web.auth import Role, access_of, mint_token
from tests.harness import SANDBOX, Harness, harness

OWN, OTHER = CompanyId("company-own"), CompanyId("company-other")
CRM_URL = "http://crm.test"  # SYNCD_CRM_URL: sign-in links come from here
KNOWN_ACCESS = {
    "public",
    "admin",
    "oauth-state",
    "xero-signature",
    "crm-signature",
    "session",
    "metrics-token",
}
API = "/api/integrations/xero"


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


def test_every_route_declares_its_access() -> None:
    """No route is left out of the matrix."""
    undeclared = [f"{m} {p}" for m, p, e in endpoints() if access_of(e) not in KNOWN_ACCESS]
    assert undeclared == []
    assert any(access_of(e) == "admin" for _, _, e in endpoints())


ADMIN_ROUTES = [(m, p) for m, p, e in endpoints() if access_of(e) == "admin"]
SESSION_ROUTES = [(m, p) for m, p, e in endpoints() if access_of(e) == "session"]

# (who, token role, token company, query company_id, refused with — None: allowed)
CASES = [
    ("super admin naming a practice", Role.SUPER_ADMIN, None, OWN, None),
    ("super admin naming no practice", Role.SUPER_ADMIN, None, None, 400),
    ("practice admin, own practice", Role.PRACTICE_ADMIN, OWN, None, None),
    ("practice admin naming own practice", Role.PRACTICE_ADMIN, OWN, OWN, None),
    ("practice admin naming another", Role.PRACTICE_ADMIN, OWN, OTHER, 403),
    ("accountant", Role.ACCOUNTANT, OWN, None, 403),
    ("client", Role.CLIENT, OWN, None, 403),
]


# -- the practice under test -------------------------------------------------------------------


@dataclass(slots=True)
class World:
    """OWN, connected, with an accountant, a client and a request in the CRM and a Xero user
    and contact to map them to; OTHER connected beside it. `turn` makes each change new."""

    tenant: str
    accountant: str
    staff: str
    client: str
    contact: str
    service: str
    request: str
    turn: int = 0
    runs: list[str] = field(default_factory=list)


@pytest.fixture
def crm() -> MemoryCrm:
    memory = MemoryCrm()
    memory.add_company(name="Own & Co", company_id=OWN)
    memory.add_company(name="Other & Co", company_id=OTHER)
    return memory


@pytest.fixture
async def h(db: Database, fernet_key: str, crm: MemoryCrm) -> AsyncIterator[Harness]:
    async with harness(db, fernet_key, crm=crm, crm_url=CRM_URL) as ready:
        yield ready


@pytest.fixture
async def world(h: Harness, crm: MemoryCrm) -> World:
    tenant = await h.connect(OWN, "Own Org")
    await h.connect(OTHER, "Other Org")
    accountant = crm.add_person(
        company=OWN, role="accountant", email="ann@own.example", first_name="Ann", last_name="Lee"
    )
    staff = h.sandbox.add_user(tenant, "Ann Lee", "ann@own.example")["userId"]
    client = crm.add_person(
        company=OWN, role="client", email="cy@client.example", first_name="Cy", last_name="Ng"
    )
    contact = h.sandbox.add_contact(tenant, "Cy Ng", email="cy@client.example").contact_id
    service = crm.add_service(company=OWN, name="Tax return", base_price=Decimal("350.00"))
    request = crm.add_request(
        company=OWN,
        client_id=client,
        service_id=service,
        now=h.services.clock.now(),
        due_date=date(2026, 12, 31),
    )
    return World(
        tenant=tenant,
        accountant=accountant,
        staff=staff,
        client=client,
        contact=contact,
        service=str(service),
        request=request,
    )


# -- what a call acts on: made afresh before every call, allowed or not ------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """The path parameters and the body of one call."""

    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] | None = None


Arrange = Callable[[Harness, World], Awaitable[Target]]


async def nothing(h: Harness, w: World) -> Target:
    return Target()


async def connected(h: Harness, w: World) -> Target:
    """OWN connected (a disconnect before may have ended it)."""
    status = await h.syncd.get(f"{API}/status", headers=h.auth(Role.PRACTICE_ADMIN, OWN))
    if not status.json().get("connected"):
        await h.connect(OWN, "Own Org")
    return Target()


async def a_task(h: Harness, w: World, *, dead: bool = False) -> Target:
    w.turn += 1
    now = h.services.clock.now()
    async with h.services.db.transaction() as session:
        task_id = await enqueue(
            session,
            NewTask(
                company=OWN,
                kind="matrix",
                key=f"matrix:{w.turn}",
                run_after=now + timedelta(days=1),
            ),
            now=now,
        )
        assert task_id is not None
        if dead:
            await session.execute(
                update(OutboxTask).where(OutboxTask.id == task_id).values(state="dead")
            )
    return Target(params={"task_id": str(task_id)})


async def a_dead_task(h: Harness, w: World) -> Target:
    return await a_task(h, w, dead=True)


async def a_run(h: Harness, w: World) -> Target:
    if not w.runs:
        run = await queue_run(
            h.services.db,
            OWN,
            trigger="manual",
            dry_run=True,
            by="admin-1",
            now=h.services.clock.now(),
        )
        w.runs.append(run.id)
    return Target(params={"run_id": w.runs[0]})


async def an_open_finding(h: Harness, w: World) -> Target:
    run_id = (await a_run(h, w)).params["run_id"]
    async with h.services.db.transaction() as session:
        finding = ReconciliationFinding(
            company_id=OWN,
            run_id=run_id,
            kind="missing_job",
            severity="warning",
            request_id=w.request,
            subject=f"request:{w.request}",
            action="create_job",
            state="open",
            created_at=h.services.clock.now(),
        )
        session.add(finding)
        await session.flush()
        finding_id = finding.id
    return Target(
        params={"run_id": run_id, "finding_id": str(finding_id)},
        json={"resolution": "ignore"},
        form={"resolution": "ignore"},
    )


async def the_request(h: Harness, w: World) -> Target:
    return Target(params={"request_id": w.request})


async def a_staff_change(h: Harness, w: World) -> Target:
    w.turn += 1
    staff = w.staff if w.turn % 2 else None
    return Target(
        json={"mappings": [{"accountant_id": w.accountant, "staff_id": staff}]},
        form={f"map:{w.accountant}": staff or ""},
    )


async def a_contact_change(h: Harness, w: World) -> Target:
    w.turn += 1
    contact = w.contact if w.turn % 2 else None
    return Target(
        json={"mappings": [{"client_id": w.client, "contact_id": contact}]},
        form={f"map:{w.client}": contact or ""},
    )


async def a_service_unmapped(h: Harness, w: World) -> Target:
    """A Projects practice has no job templates to map services to: a service can only be
    saved as not mapped."""
    return Target(
        json={"mappings": [{"service_id": w.service, "template_id": None}]},
        form={f"map:{w.service}": ""},
    )


async def a_settings_change(h: Harness, w: World) -> Target:
    w.turn += 1
    policy = list(ConflictPolicy)[w.turn % len(ConflictPolicy)].value
    return Target(json={"conflict_policy": policy}, form={"conflict_policy": policy})


# (expected status for an allowed caller, what the call acts on)
API_MATRIX: dict[tuple[str, str], tuple[int, Arrange]] = {
    ("GET", f"{API}/connect"): (302, nothing),
    ("POST", f"{API}/disconnect"): (200, connected),
    ("GET", f"{API}/status"): (200, nothing),
    ("GET", f"{API}/sync-logs"): (200, nothing),
    ("GET", f"{API}/sync-logs/{{task_id}}"): (200, a_task),
    ("POST", f"{API}/sync-logs/{{task_id}}/retry"): (200, a_dead_task),
    ("POST", f"{API}/sync-job/{{request_id}}"): (202, the_request),
    ("POST", f"{API}/reconcile"): (202, nothing),
    ("GET", f"{API}/reconciliations"): (200, nothing),
    ("GET", f"{API}/reconciliations/{{run_id}}"): (200, a_run),
    ("POST", f"{API}/findings/{{finding_id}}/resolve"): (200, an_open_finding),
    ("GET", f"{API}/mappings/staff"): (200, nothing),
    ("PUT", f"{API}/mappings/staff"): (200, a_staff_change),
    ("GET", f"{API}/mappings/services"): (200, nothing),
    ("PUT", f"{API}/mappings/services"): (200, a_service_unmapped),
    ("GET", f"{API}/mappings/contacts"): (200, nothing),
    ("PUT", f"{API}/mappings/contacts"): (200, a_contact_change),
    ("GET", f"{API}/settings"): (200, nothing),
    ("PUT", f"{API}/settings"): (200, a_settings_change),
}


@dataclass(frozen=True, slots=True)
class Page:
    """What the practice's admin gets: a status, and for a form, where it leads (a prefix of
    the redirect; a form that failed leads back with `problem=`)."""

    status: int
    arrange: Arrange = nothing
    leads_to: str | None = None


PAGE_MATRIX: dict[tuple[str, str], Page] = {
    ("GET", "/admin/logout"): Page(200),  # offers the sign-out button
    ("POST", "/admin/logout"): Page(200),  # signed out
    ("GET", "/admin"): Page(200),
    ("GET", "/admin/connection"): Page(200),
    ("POST", "/admin/connection/connect"): Page(303, leads_to=f"{SANDBOX}/"),
    ("POST", "/admin/connection/disconnect"): Page(303, connected, "/admin/connection?flash="),
    ("GET", "/admin/settings"): Page(200),
    ("POST", "/admin/settings"): Page(303, a_settings_change, "/admin/settings?flash="),
    ("GET", "/admin/staff"): Page(200),
    ("POST", "/admin/staff"): Page(303, a_staff_change, "/admin/staff?flash="),
    ("GET", "/admin/services"): Page(200),
    ("POST", "/admin/services"): Page(303, a_service_unmapped, "/admin/services?flash="),
    ("GET", "/admin/clients"): Page(200),
    ("POST", "/admin/clients"): Page(303, a_contact_change, "/admin/clients?flash="),
    ("GET", "/admin/sync-log"): Page(200),
    ("GET", "/admin/sync-log/{task_id}"): Page(200, a_task),
    ("POST", "/admin/sync-log/{task_id}/retry"): Page(303, a_dead_task, "/admin/sync-log?flash="),
    ("GET", "/admin/reconciliations"): Page(200),
    ("POST", "/admin/reconciliations"): Page(303, nothing, "/admin/reconciliations/"),
    ("GET", "/admin/reconciliations/{run_id}.csv"): Page(200, a_run),
    ("GET", "/admin/reconciliations/{run_id}"): Page(200, a_run),
    ("POST", "/admin/reconciliations/{run_id}/findings/{finding_id}/resolve"): Page(
        303, an_open_finding, "/admin/reconciliations/"
    ),
}


def test_every_admin_route_and_page_has_its_expectations() -> None:
    """A new route must say what success looks like (and what it acts on) to join the matrix."""
    assert sorted(set(ADMIN_ROUTES) - set(API_MATRIX)) == []
    assert sorted(set(SESSION_ROUTES) - set(PAGE_MATRIX)) == []


# -- nothing changed ---------------------------------------------------------------------------


async def snapshot(h: Harness, crm: MemoryCrm) -> dict[str, Any]:
    """Every row of every table of syncd's database, the CRM's writes, Xero's calls."""
    tables: dict[str, list[str]] = {}
    async with h.services.db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            tables[table.name] = sorted(repr(tuple(row)) for row in rows)
    return {
        "tables": tables,
        "crm_writes": len(crm.writes),
        "crm_write_backs": len(crm.write_backs),
        "xero_calls": len(h.sandbox.ledger),
    }


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What differs, per table (for a readable failure)."""
    differ: dict[str, Any] = {}
    for name, rows in before["tables"].items():
        if after["tables"][name] != rows:
            differ[name] = {
                "gone": sorted(set(rows) - set(after["tables"][name])),
                "new": sorted(set(after["tables"][name]) - set(rows)),
            }
    for key in ("crm_writes", "crm_write_backs", "xero_calls"):
        if before[key] != after[key]:
            differ[key] = (before[key], after[key])
    return differ


def concrete(path: str, target: Target) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: target.params.get(m.group(1), "1"), path)


# -- the admin API -----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_admin_routes_follow_the_role_matrix(
    h: Harness, crm: MemoryCrm, world: World, method: str, path: str
) -> None:
    """Allowed callers get the route's success status; the others get 400/403 (no token or a
    forged one: 401 with a Bearer challenge), and nothing changes."""
    expected, arrange = API_MATRIX[(method, path)]
    for who, role, token_company, query_company, refused in CASES:
        target = await arrange(h, world)
        params = {"company_id": query_company} if query_company else {}
        before = await snapshot(h, crm)
        response = await h.syncd.request(
            method,
            concrete(path, target),
            params=params,
            headers=h.auth(role, token_company),
            json=target.json,
        )
        if refused is None:
            assert response.status_code == expected, (who, response.text[:300])
            continue
        assert response.status_code == refused, (who, response.text[:300])
        assert changes(before, await snapshot(h, crm)) == {}, who
    for who, headers in (("anonymous", {}), ("forged token", {"Authorization": "Bearer a.b.c"})):
        target = await arrange(h, world)
        before = await snapshot(h, crm)
        response = await h.syncd.request(
            method, concrete(path, target), headers=headers, json=target.json
        )
        assert response.status_code == 401, who
        assert "Bearer" in response.headers["www-authenticate"]
        assert changes(before, await snapshot(h, crm)) == {}, who


# -- pages -------------------------------------------------------------------------------------


async def signed_in(h: Harness, role: Role, company: str | None, **params: str) -> int:
    """Follow a short-lived CRM sign-in link, from the CRM; the status of the hand-off."""
    token = mint_token(
        h.settings, user="admin-1", role=role, company=company, ttl=timedelta(minutes=2)
    )
    answer = await h.syncd.get(
        "/admin/login",
        params={"token": token, **params},
        headers={"Referer": f"{CRM_URL}/settings/integrations"},
    )
    return answer.status_code


async def csrf_of(h: Harness) -> str:
    """The session's CSRF token, as every page's forms carry it."""
    page = await h.syncd.get("/admin")
    assert page.status_code == 200, page.text[:300]
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


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
    token = mint_token(
        h.settings, user="u", role=Role.PRACTICE_ADMIN, company=OWN, ttl=timedelta(days=1)
    )
    answer = await h.syncd.get(
        "/admin/login", params={"token": token}, headers={"Referer": f"{CRM_URL}/"}
    )
    assert answer.status_code == 401


async def page_call(
    h: Harness, method: str, path: str, target: Target, *, csrf: str | None, **params: str
) -> httpx.Response:
    url = concrete(path, target)
    if method == "GET":
        return await h.syncd.get(url, params=params)
    form = {**(target.form or {}), **({"csrf": csrf} if csrf is not None else {})}
    return await h.syncd.request(method, url, params=params, data=form)


@pytest.mark.parametrize(("method", "path"), SESSION_ROUTES)
async def test_pages_follow_the_role_matrix(
    h: Harness, crm: MemoryCrm, world: World, method: str, path: str
) -> None:
    """Every page: no session → 401 (signing out needs none); another practice asked for → 403;
    a form without the session's CSRF token → 403; none of these changes anything. The
    practice's own admin gets the page's success: 200, or a form's redirect onwards (303, no
    problem reported)."""
    expected = PAGE_MATRIX[(method, path)]
    refusals: list[tuple[str, int, str | None, dict[str, str]]] = [
        ("no session", 200 if path == "/admin/logout" else 401, None, {}),
    ]
    for who, status, csrf, params in refusals:
        target = await expected.arrange(h, world)
        before = await snapshot(h, crm)
        response = await page_call(h, method, path, target, csrf=csrf, **params)
        assert response.status_code == status, (who, response.text[:300])
        assert changes(before, await snapshot(h, crm)) == {}, who

    assert await signed_in(h, Role.PRACTICE_ADMIN, OWN) == 303
    csrf = await csrf_of(h)
    signed_in_refusals: list[tuple[str, int, str, dict[str, str]]] = []
    if path != "/admin/logout":  # signing oneself out is nobody else's business
        signed_in_refusals.append(("another practice asked for", 403, csrf, {"company_id": OTHER}))
    if method == "POST":
        signed_in_refusals.append(("a forged CSRF token", 403, "not-the-token", {}))
    for who, status, token, params in signed_in_refusals:
        target = await expected.arrange(h, world)
        before = await snapshot(h, crm)
        response = await page_call(h, method, path, target, csrf=token, **params)
        assert response.status_code == status, (who, response.text[:300])
        assert changes(before, await snapshot(h, crm)) == {}, who

    target = await expected.arrange(h, world)
    own = await page_call(h, method, path, target, csrf=csrf)
    assert own.status_code == expected.status, own.text[:300]
    if expected.leads_to is not None:
        location = own.headers["location"]
        assert location.startswith(expected.leads_to), location
        assert "problem=" not in location, location
