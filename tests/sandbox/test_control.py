"""The control API under /_sandbox/: seeding, steering and reading the sandbox over HTTP."""

from __future__ import annotations

import httpx
import pytest

from syncd.sandbox.models import Faults, Limits
from syncd.sandbox.state import SandboxState
from tests.sandbox.flow import PROJECTS, REDIRECT, connect

C = "/_sandbox"


async def test_seed_and_drive_a_world_over_http(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    """reset, apps, tenants, consent, users, contacts, projects, status, archive, delete."""
    assert (await client.post(f"{C}/reset")).json() == {"reset": True}
    assert state.tenants == {}
    app = await client.post(
        f"{C}/apps",
        json={"client_id": "demo", "client_secret": None, "redirect_uris": [REDIRECT]},
    )
    assert app.status_code == 201
    assert state.apps["demo"].client_secret is None
    created = await client.post(f"{C}/tenants", json={"name": "Demo Practice", "currency": "NZD"})
    assert created.status_code == 201
    tenant_id = created.json()["tenant_id"]
    await client.post(f"{C}/tenants", json={"name": "Second"})
    assert [t["name"] for t in (await client.get(f"{C}/tenants")).json()] == [
        "Demo Practice",
        "Second",
    ]
    assert (await client.get(f"{C}/tenants/{tenant_id}")).json()["currency"] == "NZD"
    consent = await client.put(f"{C}/consent", json={"tenant_ids": [tenant_id]})
    assert consent.json() == {"tenant_ids": [tenant_id], "user_id": None}
    assert state.consent_tenant_ids == [tenant_id]
    user = await client.post(
        f"{C}/tenants/{tenant_id}/users", json={"name": "Ann", "email": "ann@x.example"}
    )
    assert user.status_code == 201
    assert (await client.get(f"{C}/tenants/{tenant_id}/users")).json() == [user.json()]
    contact = await client.post(
        f"{C}/tenants/{tenant_id}/contacts", json={"name": "Acme", "email": "a@acme.example"}
    )
    contact_id = contact.json()["ContactID"]
    assert [c["Name"] for c in (await client.get(f"{C}/tenants/{tenant_id}/contacts")).json()] == [
        "Acme"
    ]
    project = await client.post(
        f"{C}/tenants/{tenant_id}/projects",
        json={
            "contact_id": contact_id,
            "name": "Job",
            "deadline": "2026-05-01T00:00:00Z",
            "estimate": 12.5,
        },
    )
    assert project.status_code == 201
    project_id = project.json()["projectId"]
    assert project.json()["currencyCode"] == "NZD"
    closed = await client.put(
        f"{C}/tenants/{tenant_id}/projects/{project_id}/status", json={"status": "CLOSED"}
    )
    assert closed.json()["status"] == "CLOSED"
    got = await client.get(f"{C}/tenants/{tenant_id}/projects/{project_id}")
    assert got.json()["status"] == "CLOSED"
    assert len((await client.get(f"{C}/tenants/{tenant_id}/projects")).json()) == 1
    archived = await client.post(f"{C}/tenants/{tenant_id}/contacts/{contact_id}/archive")
    assert archived.json()["ContactStatus"] == "ARCHIVED"
    assert (
        await client.delete(f"{C}/tenants/{tenant_id}/projects/{project_id}")
    ).status_code == 204
    assert (await client.get(f"{C}/tenants/{tenant_id}/projects/{project_id}")).status_code == 404


async def test_limits_faults_tokens_ledger_and_checks(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    """Limits/faults merge partial updates; tokens expire and revoke; ledger and checks read."""
    tenant_id = next(iter(state.tenants))
    limits = await client.put(f"{C}/limits", json={"per_minute": 30})
    assert limits.json()["limits"]["per_minute"] == 30
    assert state.limits == Limits(per_minute=30)
    override = await client.put(f"{C}/limits", json={"tenant_id": tenant_id, "concurrent": 2})
    assert override.json()["tenants"][tenant_id]["concurrent"] == 2
    assert state.limits_for(tenant_id) == Limits(per_minute=30, concurrent=2)
    faults = await client.put(f"{C}/faults", json={"fail_next": 2, "path_prefix": "/projects.xro"})
    assert faults.json()["fail_next"] == 2
    assert state.faults == Faults(fail_next=2, path_prefix="/projects.xro")
    await client.put(f"{C}/faults", json={"fail_next": 0})
    assert state.faults.path_prefix == "/projects.xro"

    state.consent_tenant_ids = [tenant_id]
    session = await connect(client)
    assert len((await client.get(f"{C}/connections")).json()) == 1
    assert (await client.post(f"{C}/expire-access-tokens")).status_code == 200
    assert (await client.get(f"{PROJECTS}/Projects", headers=session.headers())).status_code == 401
    assert (await client.post(f"{C}/revoke-refresh-tokens")).status_code == 200
    refreshed = await client.post(
        "/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": session.refresh_token},
        auth=httpx.BasicAuth("syncd-test", "sandbox-secret-0123456789"),
    )
    assert refreshed.json()["error"] == "invalid_grant"

    ledger = (await client.get(f"{C}/ledger")).json()
    assert ledger["last_seq"] == len(ledger["entries"])
    assert ledger["entries"][0]["path"] == "/identity/connect/authorize"
    later = (await client.get(f"{C}/ledger", params={"since": ledger["last_seq"] - 1})).json()
    assert [e["seq"] for e in later["entries"]] == [ledger["last_seq"]]
    report = (await client.get(f"{C}/tenants/{tenant_id}/checks")).json()
    assert report == {
        "tenant_id": tenant_id,
        "max_concurrency": 0,
        "max_calls_in_any_window": 0,
        "count_429": 0,
        "duplicate_projects": [],
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/tenants", {"name": ""}, 400),
        ("POST", "/tenants", {"name": "x", "colour": "red"}, 400),
        ("POST", "/tenants", {"name": "x", "tenant_type": "CLUB"}, 400),
        ("POST", "/apps", {"client_id": "x", "redirect_uris": "http://a"}, 400),
        ("PUT", "/limits", {"per_minute": -1}, 400),
        ("PUT", "/limits", {"per_minute": "many"}, 400),
        ("PUT", "/faults", {"fail_status": 302}, 400),
        ("PUT", "/faults", {"fail_next": "2"}, 400),
        ("PUT", "/consent", {"tenant_ids": ["nope"]}, 404),
        ("POST", "/tenants/nope/contacts", {"name": "x"}, 404),
        ("PUT", "/tenants/nope/projects/x/status", {"status": "CLOSED"}, 404),
        ("GET", "/ledger?since=x", None, 400),
    ],
)
async def test_bad_input_is_refused_with_a_message(
    client: httpx.AsyncClient, method: str, path: str, body: object, status: int
) -> None:
    """Invalid control calls answer 400 (or 404 for unknown things) with {"error": ...}."""
    answer = await client.request(method, C + path, json=body)
    assert answer.status_code == status
    assert answer.json()["error"]


async def test_project_status_must_be_known(client: httpx.AsyncClient, state: SandboxState) -> None:
    """Setting a project to a status Projects does not have is 400."""
    tenant_id = next(iter(state.tenants))
    contact = state.add_contact(tenant_id, "Acme")
    project = state.add_project(tenant_id, contact_id=contact.contact_id, name="Job")
    answer = await client.put(
        f"{C}/tenants/{tenant_id}/projects/{project.project_id}/status", json={"status": "DONE"}
    )
    assert answer.status_code == 400
    body_not_json = await client.post(f"{C}/tenants", content=b"{nope")
    assert body_not_json.status_code == 400
