"""The sandbox's Practice Manager API (template.api/list, staff.api/list in XML): the gate's auth,
scope, tenant and rate-limit checks and ledger on every XPM endpoint, its control routes, and
syncd's adapter (`PracticeManagerApi` over XeroHttp) against it end to end. Clients and jobs
have their own files."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from syncd.domain.errors import NeedsReconnect
from syncd.domain.ids import CompanyId
from syncd.sandbox.app import create_sandbox_app
from syncd.sandbox.models import Limits, Tenant
from syncd.sandbox.state import SandboxState
from syncd.xero.governor import RateGovernor
from syncd.xero.http import Credentials, XeroHttp, build_client
from syncd.xero.practice_manager import (
    JobTemplate,
    PracticeManagerApi,
    StaffMember,
    parse_staff,
    parse_templates,
)
from tests.fakes import InstantClock, MemoryAudit
from tests.sandbox.flow import BASE, Session, connect

XPM = "/practicemanager/3.1"
TEMPLATES = f"{XPM}/template.api/list"
STAFF = f"{XPM}/staff.api/list"
C = "/_sandbox"


async def _connect(
    client: httpx.AsyncClient, state: SandboxState, tenants: list[Tenant], scope: str
) -> Session:
    state.consent_tenant_ids = [t.tenant_id for t in tenants]
    return await connect(client, scope=f"offline_access {scope}")


async def test_templates_list_answers_xpm_xml(
    client: httpx.AsyncClient, state: SandboxState, practice: Tenant, xpm: Session
) -> None:
    """template.api/list answers text/xml <Response><Status>OK</Status><Templates>…, even to
    a caller asking for JSON."""
    first = state.add_template(practice.tenant_id, "Annual Accounts")
    state.add_template(practice.tenant_id, "Tax Return")
    answer = await client.get(TEMPLATES, headers=xpm.headers(practice.tenant_id))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/xml")
    assert answer.content.startswith(b"<?xml")
    assert b"<Status>OK</Status><Templates><Template><UUID>" in answer.content
    assert [t.name for t in parse_templates(answer.content)] == ["Annual Accounts", "Tax Return"]
    assert parse_templates(answer.content)[0].template_id == first["UUID"]


async def test_staff_list_answers_xpm_xml(
    client: httpx.AsyncClient, state: SandboxState, practice: Tenant, xpm: Session
) -> None:
    """staff.api/list answers <StaffList><Staff><UUID/><Name/><Email/>…; none: an empty list."""
    empty = await client.get(STAFF, headers=xpm.headers(practice.tenant_id))
    assert b"<StaffList />" in empty.content
    assert parse_staff(empty.content) == []
    member = state.add_staff(practice.tenant_id, "Jo Bloggs", "jo@practice.example")
    answer = await client.get(STAFF.upper(), headers=xpm.headers(practice.tenant_id))
    assert answer.status_code == 200
    assert parse_staff(answer.content) == [
        StaffMember(staff_id=member["UUID"], name="Jo Bloggs", email="jo@practice.example")
    ]


@pytest.mark.parametrize(
    ("scope", "templates", "staff"),
    [
        ("practicemanager", 200, 200),
        ("practicemanager.read", 200, 200),
        ("practicemanager.job.read", 200, 401),
        ("practicemanager.job", 200, 401),
        ("practicemanager.staff.read", 401, 200),
        ("practicemanager.staff", 401, 200),
        ("practicemanager.client.read", 401, 401),
        ("projects accounting.contacts", 401, 401),
    ],
)
async def test_a_practicemanager_scope_is_needed(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    scope: str,
    templates: int,
    staff: int,
) -> None:
    """The broad scope reads both lists; granular ones only their resource (templates go with
    jobs); anything else is 401 insufficient_scope, as for the other APIs."""
    session = await _connect(client, state, [practice], scope)
    headers = session.headers(practice.tenant_id)
    answers = [await client.get(path, headers=headers) for path in (TEMPLATES, STAFF)]
    assert [a.status_code for a in answers] == [templates, staff]
    for answer in answers:
        if answer.status_code == 401:
            assert answer.json()["Detail"] == "AuthorizationUnsuccessful"
            assert answer.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'


ENDPOINTS = [
    ("GET", TEMPLATES),
    ("GET", STAFF),
    ("GET", f"{XPM}/category.api/list"),
    ("GET", f"{XPM}/client.api/search?query=chen"),
    ("GET", f"{XPM}/client.api/list"),
    ("POST", f"{XPM}/client.api/add"),
    ("PUT", f"{XPM}/client.api/update"),
    ("POST", f"{XPM}/job.api/add"),
    ("GET", f"{XPM}/job.api/current"),
    ("GET", f"{XPM}/job.api/client/0d3458b8-0000-4000-8000-000000000000"),
    ("GET", f"{XPM}/job.api/get/J000001"),
    ("PUT", f"{XPM}/job.api/state"),
    ("PUT", f"{XPM}/job.api/assign"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_an_organisation_tenant_has_no_practice_manager(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    organisation: Tenant,
    method: str,
    path: str,
) -> None:
    """On every XPM endpoint a connected ORGANISATION tenant is refused with 403
    AuthorizationUnsuccessful (the sandbox's documented choice), still counted and recorded
    like any tenant call, and nothing is made."""
    session = await _connect(client, state, [practice, organisation], "practicemanager")
    sent = b"<Client><Name>Acme</Name></Client>" if method != "GET" else None
    answer = await client.request(
        method, path, headers=session.headers(organisation.tenant_id), content=sent
    )
    assert answer.status_code == 403
    assert answer.json()["Detail"] == "AuthorizationUnsuccessful"
    entry = state.ledger[-1]
    assert (entry.tenant_id, entry.status, entry.counted) == (organisation.tenant_id, 403, True)
    assert (organisation.clients, practice.clients) == ({}, {})


@pytest.mark.parametrize(
    ("scope", "add_client", "list_jobs", "add_job"),
    [
        ("practicemanager", 200, 200, 200),
        ("practicemanager.client", 200, 401, 401),
        ("practicemanager.client.read", 401, 401, 401),
        ("practicemanager.job", 401, 200, 200),
        ("practicemanager.job.read", 401, 200, 401),
        ("practicemanager.read", 401, 200, 401),
    ],
)
async def test_client_and_job_calls_need_their_scope(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    scope: str,
    add_client: int,
    list_jobs: int,
    add_job: int,
) -> None:
    """Client writes need the broad or client scope; job reads a job, read or broad scope; job
    writes the broad or job scope; others are 401 insufficient_scope."""
    session = await _connect(client, state, [practice], scope)
    headers = session.headers(practice.tenant_id)
    sent = b"<Client><Name>Acme</Name></Client>"
    added = await client.post(f"{XPM}/client.api/add", headers=headers, content=sent)
    listed = await client.get(f"{XPM}/job.api/current", headers=headers)
    made = await client.post(f"{XPM}/job.api/add", headers=headers, content=b"<Job />")
    assert [added.status_code, listed.status_code, made.status_code] == [
        add_client,
        list_jobs,
        add_job,
    ]
    assert len(practice.clients) == (1 if add_client == 200 else 0)


async def test_calls_pass_the_same_gate_as_other_apis(
    client: httpx.AsyncClient, state: SandboxState, practice: Tenant, xpm: Session
) -> None:
    """No bearer: 401; a tenant the grant does not cover: 403; each call is in the ledger with
    its tenant and the rate headers; over the minute limit: 429."""
    assert (
        await client.get(TEMPLATES, headers={"Xero-tenant-id": practice.tenant_id})
    ).status_code == 401
    other = state.add_tenant("Unconnected XPM", tenant_type="PRACTICEMANAGER")
    assert (await client.get(TEMPLATES, headers=xpm.headers(other.tenant_id))).status_code == 403
    state.set_limits(Limits(per_minute=1), tenant_id=practice.tenant_id)
    answer = await client.get(TEMPLATES, headers=xpm.headers(practice.tenant_id))
    assert answer.status_code == 200
    assert answer.headers["X-MinLimit-Remaining"] == "0"
    entry = state.ledger[-1]
    assert (entry.method, entry.path, entry.tenant_id, entry.status, entry.counted) == (
        "GET",
        TEMPLATES,
        practice.tenant_id,
        200,
        True,
    )
    limited = await client.get(STAFF, headers=xpm.headers(practice.tenant_id))
    assert (limited.status_code, limited.headers["X-Rate-Limit-Problem"]) == (429, "minute")
    assert state.ledger[-1].rate_limited


async def test_control_api_seeds_and_lists_templates_and_staff(
    client: httpx.AsyncClient, state: SandboxState, practice: Tenant
) -> None:
    """POST/GET /_sandbox/tenants/{t}/templates and /staff; the tenant shows their counts."""
    base = f"{C}/tenants/{practice.tenant_id}"
    template = await client.post(f"{base}/templates", json={"name": "Annual Accounts"})
    assert template.status_code == 201
    assert template.json()["Name"] == "Annual Accounts"
    member = await client.post(f"{base}/staff", json={"name": "Jo", "email": "jo@x.example"})
    assert member.status_code == 201
    assert (await client.get(f"{base}/templates")).json() == [template.json()]
    assert (await client.get(f"{base}/staff")).json() == [
        {"UUID": member.json()["UUID"], "Name": "Jo", "Email": "jo@x.example"}
    ]
    shown = (await client.get(base)).json()
    assert (shown["templates"], shown["staff"]) == (1, 1)
    assert state.tenant(practice.tenant_id).staff == [member.json()]


@pytest.mark.parametrize(
    ("resource", "body", "status"),
    [
        ("templates", {}, 400),
        ("templates", {"name": "  "}, 400),
        ("templates", {"name": "x", "colour": "red"}, 400),
        ("staff", {"name": "Jo"}, 400),
        ("staff", {"name": "Jo", "email": "not-an-address"}, 400),
        ("staff", {"name": 3, "email": "jo@x.example"}, 400),
    ],
)
async def test_control_api_validates_templates_and_staff(
    client: httpx.AsyncClient, practice: Tenant, resource: str, body: object, status: int
) -> None:
    """Missing or blank names, unknown fields and bad emails are refused with 400 {error}."""
    answer = await client.post(f"{C}/tenants/{practice.tenant_id}/{resource}", json=body)
    assert answer.status_code == status
    assert answer.json()["error"]


@pytest.mark.parametrize("resource", ["templates", "staff"])
async def test_control_api_keeps_xpm_things_on_xpm_tenants(
    client: httpx.AsyncClient, organisation: Tenant, resource: str
) -> None:
    """Templates and staff belong to PRACTICEMANAGER tenants (400); unknown tenants are 404."""
    body = {"name": "Jo", "email": "jo@x.example"} if resource == "staff" else {"name": "T"}
    refused = await client.post(f"{C}/tenants/{organisation.tenant_id}/{resource}", json=body)
    assert refused.status_code == 400
    assert "not PRACTICEMANAGER" in refused.json()["error"]
    assert (await client.post(f"{C}/tenants/nope/{resource}", json=body)).status_code == 404


class SessionTokens:
    """A TokenSource twin over one sandbox session (its token outlives these tests)."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self.credentials_given = Credentials(session.access_token, tenant_id)

    async def credentials(self, company: CompanyId) -> Credentials:
        return self.credentials_given

    async def refreshed(self, company: CompanyId, *, stale: str) -> Credentials:
        return self.credentials_given


@pytest.fixture
async def http_for(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_sandbox_app(state))
    async with build_client(base_url=BASE, transport=transport) as client:
        yield client


def _api(client: httpx.AsyncClient, session: Session, tenant: Tenant) -> PracticeManagerApi:
    clock = InstantClock()
    http = XeroHttp(
        client,
        tokens=SessionTokens(session, tenant.tenant_id),
        governor=RateGovernor(clock=clock),
        audit=MemoryAudit(),
        clock=clock,
    )
    return PracticeManagerApi(http)


async def test_adapter_reads_templates_and_staff_from_the_sandbox(
    http_for: httpx.AsyncClient, state: SandboxState, practice: Tenant, xpm: Session
) -> None:
    """PracticeManagerApi over XeroHttp (asking for JSON) reads the sandbox's XML lists."""
    template = state.add_template(practice.tenant_id, "Annual Accounts")
    member = state.add_staff(practice.tenant_id, "Jo Bloggs", "jo@practice.example")
    api = _api(http_for, xpm, practice)
    assert await api.templates(CompanyId("c-1")) == [
        JobTemplate(template_id=template["UUID"], name="Annual Accounts")
    ]
    assert await api.staff(CompanyId("c-1")) == [
        StaffMember(staff_id=member["UUID"], name="Jo Bloggs", email="jo@practice.example")
    ]
    assert [(e.path, e.status) for e in state.ledger[-2:]] == [(TEMPLATES, 200), (STAFF, 200)]


async def test_adapter_on_an_organisation_needs_reconnect(
    client: httpx.AsyncClient,
    http_for: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    organisation: Tenant,
) -> None:
    """Through XeroHttp, the sandbox's 403 for a non-XPM tenant becomes NeedsReconnect."""
    session = await _connect(client, state, [practice, organisation], "practicemanager")
    with pytest.raises(NeedsReconnect):
        await _api(http_for, session, organisation).staff(CompanyId("c-1"))
