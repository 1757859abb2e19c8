"""The sandbox answers as Xero's official OpenAPI specs say, for every endpoint syncd uses."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from syncd.sandbox.state import SandboxState
from tests.contract import openapi
from tests.contract.openapi import RecordingTransport, assert_conforms
from tests.sandbox.flow import (
    ACCOUNTING,
    CLIENT_ID,
    CLIENT_SECRET,
    PKCE_CLIENT_ID,
    PROJECTS,
    REDIRECT,
    SCOPES,
    authorize,
    connect,
    pkce_pair,
    query_of,
    token_request,
)


async def test_oauth_and_connections_conform(
    client: httpx.AsyncClient, recorder: RecordingTransport, state: SandboxState
) -> None:
    """Code exchange (Basic and PKCE), refresh, connections, disconnect and errors conform."""
    session = await connect(client)
    verifier, challenge = pkce_pair()
    answer = await authorize(client, client_id=PKCE_CLIENT_ID, challenge=challenge)
    pkce = await client.post(
        "/connect/token",
        data={
            "grant_type": "authorization_code",
            "client_id": PKCE_CLIENT_ID,
            "code": query_of(answer.headers["location"])["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert pkce.status_code == 200
    refreshed = await client.post(
        "/connect/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": session.refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert refreshed.status_code == 200
    stale = await token_request(
        client, {"grant_type": "authorization_code", "code": "nope", "redirect_uri": REDIRECT}
    )
    assert stale.status_code == 400
    listed = await client.get("/connections", headers=session.headers())
    event = listed.json()[0]["authEventId"]
    await client.get("/Connections", params={"authEventId": event}, headers=session.headers())
    gone = await client.delete(f"/connections/{listed.json()[0]['id']}", headers=session.headers())
    assert gone.status_code == 204
    await client.post(
        "/connect/revocation",
        data={"token": session.refresh_token},
        auth=httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET),
    )
    checked = assert_conforms(recorder.pairs)
    assert "GET /connections -> identity" in checked
    assert "POST /connect/token -> token" in checked


async def test_projects_endpoints_conform(
    client: httpx.AsyncClient, recorder: RecordingTransport, state: SandboxState
) -> None:
    """Projects create (answered, replayed, conflicting), get, list, put, patch, users and the
    400 error conform to the spec."""
    session = await connect(client)
    contact = state.add_contact(session.tenant_id, "Acme Ltd")
    state.add_user(session.tenant_id, "Ann Accountant", "ann@practice.example")
    headers = session.headers(**{"Idempotency-Key": "create-1"})
    body = {
        "contactId": contact.contact_id,
        "name": "2025 Tax Return",
        "deadlineUtc": "2026-06-30T00:00:00Z",
        "estimateAmount": 450.0,
    }
    created = await client.post(f"{PROJECTS}/Projects", headers=headers, json=body)
    assert created.status_code == 201
    project_id = created.json()["projectId"]
    replayed = await client.post(f"{PROJECTS}/Projects", headers=headers, json=body)
    assert replayed.json() == created.json()
    conflict = await client.post(
        f"{PROJECTS}/Projects",
        headers=headers,
        json={"contactId": contact.contact_id, "name": "2025 Tax Return"},
    )
    assert conflict.status_code == 422
    await client.get(f"{PROJECTS}/Projects/{project_id}", headers=session.headers())
    await client.get(
        f"{PROJECTS}/Projects",
        params={
            "contactID": contact.contact_id,
            "states": "INPROGRESS",
            "page": 1,
            "pageSize": 100,
        },
        headers=session.headers(),
    )
    await client.get(
        f"{PROJECTS}/Projects",
        params={"projectIds": [project_id, contact.contact_id]},
        headers=session.headers(),
    )
    updated = await client.put(
        f"{PROJECTS}/Projects/{project_id}",
        headers=session.headers(),
        json={"name": "2025 Tax Return (amended)", "deadlineUtc": "2026-07-31T00:00:00Z"},
    )
    assert updated.status_code == 204
    patched = await client.patch(
        f"{PROJECTS}/Projects/{project_id}", headers=session.headers(), json={"status": "CLOSED"}
    )
    assert patched.status_code == 204
    await client.get(f"{PROJECTS}/ProjectsUsers", params={"page": 1}, headers=session.headers())
    refused = await client.post(
        f"{PROJECTS}/Projects", headers=session.headers(), json={"name": "No contact"}
    )
    assert refused.status_code == 400
    checked = assert_conforms(recorder.pairs)
    assert sum(line.endswith("-> projects") for line in checked) == 10


async def test_contacts_endpoints_conform(
    client: httpx.AsyncClient, recorder: RecordingTransport, state: SandboxState
) -> None:
    """Contacts list/where/search/create/duplicate/upsert/get/update/archive conform."""
    session = await connect(client)
    url = f"{ACCOUNTING}/Contacts"
    created = await client.put(
        url,
        headers=session.headers(**{"Idempotency-Key": "contact-1"}),
        json={
            "Contacts": [
                {"Name": "Acme Ltd", "EmailAddress": "jo@acme.example", "ContactNumber": "CRM-1"}
            ]
        },
    )
    assert created.status_code == 200
    contact_id = created.json()["Contacts"][0]["ContactID"]
    duplicate = await client.put(
        url, headers=session.headers(), json={"Contacts": [{"Name": "Acme Ltd"}]}
    )
    assert duplicate.status_code == 400
    await client.put(
        url,
        params={"summarizeErrors": "false"},
        headers=session.headers(),
        json={"Contacts": [{"Name": "Acme Ltd"}, {"Name": "Other Co"}]},
    )
    await client.get(
        url, params={"where": 'EmailAddress=="jo@acme.example"'}, headers=session.headers()
    )
    await client.get(
        url,
        params={"where": 'Name=="Acme Ltd"', "includeArchived": "true"},
        headers=session.headers(),
    )
    await client.get(
        url, params={"searchTerm": "acme", "page": 1, "pageSize": 50}, headers=session.headers()
    )
    await client.get(
        url, params={"IDs": contact_id, "summaryOnly": "true"}, headers=session.headers()
    )
    await client.post(
        url,
        headers=session.headers(),
        json={"Contacts": [{"ContactID": contact_id, "FirstName": "Jo"}]},
    )
    await client.get(f"{url}/{contact_id}", headers=session.headers())
    await client.get(f"{url}/CRM-1", headers=session.headers())
    archived = await client.post(
        f"{url}/{contact_id}",
        headers=session.headers(),
        json={"Contacts": [{"ContactStatus": "ARCHIVED"}]},
    )
    assert archived.json()["Contacts"][0]["ContactStatus"] == "ARCHIVED"
    checked = assert_conforms(recorder.pairs)
    assert sum(line.endswith("-> accounting") for line in checked) == 11


async def test_rate_limited_and_faulted_answers_still_have_conforming_requests(
    client: httpx.AsyncClient, recorder: RecordingTransport, state: SandboxState
) -> None:
    """429s and injected failures are platform answers: only their requests are validated."""
    from syncd.sandbox.models import Faults, Limits

    session = await connect(client)
    state.set_limits(Limits(per_minute=1))
    await client.get(f"{PROJECTS}/Projects", headers=session.headers())
    limited = await client.get(f"{PROJECTS}/Projects", headers=session.headers())
    assert limited.status_code == 429
    state.set_limits(Limits())
    state.faults = Faults(drop_next=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(f"{ACCOUNTING}/Contacts", headers=session.headers())
    assert recorder.exchanges[-1].response is None
    assert_conforms(recorder.pairs)


def _exchange(
    method: str, url: str, status: int, body: object, **request: object
) -> tuple[httpx.Request, httpx.Response]:
    sent = httpx.Request(method, url, headers={"Xero-Tenant-Id": "t"}, **request)
    return sent, httpx.Response(status, json=body, request=sent)


def test_nonconforming_exchanges_are_caught() -> None:
    """assert_conforms fails on a wrong status, a wrong shape or a bad request body."""
    project = {
        "projectId": "b021e7cb-1903-4292-b48b-5b27b4271e3e",
        "name": "x",
        "status": "INPROGRESS",
    }
    wrong_status = _exchange(
        "POST", f"http://s{PROJECTS}/Projects", 200, project, json={"name": "x"}
    )
    with pytest.raises(AssertionError, match="200"):
        assert_conforms([wrong_status])
    bad_shape = _exchange(
        "GET",
        f"http://s{PROJECTS}/Projects/{project['projectId']}",
        200,
        {**project, "status": "OPEN"},
    )
    with pytest.raises(AssertionError, match="OPEN"):
        assert_conforms([bad_shape])
    bad_request = _exchange(
        "PATCH", f"http://s{PROJECTS}/Projects/{project['projectId']}", 204, None, json={}
    )
    with pytest.raises(AssertionError, match="request"):
        assert_conforms([bad_request])
    unknown = _exchange("GET", "http://s/api.xro/2.0/Nothing", 200, {})
    with pytest.raises(AssertionError):
        assert_conforms([unknown])
    token = httpx.Request(
        "POST", "http://s/connect/token", data={"grant_type": "refresh_token", "refresh_token": "r"}
    )
    with pytest.raises(AssertionError, match="expires_in"):
        assert_conforms(
            [
                (
                    token,
                    httpx.Response(
                        200,
                        json={"access_token": "a", "expires_in": "soon", "token_type": "Bearer"},
                        request=token,
                    ),
                )
            ]
        )


@pytest.mark.parametrize("name", sorted(openapi.REPAIRS))
def test_each_spec_repair_is_still_needed(name: str) -> None:
    """Every in-memory repair still changes the published spec (drop it once Xero fixes it)."""
    import yaml

    with openapi._require(name).open("rb") as handle:
        pristine = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    for repair in openapi.REPAIRS[name]:
        assert repair(copy.deepcopy(pristine)) > 0, repair.__doc__


def test_missing_specs_skip_with_instructions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the spec files the contract tests skip, saying where to put them and the source."""
    monkeypatch.setenv("SYNCD_XERO_OPENAPI_DIR", str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match=r"github\.com/XeroAPI/Xero-OpenAPI") as skipped:
        openapi._require("projects")
    assert str(tmp_path) in str(skipped.value)


