"""The sandbox's Projects API: create, get, update, status, list filters and paging, users."""

from __future__ import annotations

import uuid

import httpx
import pytest

from syncd.sandbox.models import Contact, Tenant
from syncd.sandbox.state import SandboxState
from tests.sandbox.flow import PROJECTS, Session

pytestmark = pytest.mark.usefixtures("session")


async def _create(
    client: httpx.AsyncClient,
    session: Session,
    contact: Contact,
    name: str = "2025 Tax Return",
    **extra: object,
) -> httpx.Response:
    body = {"contactId": contact.contact_id, "name": name, **extra}
    return await client.post(f"{PROJECTS}/Projects", headers=session.headers(), json=body)


async def test_create_answers_201_with_the_project(
    client: httpx.AsyncClient, session: Session, contact: Contact
) -> None:
    """POST /Projects creates an INPROGRESS project with money as {currency, value}."""
    answer = await _create(
        client, session, contact, deadlineUtc="2026-06-30T00:00:00Z", estimateAmount=99.5
    )
    assert answer.status_code == 201
    project = answer.json()
    uuid.UUID(project["projectId"])
    assert project["contactId"] == contact.contact_id
    assert project["name"] == "2025 Tax Return"
    assert project["status"] == "INPROGRESS"
    assert project["currencyCode"] == "AUD"
    assert project["deadlineUtc"] == "2026-06-30T00:00:00Z"
    assert project["estimate"] == {"currency": "AUD", "value": 99.5}
    assert project["totalInvoiced"] == {"currency": "AUD", "value": 0.0}
    fetched = await client.get(
        f"{PROJECTS}/Projects/{project['projectId']}", headers=session.headers()
    )
    assert fetched.json() == project


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # The spec's own create example sends "99.99" (and a contactId that is not a UUID), but
        # its schema says `estimateAmount: number`; the schema decides, so both are refused.
        ("estimateAmount", "99.99"),
        ("contactId", "00000000-0000-0000-000-000000000000"),
        ("estimateAmount", True),
        ("estimateAmount", None),
        ("deadlineUtc", "2026-06-30T00:00:00"),
        ("deadlineUtc", "2026-06-30"),
        ("deadlineUtc", "2026-02-30T00:00:00Z"),
        ("deadlineUtc", "30/06/2026 00:00"),
        ("deadlineUtc", 1782777600),
        ("deadlineUtc", None),
        ("name", 5),
        ("name", None),
    ],
)
async def test_create_refuses_what_the_spec_refuses(
    client: httpx.AsyncClient,
    session: Session,
    contact: Contact,
    state: SandboxState,
    field: str,
    value: object,
) -> None:
    """A value of the wrong type or format (a zone-less or date-only deadline, an amount as a
    string, null) is a 400 naming the field, and nothing is created."""
    answer = await _create(client, session, contact, **{field: value})
    assert answer.status_code == 400, answer.text
    model_state = answer.json()["modelState"]
    assert list(model_state) == [f"model.{field[:1].upper()}{field[1:]}"]
    assert state.tenant(session.tenant_id).projects == {}


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-06-30T10:00:00+10:00", "2026-06-30T00:00:00Z"),
        ("2026-06-30t00:00:00.123z", "2026-06-30T00:00:00Z"),
        ("2026-06-29T23:59:59-00:30", "2026-06-30T00:29:59Z"),
    ],
)
async def test_create_reads_any_rfc3339_deadline(
    client: httpx.AsyncClient, session: Session, contact: Contact, sent: str, stored: str
) -> None:
    """deadlineUtc may carry any zone offset and a fraction; Xero answers it in UTC."""
    answer = await _create(client, session, contact, deadlineUtc=sent, estimateAmount=100)
    assert answer.status_code == 201, answer.text
    assert answer.json()["deadlineUtc"] == stored
    assert answer.json()["estimate"]["value"] == 100.0


@pytest.mark.parametrize(
    "raw", [b'{"name": "x", "estimateAmount": NaN}', b"[" * 5000 + b"]" * 5000, b"{", b""]
)
async def test_unreadable_bodies_are_400(
    client: httpx.AsyncClient, session: Session, raw: bytes
) -> None:
    """Not JSON (NaN, unclosed, empty) or nested past reading: 400 in the Projects shape."""
    headers = {**session.headers(), "Content-Type": "application/json"}
    answer = await client.post(f"{PROJECTS}/Projects", headers=headers, content=raw)
    assert answer.status_code == 400
    assert "message" in answer.json()


