"""Contract, client side: every request syncd's Xero client sends, and every answer it gets from
the sandbox, conforms to Xero's official OpenAPI specs (identity, Projects, Accounting)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx

from syncd.domain.ids import CompanyId
from syncd.store.db import Database
from tests.contract.openapi import RecordingTransport, assert_conforms, load_spec
from tests.harness import harness

A = CompanyId("company-a")


async def test_everything_syncd_sends_to_xero_conforms(db: Database, fernet_key: str) -> None:
    """Connect, then each Projects and Contacts call syncd makes, validated both ways."""
    for name in ("projects", "accounting", "identity"):
        load_spec(name)  # skips with instructions when the specs are absent
    recorders: list[RecordingTransport] = []

    def record(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        recorders.append(RecordingTransport(inner))
        return recorders[-1]

    async with harness(db, fernet_key, wrap_transport=record) as h:
        tenant = await h.connect(A)
        h.sandbox.add_user(tenant, "Ann Accountant", "ann@example.com")
        xero = h.services.require_xero()
        contact = await xero.contacts.create(
            A,
            name="Client  One",
            email="one@example.com",
            first_name="Client",
            last_name="One",
            contact_number="crm-client-1",
            idempotency_key="c-1",
        )
        assert await xero.contacts.find_by_email(A, "one@example.com") == contact
        assert (await xero.contacts.get(A, contact.contact_id)).name == "Client One"
        await xero.contacts.update(
            A, contact.contact_id, name="Client Uno", email=None, idempotency_key="c-2"
        )
        assert [c.contact_id async for c in xero.contacts.list_all(A)] == [contact.contact_id]
        project = await xero.projects.create(
            A,
            contact_id=contact.contact_id,
            name="Tax Return - Client Uno",
            deadline=date(2026, 12, 31),
            estimate=Decimal("350.00"),
            idempotency_key="p-1",
        )
        assert project.status == "INPROGRESS"
        assert project.estimate == Decimal("350.00")
        await xero.projects.update(
            A,
            project.project_id,
            name="Tax Return 2026 - Client Uno",
            deadline=None,
            estimate=None,
            idempotency_key="p-2",
        )
        await xero.projects.set_status(A, project.project_id, "CLOSED", idempotency_key="p-3")
        fetched = await xero.projects.get(A, project.project_id)
        assert (fetched.name, fetched.status) == ("Tax Return 2026 - Client Uno", "CLOSED")
        page = await xero.projects.list_page(A, contact_id=contact.contact_id, states=["CLOSED"])
        assert [p.project_id for p in page.items] == [project.project_id]
        assert [u.name for u in await xero.projects.users(A)] == ["Ann Accountant"]
    pairs = [pair for recorder in recorders for pair in recorder.pairs]
    assert len(pairs) == 14  # authorize, token, connections and the eleven API calls above
    assert_conforms(pairs)