async def test_invoices_endpoints_conform(
    client: httpx.AsyncClient, recorder: RecordingTransport, state: SandboxState
) -> None:
    """Invoices get/list (where, IDs, numbers, contacts, statuses, order, paging) conform."""
    session = await connect(client, scope=f"{SCOPES} accounting.transactions.read")
    contact = state.add_contact(session.tenant_id, "Acme Ltd")
    draft = state.add_invoice(
        session.tenant_id, contact_id=contact.contact_id, total=Decimal("40.00"), status="DRAFT"
    )
    paid = state.add_invoice(
        session.tenant_id, contact_id=contact.contact_id, total=Decimal("46"), reference="J-2"
    )
    state.update_invoice_status(session.tenant_id, paid.invoice_id, "PAID")
    url = f"{ACCOUNTING}/Invoices"
    await client.get(f"{url}/{draft.invoice_id}", headers=session.headers())
    await client.get(f"{url}/{paid.invoice_id}", headers=session.headers())
    await client.get(url, headers=session.headers())
    await client.get(url, params={"where": 'Status=="DRAFT"'}, headers=session.headers())
    await client.get(
        url,
        params={
            "IDs": f"{draft.invoice_id},{paid.invoice_id}",
            "ContactIDs": contact.contact_id,
            "Statuses": "DRAFT,PAID",
            "InvoiceNumbers": "INV-0001",
            "order": "InvoiceNumber DESC",
            "page": 1,
            "pageSize": 10,
        },
        headers=session.headers(**{"If-Modified-Since": "2020-02-06T12:17:43.202-08:00"}),
    )
    missing = await client.get(f"{url}/{state.new_id()}", headers=session.headers())
    assert missing.status_code == 404
    checked = assert_conforms(recorder.pairs)
    assert sum(line.endswith("-> accounting") for line in checked) == 6
