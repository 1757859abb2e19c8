"""Contract, client side, without a database: the Projects and Contacts requests syncd's Xero
adapters build (query serialization included) conform to the published specs as they are (no
repair for `projectIds`), and the sandbox, which checks the same rules, serves them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest

from syncd.domain.errors import PermanentError
from syncd.domain.ids import CompanyId
from syncd.sandbox.state import SandboxState
from syncd.xero.contacts import ContactsApi
from syncd.xero.governor import RateGovernor
from syncd.xero.http import Credentials, XeroHttp, build_client
from syncd.xero.projects import ProjectsApi
from tests.contract import openapi
from tests.contract.openapi import RecordingTransport, assert_conforms
from tests.fakes import InstantClock, MemoryAudit
from tests.sandbox.flow import BASE, PROJECTS, Session, connect

COMPANY = CompanyId("company-a")


class SessionTokens:
    """A TokenSource over one sandbox session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def credentials(self, company: CompanyId) -> Credentials:
        return Credentials(self.session.access_token, self.session.tenant_id)

    async def refreshed(self, company: CompanyId, *, stale: str) -> Credentials:
        return await self.credentials(company)


def _xero(session: Session, recorder: RecordingTransport) -> XeroHttp:
    clock = InstantClock()
    return XeroHttp(
        build_client(base_url=BASE, transport=recorder),
        tokens=SessionTokens(session),
        governor=RateGovernor(clock=clock),
        audit=MemoryAudit(),
        clock=clock,
    )


async def test_project_list_queries_conform_and_are_served(
    client: httpx.AsyncClient, recorder: RecordingTransport, state: SandboxState
) -> None:
    """list_page sends projectIds as repeated parameters (the spec's exploded array) and one
    state; the spec accepts the requests as published and the sandbox answers them."""
    session = await connect(client)
    http = _xero(session, recorder)
    projects, contacts = ProjectsApi(http), ContactsApi(http)
    contact = await contacts.create(
        COMPANY, name="Client One", email="one@example.com", idempotency_key="c-1"
    )
    made = [
        await projects.create(
            COMPANY,
            contact_id=contact.contact_id,
            name=f"Job {n}",
            deadline=date(2026, 12, 31),
            estimate=Decimal("350.50"),
            idempotency_key=f"p-{n}",
        )
        for n in range(3)
    ]
    await projects.set_status(COMPANY, made[2].project_id, "CLOSED", idempotency_key="s-1")
    wanted = [made[0].project_id, made[2].project_id]
    page = await projects.list_page(COMPANY, project_ids=wanted, contact_id=contact.contact_id)
    assert [p.project_id for p in page.items] == wanted
    closed = await projects.list_page(COMPANY, states=["CLOSED"], project_ids=wanted)
    assert [p.project_id for p in closed.items] == [made[2].project_id]
    everything = await projects.list_page(COMPANY, states=["INPROGRESS", "CLOSED"])
    assert len(everything.items) == 3
    assert await contacts.find_by_email(COMPANY, "one@example.com") == contact
    assert [c.contact_id async for c in contacts.list_all(COMPANY)] == [contact.contact_id]
    listed = [
        request.url.params
        for request, _ in recorder.pairs
        if request.method == "GET" and request.url.path == f"{PROJECTS}/Projects"
    ]
    assert [p.get_list("projectIds") for p in listed] == [wanted, wanted, []]
    assert [p.get_list("states") for p in listed] == [[], ["CLOSED"], []]
    checked = assert_conforms(recorder.pairs)
    assert sum(line.endswith("-> projects") for line in checked) == 7  # 3 creates, 1 patch, 3 lists


async def test_comma_separated_project_ids_fail_the_spec_and_the_sandbox(
    client: httpx.AsyncClient, recorder: RecordingTransport, state: SandboxState
) -> None:
    """The old form (`projectIds=a,b`) is refused by the published spec and by the sandbox,
    so syncd going back to it fails this suite."""
    session = await connect(client)
    contact = state.add_contact(session.tenant_id, "Acme Ltd")
    ids = [
        state.add_project(
            session.tenant_id,
            contact_id=contact.contact_id,
            name=name,
            deadline=None,
            estimate=None,
        ).project_id
        for name in ("A", "B")
    ]
    old = client.build_request(
        "GET",
        f"{PROJECTS}/Projects",
        params={"projectIds": ",".join(ids)},
        headers=session.headers(),
    )
    assert any("projectIds" in e for e in openapi.conformance_errors(old, None))
    answer = await client.send(old)
    assert answer.status_code == 400
    assert "projectIds" in answer.json()["message"]
    with pytest.raises(PermanentError, match="projectIds"):
        await _xero(session, recorder).request(
            COMPANY, "GET", f"{PROJECTS}/Projects", params={"projectIds": ",".join(ids)}
        )
