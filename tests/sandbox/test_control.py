"""The control API under /_sandbox/: seeding, steering and reading the sandbox over HTTP, Practice
Manager's world included."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from syncd.sandbox.app import create_sandbox_app
from syncd.sandbox.models import Faults, Limits
from syncd.sandbox.state import SandboxState
from tests.sandbox.flow import BASE, CLIENT_ID, PROJECTS, REDIRECT, connect
from tests.sandbox.receiver import URL, Receiver

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
        "duplicate_jobs": [],
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


async def test_webhooks_and_invoices_over_http(state: SandboxState) -> None:
    """Configure a webhook, raise and pay an invoice, edit a contact, lose an event, flush, run
    intent-to-receive and read the deliveries, all through /_sandbox/."""
    receiver = Receiver("hook-key")
    app = create_sandbox_app(state, webhook_transport=receiver.transport())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        tenant_id = next(iter(state.tenants))
        state.consent_tenant_ids = [tenant_id]
        await connect(client)
        configured = await client.put(
            f"{C}/webhooks",
            json={"client_id": CLIENT_ID, "url": URL, "webhook_key": "hook-key", "max_attempts": 5},
        )
        assert configured.status_code == 200, configured.text
        assert configured.json()["status"] == "OK"
        assert configured.json()["max_attempts"] == 5
        contact = await client.post(f"{C}/tenants/{tenant_id}/contacts", json={"name": "Acme"})
        contact_id = contact.json()["ContactID"]
        renamed = await client.patch(
            f"{C}/tenants/{tenant_id}/contacts/{contact_id}",
            json={"name": "Acme Holdings", "email": "jo@acme.example"},
        )
        assert renamed.json()["Name"] == "Acme Holdings"
        invoice = await client.post(
            f"{C}/tenants/{tenant_id}/invoices",
            json={
                "contact_id": contact_id,
                "total": "120.50",
                "reference": "J-7",
                "issued_on": "2026-03-01",
            },
        )
        assert invoice.status_code == 201, invoice.text
        invoice_id = invoice.json()["InvoiceID"]
        assert invoice.json()["Total"] == 120.5
        paid = await client.put(
            f"{C}/tenants/{tenant_id}/invoices/{invoice_id}/status", json={"status": "PAID"}
        )
        assert paid.json()["Status"] == "PAID"
        got = await client.get(f"{C}/tenants/{tenant_id}/invoices/{invoice_id}")
        assert got.json()["Contact"]["Name"] == "Acme Holdings"
        assert len((await client.get(f"{C}/tenants/{tenant_id}/invoices")).json()) == 1
        assert (await client.get(f"{C}/tenants/{tenant_id}")).json()["invoices"] == 1
        faults = await client.put(f"{C}/faults", json={"lose_webhooks_next": 1})
        assert faults.json()["lose_webhooks_next"] == 1
        await client.post(f"{C}/tenants/{tenant_id}/contacts/{contact_id}/archive")

        listed = (await client.get(f"{C}/webhooks")).json()
        assert listed["webhooks_enabled"] is True
        [subscription] = listed["subscriptions"]
        assert (subscription["pending_events"], subscription["lost_events"]) == (4, 1)
        flushed = (await client.post(f"{C}/webhooks/flush")).json()["deliveries"]
        assert [(d["first_sequence"], d["last_sequence"], d["passed"]) for d in flushed] == [
            (1, 4, True)
        ]
        assert [(e["eventCategory"], e["eventType"]) for e in receiver.events] == [
            ("CONTACT", "CREATE"),
            ("CONTACT", "UPDATE"),
            ("INVOICE", "CREATE"),
            ("INVOICE", "UPDATE"),
        ]
        intent = (await client.post(f"{C}/webhooks/intent-to-receive", json={})).json()
        assert intent["passed"] is True
        assert len(intent["attempts"]) == 4
        deliveries = (await client.get(f"{C}/webhooks/deliveries")).json()
        assert deliveries["last_seq"] == 5
        assert [d["kind"] for d in deliveries["deliveries"]] == ["events"] + ["intent"] * 4
        later = (await client.get(f"{C}/webhooks/deliveries", params={"since": 4})).json()
        assert [d["seq"] for d in later["deliveries"]] == [5]
        off = await client.put(f"{C}/webhooks", json={"enabled": False})
        assert off.json()["enabled"] is False
        await client.put(f"{C}/faults", json={"webhooks_enabled": False})
        assert state.faults.webhooks_enabled is False


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", "/webhooks", {"url": URL}, 400),
        ("PUT", "/webhooks", {"client_id": "nobody", "url": URL}, 404),
        ("PUT", "/webhooks", {"client_id": CLIENT_ID, "url": URL, "colour": "red"}, 400),
        ("PUT", "/webhooks", {"client_id": CLIENT_ID, "url": "ftp://x", "webhook_key": "k"}, 400),
        ("PUT", "/webhooks", {"client_id": CLIENT_ID, "url": URL, "enabled": "yes"}, 400),
        ("PUT", "/webhooks", {"client_id": CLIENT_ID, "url": URL, "max_attempts": 1.5}, 400),
        ("PUT", "/webhooks", {"client_id": CLIENT_ID, "url": URL, "retry_hours": "1"}, 400),
        ("POST", "/webhooks/intent-to-receive", {}, 400),
        ("POST", "/webhooks/intent-to-receive", {"client_id": CLIENT_ID}, 404),
        ("GET", "/webhooks/deliveries?since=x", None, 400),
        ("PUT", "/faults", {"lose_webhooks_next": -1}, 400),
        ("PUT", "/faults", {"webhooks_enabled": "no"}, 400),
        ("POST", "/tenants/{tenant}/invoices", {"contact_id": "x", "total": 1}, 404),
        ("POST", "/tenants/{tenant}/invoices", {"contact_id": "x"}, 400),
        ("POST", "/tenants/{tenant}/invoices", {"contact_id": "x", "total": "lots"}, 400),
        (
            "POST",
            "/tenants/{tenant}/invoices",
            {"contact_id": "x", "total": 1, "due_on": "May"},
            400,
        ),
        ("GET", "/tenants/{tenant}/invoices/nope", None, 404),
        ("PUT", "/tenants/{tenant}/invoices/nope/status", {"status": "PAID"}, 404),
        ("PATCH", "/tenants/{tenant}/contacts/nope", {"name": "x"}, 404),
    ],
)
async def test_bad_webhook_and_invoice_input_is_refused(
    client: httpx.AsyncClient,
    state: SandboxState,
    method: str,
    path: str,
    body: object,
    status: int,
) -> None:
    """Invalid webhook, fault and invoice control calls answer 400 or 404 with a message."""
    tenant_id = next(iter(state.tenants))
    answer = await client.request(method, C + path.format(tenant=tenant_id), json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]


async def test_contact_edits_are_checked(client: httpx.AsyncClient, state: SandboxState) -> None:
    """A contact edit over HTTP refuses an empty name, an unknown status and unknown fields."""
    tenant_id = next(iter(state.tenants))
    contact = state.add_contact(tenant_id, "Acme")
    url = f"{C}/tenants/{tenant_id}/contacts/{contact.contact_id}"
    for body in ({"name": ""}, {"status": "GONE"}, {"status": None}, {"colour": "red"}):
        answer = await client.patch(url, json=body)
        assert answer.status_code == 400, body
    assert state.contact(tenant_id, contact.contact_id).name == "Acme"


async def test_a_practice_manager_world_over_http(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    """Categories, job states, clients (archive too) and jobs of a PRACTICEMANAGER tenant are
    seeded, read, edited as an XPM user would (state, due date, manager) and deleted through
    /_sandbox/; the tenant counts them and the checks report duplicate jobs."""
    created = await client.post(
        f"{C}/tenants", json={"name": "Demo XPM", "tenant_type": "PRACTICEMANAGER"}
    )
    tenant_id = created.json()["tenant_id"]
    base = f"{C}/tenants/{tenant_id}"
    category = await client.post(f"{base}/categories", json={"name": "Tax"})
    assert category.status_code == 201
    assert (await client.get(f"{base}/categories")).json() == [category.json()]
    assert category.json()["Name"] == "Tax"
    defaults = (await client.get(f"{base}/job-states")).json()["states"]
    assert [(s["code"], s["completed"]) for s in defaults] == [
        ("Planned", False),
        ("In Progress", False),
        ("On Hold", False),
        ("Completed", True),
        ("Cancelled", True),
    ]
    custom = [*defaults, {"code": "Awaiting Client", "completed": False}]
    assert (await client.put(f"{base}/job-states", json={"states": custom})).json() == {
        "states": custom
    }
    assert state.tenant(tenant_id).job_states[-1].code == "Awaiting Client"
    olivia = await client.post(
        f"{base}/clients", json={"name": "Olivia Chen", "email": "olivia@example.com"}
    )
    assert olivia.status_code == 201
    client_uuid = olivia.json()["UUID"]
    assert (olivia.json()["Email"], olivia.json()["IsArchived"]) == ("olivia@example.com", False)
    archived = await client.post(f"{base}/clients/{client_uuid}/archive")
    assert archived.json()["IsArchived"] is True
    assert state.client(tenant_id, client_uuid).archived
    assert [c["Name"] for c in (await client.get(f"{base}/clients")).json()] == ["Olivia Chen"]
    ann = state.add_staff(tenant_id, "Ann Accountant", "ann@practice.example")
    for _ in range(2):
        state.add_job(
            tenant_id,
            client_uuid=client_uuid,
            name="Tax Return",
            description="FY26",
            start_date=date(2026, 12, 3),
            due_date=date(2026, 12, 31),
            client_order_number="syncd:1",
            category_uuid=category.json()["UUID"],
        )
    listed = (await client.get(f"{base}/jobs")).json()
    assert [j["ID"] for j in listed] == ["J000001", "J000002"]
    job = (await client.get(f"{base}/jobs/J000001")).json()
    assert (job["State"], job["DueDate"], job["Budget"], job["ManagerUUID"]) == (
        "Planned",
        "2026-12-31",
        "0.00",
        None,
    )
    edited = await client.patch(
        f"{base}/jobs/J000001",
        json={"state": "Completed", "due_date": "2027-01-15", "manager_uuid": ann["UUID"]},
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["State"], edited.json()["DueDate"]) == ("Completed", "2027-01-15")
    assert edited.json()["CompletedDate"] == "2026-03-02"
    assert state.job(tenant_id, "J000001").manager_uuid == ann["UUID"]
    unassigned = await client.patch(f"{base}/jobs/J000001", json={"manager_uuid": None})
    assert unassigned.json()["ManagerUUID"] is None
    assert unassigned.json()["State"] == "Completed"
    shown = (await client.get(base)).json()
    assert (shown["clients"], shown["jobs"], shown["categories"], shown["staff"]) == (1, 2, 1, 1)
    report = (await client.get(f"{base}/checks")).json()
    assert report["duplicate_jobs"] == [["J000001", "J000002"]]
    assert (await client.delete(f"{base}/jobs/J000002")).status_code == 204
    assert (await client.get(f"{base}/jobs/J000002")).status_code == 404
    assert (await client.get(f"{base}/checks")).json()["duplicate_jobs"] == []
    assert (await client.get(base)).json()["jobs"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/categories", {}, 400),
        ("POST", "/categories", {"name": " "}, 400),
        ("POST", "/categories", {"name": "Tax", "colour": "red"}, 400),
        ("PUT", "/job-states", {}, 400),
        ("PUT", "/job-states", {"states": []}, 400),
        ("PUT", "/job-states", {"states": "Planned"}, 400),
        ("PUT", "/job-states", {"states": ["Planned"]}, 400),
        ("PUT", "/job-states", {"states": [{"code": ""}]}, 400),
        ("PUT", "/job-states", {"states": [{"code": "A", "completed": "no"}]}, 400),
        ("PUT", "/job-states", {"states": [{"code": "A", "colour": "red"}]}, 400),
        ("PUT", "/job-states", {"states": [{"code": "A"}, {"code": "A"}]}, 400),
        ("PUT", "/job-states", {"states": [{"code": "Done", "completed": True}]}, 400),
        ("PUT", "/job-states", {"states": [{"code": "Enquiry"}]}, 400),
        ("POST", "/clients", {}, 400),
        ("POST", "/clients", {"name": "Acme", "email": 3}, 400),
        ("POST", "/clients", {"name": "Acme", "phone": "1"}, 400),
        ("POST", "/clients/0d3458b8-0000-4000-8000-000000000000/archive", None, 404),
        ("GET", "/jobs/J000099", None, 404),
        ("PATCH", "/jobs/J000099", {"state": "Completed"}, 404),
        ("DELETE", "/jobs/J000099", None, 404),
        ("PATCH", "/jobs/J000001", {"state": "Done"}, 400),
        ("PATCH", "/jobs/J000001", {"state": "completed"}, 400),
        ("PATCH", "/jobs/J000001", {"state": 3}, 400),
        ("PATCH", "/jobs/J000001", {"due_date": "31/12/2026"}, 400),
        ("PATCH", "/jobs/J000001", {"due_date": None}, 400),
        ("PATCH", "/jobs/J000001", {"due_date": "2026-01-01"}, 400),
        ("PATCH", "/jobs/J000001", {"manager_uuid": "nobody"}, 400),
        ("PATCH", "/jobs/J000001", {"manager_uuid": 7}, 400),
        ("PATCH", "/jobs/J000001", {"state": "Completed", "colour": "red"}, 400),
    ],
)
async def test_bad_practice_manager_input_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    state: SandboxState,
    method: str,
    path: str,
    body: object,
    status: int,
) -> None:
    """Invalid job states, clients, categories and job edits answer 400 (unknown clients and
    jobs 404) with a message, and the practice is as it was (a state in use cannot go)."""
    practice = state.add_tenant("Demo XPM", tenant_type="PRACTICEMANAGER")
    olivia = state.add_client(practice.tenant_id, "Olivia Chen")
    job = state.add_job(
        practice.tenant_id,
        client_uuid=olivia.uuid,
        name="Tax Return",
        description="FY26",
        start_date=date(2026, 12, 3),
        due_date=date(2026, 12, 31),
    )
    before = (list(practice.job_states), dict(practice.clients), list(practice.categories))
    url = f"{C}/tenants/{practice.tenant_id}{path}"
    answer = await client.request(method, url, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]
    assert (list(practice.job_states), dict(practice.clients), list(practice.categories)) == before
    assert practice.jobs == {job.number: job}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/categories", None),
        ("POST", "/categories", {"name": "Tax"}),
        ("GET", "/job-states", None),
        ("PUT", "/job-states", {"states": [{"code": "Planned"}]}),
        ("GET", "/clients", None),
        ("POST", "/clients", {"name": "Acme"}),
        ("GET", "/jobs", None),
    ],
)
async def test_practice_manager_routes_need_a_practice(
    client: httpx.AsyncClient, state: SandboxState, method: str, path: str, body: object
) -> None:
    """On an ORGANISATION tenant the XPM control routes answer 400 (not PRACTICEMANAGER) and
    add nothing; on an unknown tenant 404."""
    tenant_id = next(iter(state.tenants))
    answer = await client.request(method, f"{C}/tenants/{tenant_id}{path}", json=body)
    assert answer.status_code == 400
    assert "not PRACTICEMANAGER" in answer.json()["error"]
    assert (state.tenant(tenant_id).clients, state.tenant(tenant_id).categories) == ({}, [])
    unknown = await client.request(method, f"{C}/tenants/nope{path}", json=body)
    assert unknown.status_code == 404
