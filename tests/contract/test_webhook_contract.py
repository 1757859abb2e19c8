"""The webhooks the sandbox sends are what Xero's webhooks spec describes (CONTACT, INVOICE, and
intent-to-receive); like Xero, it sends none about projects, which the spec has no events for."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from syncd.sandbox.state import SandboxState
from syncd.sandbox.webhooks import WebhookDispatcher
from tests.contract.openapi import RecordingTransport, webhook_errors
from tests.sandbox.flow import ACCOUNTING, CLIENT_ID, PROJECTS, Session, connect
from tests.sandbox.receiver import URL, Receiver, signature_ok

KEY = "contract-webhook-key"
# xero-facts V3: a CONTACT UPDATE delivery, shaped as the spec's own example.
V3_BODY = (
    b'{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/Contacts/'
    b'717f2bfc-c6d4-41fd-b238-3f2f0c0cf777","resourceId":"717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",'
    b'"eventDateUtc":"2024-06-21T01:15:39.902","eventType":"UPDATE","eventCategory":"CONTACT",'
    b'"tenantId":"c2cc9b6e-9458-4c7d-93cc-f02b81b0594f","tenantType":"ORGANISATION"}],'
    b'"firstEventSequence":1,"lastEventSequence":1,"entropy":"S0m3r4Nd0mt3xt"}'
)


@pytest.fixture
def posted() -> RecordingTransport:
    """Records every webhook POST on its way to a correct receiver."""
    return RecordingTransport(Receiver(KEY).transport())


@pytest.fixture
async def session(client: httpx.AsyncClient) -> Session:
    return await connect(client)


@pytest.fixture
def dispatcher(
    session: Session, state: SandboxState, posted: RecordingTransport
) -> WebhookDispatcher:
    """The test app, connected to the organisation, with its webhook going to `posted`."""
    state.configure_webhooks(URL, client_id=CLIENT_ID, webhook_key=KEY)
    return WebhookDispatcher(state, transport=posted)


def _bodies(posted: RecordingTransport) -> list[bytes]:
    for exchange in posted.exchanges:
        request = exchange.request
        assert request.headers["content-type"] == "application/json; charset=utf-8"
        assert signature_ok(request.content, request.headers["x-xero-signature"], KEY)
    return [exchange.request.content for exchange in posted.exchanges]


def test_the_validator_accepts_xeros_example_and_catches_mistakes() -> None:
    """V3 conforms; a zoned date, a bad category or sequence 0 does not."""
    assert webhook_errors(V3_BODY) == []
    assert webhook_errors(V3_BODY.replace(b'.902"', b'.902Z"'))
    assert webhook_errors(V3_BODY.replace(b'"CONTACT"', b'"PROJECT"'))
    assert webhook_errors(V3_BODY.replace(b'"firstEventSequence":1', b'"firstEventSequence":0'))


def test_the_official_spec_has_no_project_events() -> None:
    """A PROJECT event (category and event type alike) is rejected by Xero's own spec: there are
    no Projects webhooks to simulate."""
    project = V3_BODY.replace(b'"CONTACT"', b'"PROJECT"').replace(
        b'"UPDATE"', b'"project.completed"'
    )
    errors = webhook_errors(project)
    assert any("PROJECT" in error and "eventCategory" in error for error in errors)
    assert any("project.completed" in error and "eventType" in error for error in errors)


async def test_contact_and_invoice_deliveries_conform_to_the_webhooks_spec(
    client: httpx.AsyncClient,
    session: Session,
    state: SandboxState,
    posted: RecordingTransport,
    dispatcher: WebhookDispatcher,
) -> None:
    """CONTACT CREATE/UPDATE (an archive too) and INVOICE CREATE/UPDATE payloads validate."""
    created = await client.put(
        f"{ACCOUNTING}/Contacts",
        headers=session.headers(),
        json={"Contacts": [{"Name": "Acme Ltd", "ContactNumber": "CRM-1"}]},
    )
    contact_id = created.json()["Contacts"][0]["ContactID"]
    await dispatcher.flush()
    invoice = state.add_invoice(session.tenant_id, contact_id=contact_id, total=Decimal(90))
    state.update_invoice_status(session.tenant_id, invoice.invoice_id, "PAID")
    state.archive_contact(session.tenant_id, contact_id)
    await dispatcher.flush()
    bodies = _bodies(posted)
    assert len(bodies) == 2
    for body in bodies:
        assert webhook_errors(body) == []


async def test_project_changes_send_nothing_outside_the_spec(
    client: httpx.AsyncClient,
    session: Session,
    state: SandboxState,
    posted: RecordingTransport,
    dispatcher: WebhookDispatcher,
) -> None:
    """Closing and reopening a project sends no webhook; the one delivery is the contact's
    CREATE, and it conforms to the spec."""
    contact = state.add_contact(session.tenant_id, "Acme Ltd")
    created = await client.post(
        f"{PROJECTS}/Projects",
        headers=session.headers(),
        json={"contactId": contact.contact_id, "name": "Tax return"},
    )
    project_id = created.json()["projectId"]
    for status in ("CLOSED", "INPROGRESS"):
        patched = await client.patch(
            f"{PROJECTS}/Projects/{project_id}", headers=session.headers(), json={"status": status}
        )
        assert patched.status_code == 204
    await dispatcher.flush()
    [contact_body] = _bodies(posted)
    assert webhook_errors(contact_body) == []
    assert [event["eventCategory"] for event in json.loads(contact_body)["events"]] == ["CONTACT"]


async def test_intent_to_receive_bodies_are_the_spec_envelope_with_sequence_zero(
    posted: RecordingTransport, dispatcher: WebhookDispatcher
) -> None:
    """Intent-to-receive sends empty payloads numbered 0: the spec's shape but for the minimum."""
    result = await dispatcher.intent_to_receive()
    assert result.passed
    bodies = [exchange.request.content for exchange in posted.exchanges]
    assert len(bodies) == 4
    for body in bodies:
        assert webhook_errors(body, "intent") == []
        assert all("minimum" in error for error in webhook_errors(body))