async def test_missing_contact_is_400_with_model_state(
    client: httpx.AsyncClient, session: Session
) -> None:
    """Without contactId Xero answers 400 {message, modelState}."""
    answer = await client.post(
        f"{PROJECTS}/Projects", headers=session.headers(), json={"name": "No client"}
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["message"]
    assert body["modelState"] == {"model.ContactId": ["The ContactId field is required."]}


async def test_contact_of_another_tenant_is_refused(
    client: httpx.AsyncClient, session: Session, state: SandboxState
) -> None:
    """contactId must be a contact of the tenant called."""
    other = next(t for t in state.tenants.values() if t.tenant_id != session.tenant_id)
    stranger = state.add_contact(other.tenant_id, "Stranger")
    answer = await _create(client, session, stranger)
    assert answer.status_code == 400
    assert "model.ContactId" in answer.json()["modelState"]


@pytest.mark.parametrize(
    "body",
    [{"contactId": "x"}, {"name": "  "}, {"name": "ok", "deadlineUtc": "soon"}, [1, 2]],
)
async def test_invalid_bodies_are_400(
    client: httpx.AsyncClient, session: Session, contact: Contact, body: object
) -> None:
    """Missing name, bad dates and non-objects answer 400 in the Projects error shape."""
    if isinstance(body, dict) and "contactId" not in body:
        body = {"contactId": contact.contact_id, **body}
    answer = await client.post(f"{PROJECTS}/Projects", headers=session.headers(), json=body)
    assert answer.status_code == 400
    assert "message" in answer.json()


async def test_put_updates_name_deadline_and_estimate(
    client: httpx.AsyncClient, session: Session, contact: Contact
) -> None:
    """PUT answers 204 and replaces name, deadline and estimate; the contact stays."""
    project = (await _create(client, session, contact, estimateAmount=10)).json()
    url = f"{PROJECTS}/Projects/{project['projectId']}"
    answer = await client.put(
        url,
        headers=session.headers(),
        json={
            "name": "Renamed",
            "deadlineUtc": "2026-07-01T12:00:00Z",
            "contactId": str(uuid.uuid4()),
        },
    )
    assert answer.status_code == 204
    assert answer.content == b""
    after = (await client.get(url, headers=session.headers())).json()
    assert after["name"] == "Renamed"
    assert after["deadlineUtc"] == "2026-07-01T12:00:00Z"
    assert "estimate" not in after
    assert after["contactId"] == contact.contact_id
    nameless = await client.put(url, headers=session.headers(), json={"deadlineUtc": None})
    assert nameless.status_code == 400


async def test_patch_changes_the_status(
    client: httpx.AsyncClient, session: Session, contact: Contact
) -> None:
    """PATCH {"status": "CLOSED"} answers 204; an unknown status is 400."""
    project = (await _create(client, session, contact)).json()
    url = f"{PROJECTS}/Projects/{project['projectId']}"
    closed = await client.patch(url, headers=session.headers(), json={"status": "CLOSED"})
    assert closed.status_code == 204
    assert (await client.get(url, headers=session.headers())).json()["status"] == "CLOSED"
    reopened = await client.patch(url, headers=session.headers(), json={"status": "INPROGRESS"})
    assert reopened.status_code == 204
    bad = await client.patch(url, headers=session.headers(), json={"status": "DONE"})
    assert bad.status_code == 400


async def test_unknown_or_deleted_project_is_404(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """A project deleted in Xero disappears from get, put, patch and list."""
    project = (await _create(client, session, contact)).json()
    url = f"{PROJECTS}/Projects/{project['projectId']}"
    state.delete_project(session.tenant_id, project["projectId"])
    assert (await client.get(url, headers=session.headers())).status_code == 404
    assert (
        await client.patch(url, headers=session.headers(), json={"status": "CLOSED"})
    ).status_code == 404
    assert (await client.put(url, headers=session.headers(), json={"name": "x"})).status_code == 404
    listed = await client.get(f"{PROJECTS}/Projects", headers=session.headers())
    assert listed.json()["items"] == []
    malformed = await client.get(f"{PROJECTS}/Projects/not-a-guid", headers=session.headers())
    assert malformed.status_code == 400


async def test_status_changed_in_xero_is_visible(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """set_project_status (a user closing the job in Xero) shows in the API."""
    project = (await _create(client, session, contact)).json()
    state.set_project_status(session.tenant_id, project["projectId"], "CLOSED")
    listed = await client.get(
        f"{PROJECTS}/Projects", params={"states": "CLOSED"}, headers=session.headers()
    )
    assert [p["projectId"] for p in listed.json()["items"]] == [project["projectId"]]


async def test_list_filters_by_ids_contact_and_state(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """projectIds (repeated, the spec's exploded array), contactID and states filter the
    list."""
    other = state.add_contact(session.tenant_id, "Other Client")
    a = (await _create(client, session, contact, "A")).json()["projectId"]
    b = (await _create(client, session, contact, "B")).json()["projectId"]
    c = (await _create(client, session, other, "C")).json()["projectId"]
    state.set_project_status(session.tenant_id, b, "CLOSED")

    async def ids(params: object) -> list[str]:
        answer = await client.get(f"{PROJECTS}/Projects", params=params, headers=session.headers())
        assert answer.status_code == 200, answer.text
        return [p["projectId"] for p in answer.json()["items"]]

    assert await ids({}) == [a, b, c]
    assert await ids([("projectIds", a), ("projectIds", c)]) == [a, c]
    assert await ids({"projectIds": b.upper()}) == [b]
    assert await ids({"contactID": other.contact_id}) == [c]
    assert await ids({"contactId": contact.contact_id, "states": "INPROGRESS"}) == [a]
    assert await ids({"states": "INPROGRESS,CLOSED"}) == [a, b, c]


@pytest.mark.parametrize(
    "params",
    [
        {"states": "OPEN"},
        [("states", "INPROGRESS"), ("states", "CLOSED")],
        {"projectIds": "{a},{b}"},
        {"projectIds": "not-a-guid"},
        [("projectIds", "{a}"), ("projectIds", "")],
        {"contactID": "not-a-guid"},
        [("page", "1"), ("page", "2")],
    ],
)
async def test_list_refuses_parameters_the_spec_refuses(
    client: httpx.AsyncClient, session: Session, contact: Contact, params: object
) -> None:
    """Comma-separated projectIds (the spec's array is exploded: one id per projectIds=), a
    value that is not a UUID, an unknown state and a scalar given twice are 400s."""
    a = (await _create(client, session, contact, "A")).json()["projectId"]
    b = (await _create(client, session, contact, "B")).json()["projectId"]
    items = params.items() if isinstance(params, dict) else params
    query = [(k, str(v).format(a=a, b=b)) for k, v in items]
    answer = await client.get(f"{PROJECTS}/Projects", params=query, headers=session.headers())
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"]


async def test_list_pages(client: httpx.AsyncClient, session: Session, contact: Contact) -> None:
    """page and pageSize page the list; pagination reports page, size, pages and items."""
    for index in range(5):
        await _create(client, session, contact, f"Job {index}")
    answer = await client.get(
        f"{PROJECTS}/Projects", params={"page": 2, "pageSize": 2}, headers=session.headers()
    )
    body = answer.json()
    assert body["pagination"] == {"page": 2, "pageSize": 2, "pageCount": 3, "itemCount": 5}
    assert [p["name"] for p in body["items"]] == ["Job 2", "Job 3"]
    default = (await client.get(f"{PROJECTS}/Projects", headers=session.headers())).json()
    assert default["pagination"] == {"page": 1, "pageSize": 50, "pageCount": 1, "itemCount": 5}


@pytest.mark.parametrize(
    "params",
    [{"pageSize": 0}, {"pageSize": 501}, {"page": 0}, {"page": "x"}, {"page": "1.0"}],
)
async def test_out_of_range_paging_is_400(
    client: httpx.AsyncClient, session: Session, params: dict[str, object]
) -> None:
    """pageSize must be from 1 to 500 and page at least 1."""
    answer = await client.get(f"{PROJECTS}/Projects", params=params, headers=session.headers())
    assert answer.status_code == 400


async def test_projects_users_lists_the_tenant_staff(
    client: httpx.AsyncClient, session: Session, state: SandboxState, tenant: Tenant
) -> None:
    """GET /ProjectsUsers pages the users added with add_user."""
    ann = state.add_user(tenant.tenant_id, "Ann Accountant", "ann@practice.example")
    state.add_user(tenant.tenant_id, "Bob Bookkeeper", "bob@practice.example")
    answer = await client.get(
        f"{PROJECTS}/ProjectsUsers", params={"pageSize": 1}, headers=session.headers()
    )
    body = answer.json()
    assert body["pagination"] == {"page": 1, "pageSize": 1, "pageCount": 2, "itemCount": 2}
    assert body["items"] == [ann]
    assert set(ann) == {"userId", "name", "email"}


async def test_paths_are_case_insensitive(
    client: httpx.AsyncClient, session: Session, contact: Contact
) -> None:
    """/projects.xro/2.0/projects works like /Projects, as on Xero."""
    answer = await client.get("/projects.xro/2.0/projects", headers=session.headers())
    assert answer.status_code == 200
