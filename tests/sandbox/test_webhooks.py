"""Webhooks: Xero's signature and wire form, the events each change queues (none for Projects, as
at Xero), batching and sequence numbers, retries and disabling, lost and switched-off webhooks,
and intent-to-receive."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from syncd.sandbox.events import WebhookEvent, intent_body, missign, payload_body, sign
from syncd.sandbox.models import Contact, SandboxError, Tenant
from syncd.sandbox.state import SandboxState
from syncd.sandbox.webhooks import WebhookDispatcher
from tests.fakes import ManualClock
from tests.sandbox.flow import ACCOUNTING, CLIENT_ID, PKCE_CLIENT_ID, PROJECTS, REDIRECT, Session
from tests.sandbox.receiver import URL, Mode, Receiver, signature_ok

KEY = "test-only-webhook-key-not-a-real-secret"
V1_KEY = "LR+QgKlbRciIPYpi65tTKLaZ3FzLLofCNEQWrRXqWXJeDFrfexzfVI9SmnVuCWDJ4jnjHB9ECtOyxZSofRxwWw=="
V1_BODY = (
    b'{"events":[],"firstEventSequence": 0,"lastEventSequence": 0, '
    b'"entropy": "LUWDSUDGSWNZVALZXBEV"}'
)
V2_BODY = (
    b'{"events":[],"firstEventSequence": 0,"lastEventSequence": 0, "entropy": "S0m3r4Nd0mt3xt"}'
)
V3_BODY = (
    b'{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/Contacts/'
    b'717f2bfc-c6d4-41fd-b238-3f2f0c0cf777","resourceId":"717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",'
    b'"eventDateUtc":"2024-06-21T01:15:39.902","eventType":"UPDATE","eventCategory":"CONTACT",'
    b'"tenantId":"c2cc9b6e-9458-4c7d-93cc-f02b81b0594f","tenantType":"ORGANISATION"}],'
    b'"firstEventSequence":1,"lastEventSequence":1,"entropy":"S0m3r4Nd0mt3xt"}'
)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(KEY)


@pytest.fixture
def dispatcher(state: SandboxState, session: Session, receiver: Receiver) -> WebhookDispatcher:
    """The test app's webhook goes to `receiver`; the app is connected to the first tenant."""
    state.configure_webhooks(URL, client_id=CLIENT_ID, webhook_key=KEY)
    return WebhookDispatcher(state, transport=receiver.transport())


def _project(state: SandboxState, tenant: Tenant, name: str = "Annual accounts") -> str:
    contact = state.add_contact(tenant.tenant_id, f"Client of {name}")
    return state.add_project(tenant.tenant_id, contact_id=contact.contact_id, name=name).project_id


def test_known_vectors_sign_exactly() -> None:
    """V1, V2 and V3 of xero-facts 1.7: the sandbox builds their bodies and signs them right."""
    assert intent_body("LUWDSUDGSWNZVALZXBEV") == V1_BODY
    assert len(V1_BODY) == 95
    assert sign(V1_KEY, V1_BODY) == "BjzNbYUfrzg4g8wxm+dKHaZVrKxr2m75E296fUbD1E4="
    assert intent_body("S0m3r4Nd0mt3xt") == V2_BODY
    assert sign(KEY, V2_BODY) == "fZKUTf0/u7rg/vJdZMiOinpUdZY8yLLCzQb9NFlnarE="
    event = WebhookEvent(
        sequence=1,
        category="CONTACT",
        event_type="UPDATE",
        resource_id="717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
        tenant_id="c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
        at=datetime(2024, 6, 21, 1, 15, 39, 902417, tzinfo=UTC),
    )
    assert payload_body([event], entropy="S0m3r4Nd0mt3xt") == V3_BODY
    assert len(V3_BODY) == 399
    assert sign(KEY, V3_BODY) == "X4p5DMadhM4j3iG3P4NyPXrZB6kmIbtvzTF/YniZKHU="
    assert signature_ok(V3_BODY, sign(KEY, V3_BODY), KEY)


def test_a_missigned_signature_differs_in_its_first_character_only() -> None:
    """Intent-to-receive's bad signatures look real: same length, first character changed."""
    good = sign(V1_KEY, V1_BODY)
    bad = missign(good)
    assert bad != good
    assert bad[1:] == good[1:]
    assert not signature_ok(V1_BODY, bad, V1_KEY)
    assert missign("/" + good[1:])[0] == "A"


async def test_an_api_change_is_delivered_signed_in_xeros_wire_form(
    client: httpx.AsyncClient,
    session: Session,
    contact: Contact,
    receiver: Receiver,
    dispatcher: WebhookDispatcher,
    clock: ManualClock,
) -> None:
    """syncd's own contact update comes back as one signed CONTACT UPDATE, in Xero's exact
    payload: compact JSON, Xero's key order, 20-letter entropy, millisecond UTC date."""
    clock.advance(1.25)
    updated = await client.post(
        f"{ACCOUNTING}/Contacts/{contact.contact_id}",
        headers=session.headers(),
        json={"Contacts": [{"EmailAddress": "jo@acme.example"}]},
    )
    assert updated.status_code == 200
    [delivery] = await dispatcher.flush()
    assert (delivery.status, delivery.passed, delivery.event_count) == (200, True, 1)
    assert receiver.verdicts == [True]
    assert receiver.headers[0]["content-type"] == "application/json; charset=utf-8"
    [payload] = receiver.payloads
    assert set(payload) == {"events", "firstEventSequence", "lastEventSequence", "entropy"}
    assert re.fullmatch(r"[A-Z]{20}", payload["entropy"])
    assert payload["events"] == [
        {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{contact.contact_id}",
            "resourceId": contact.contact_id,
            "eventDateUtc": "2026-03-02T09:00:01.250",
            "eventType": "UPDATE",
            "eventCategory": "CONTACT",
            "tenantId": session.tenant_id,
            "tenantType": "ORGANISATION",
        }
    ]
    assert receiver.bodies[0] == json.dumps(payload, separators=(",", ":")).encode()


async def test_a_project_status_change_via_the_api_queues_no_webhook(
    client: httpx.AsyncClient,
    session: Session,
    state: SandboxState,
    contact: Contact,
    receiver: Receiver,
    dispatcher: WebhookDispatcher,
) -> None:
    """Xero has no Projects webhooks: syncd's PATCH to CLOSED changes the project and queues
    nothing, so nothing is sent."""
    created = await client.post(
        f"{PROJECTS}/Projects",
        headers=session.headers(),
        json={"contactId": contact.contact_id, "name": "Tax return"},
    )
    project_id = created.json()["projectId"]
    await dispatcher.flush()
    delivered = len(receiver.events)
    patched = await client.patch(
        f"{PROJECTS}/Projects/{project_id}", headers=session.headers(), json={"status": "CLOSED"}
    )
    assert patched.status_code == 204
    assert state.project(session.tenant_id, project_id).status == "CLOSED"
    assert state.webhooks.pending(CLIENT_ID) == []
    assert await dispatcher.flush() == []
    assert len(receiver.events) == delivered


async def test_project_status_changes_in_xero_queue_no_webhook(
    state: SandboxState, tenant: Tenant, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    """Closing and reopening a project in Xero queue no event: only the contact's CREATE is
    ever sent."""
    project_id = _project(state, tenant)
    state.set_project_status(tenant.tenant_id, project_id, "CLOSED")
    state.set_project_status(tenant.tenant_id, project_id, "INPROGRESS")
    await dispatcher.flush()
    assert state.project(tenant.tenant_id, project_id).status == "INPROGRESS"
    assert [(e["eventCategory"], e["eventType"]) for e in receiver.events] == [
        ("CONTACT", "CREATE")
    ]


async def test_contact_create_update_and_archive_are_contact_events(
    client: httpx.AsyncClient,
    session: Session,
    state: SandboxState,
    receiver: Receiver,
    dispatcher: WebhookDispatcher,
) -> None:
    """API create is CREATE; API update and an archive in Xero are both UPDATE."""
    created = await client.put(
        f"{ACCOUNTING}/Contacts", headers=session.headers(), json={"Contacts": [{"Name": "Acme"}]}
    )
    contact_id = created.json()["Contacts"][0]["ContactID"]
    await client.post(
        f"{ACCOUNTING}/Contacts/{contact_id}",
        headers=session.headers(),
        json={"Contacts": [{"EmailAddress": "jo@acme.example"}]},
    )
    state.archive_contact(session.tenant_id, contact_id)
    [delivery] = await dispatcher.flush()
    assert (delivery.first_sequence, delivery.last_sequence) == (1, 3)
    assert [(e["eventCategory"], e["eventType"]) for e in receiver.events] == [
        ("CONTACT", "CREATE"),
        ("CONTACT", "UPDATE"),
        ("CONTACT", "UPDATE"),
    ]
    assert {e["resourceUrl"] for e in receiver.events} == {
        f"https://api.xero.com/api.xro/2.0/Contacts/{contact_id}"
    }


async def test_invoices_raise_invoice_create_and_update(
    state: SandboxState,
    tenant: Tenant,
    contact: Contact,
    receiver: Receiver,
    dispatcher: WebhookDispatcher,
) -> None:
    """Raising an invoice is INVOICE CREATE, paying it INVOICE UPDATE."""
    invoice = state.add_invoice(tenant.tenant_id, contact_id=contact.contact_id, total=Decimal(99))
    state.update_invoice_status(tenant.tenant_id, invoice.invoice_id, "PAID")
    await dispatcher.flush()
    assert [(e["eventCategory"], e["eventType"], e["resourceUrl"]) for e in receiver.events] == [
        (
            "INVOICE",
            kind,
            f"https://api.xero.com/api.xro/2.0/Invoices/{invoice.invoice_id}",
        )
        for kind in ("CREATE", "UPDATE")
    ]


@pytest.mark.usefixtures("session")
async def test_events_of_an_app_are_batched_with_increasing_sequence_numbers(
    state: SandboxState, tenant: Tenant, receiver: Receiver
) -> None:
    """120 changes go out as payloads of 50, 50 and 20 events, numbered 1-50, 51-100, 101-120."""
    state.configure_webhooks(URL, client_id=CLIENT_ID, webhook_key=KEY)
    dispatcher = WebhookDispatcher(state, transport=receiver.transport(), batch_size=50)
    for number in range(120):
        state.add_contact(tenant.tenant_id, f"Client {number}")
    sizes = []
    for _ in range(4):
        sent = await dispatcher.flush()
        sizes.append([(d.first_sequence, d.last_sequence, d.event_count) for d in sent])
    assert sizes == [[(1, 50, 50)], [(51, 100, 50)], [(101, 120, 20)], []]
    ranges = [(p["firstEventSequence"], p["lastEventSequence"]) for p in receiver.payloads]
    assert ranges == [(1, 50), (51, 100), (101, 120)]
    assert len({p["entropy"] for p in receiver.payloads}) == 3


async def test_each_connected_app_gets_its_own_stream_and_key(
    state: SandboxState, tenant: Tenant, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    """Two apps connected to the tenant get one payload each per flush, numbered from 1 and
    signed with their own key; an app not connected to the tenant hears nothing."""
    state.register_app(PKCE_CLIENT_ID, None, [REDIRECT], "another-key")
    state.configure_webhooks("http://other.test/webhook", client_id=PKCE_CLIENT_ID)
    state.register_app("stranger", None, [REDIRECT], "stranger-key", webhook_url=URL)
    state.authority.consent(
        app=state.apps[PKCE_CLIENT_ID],
        redirect_uri=REDIRECT,
        scopes=("projects",),
        code_challenge=None,
        user_id=None,
        tenant_ids=[tenant.tenant_id],
    )
    state.add_contact(tenant.tenant_id, "Acme")
    state.add_contact(tenant.tenant_id, "Bolt")
    first = await dispatcher.flush()
    assert [(d.client_id, d.first_sequence, d.last_sequence) for d in first] == [
        (CLIENT_ID, 1, 2),
        (PKCE_CLIENT_ID, 1, 2),
    ]
    assert receiver.verdicts == [True, False]  # the second was signed with the other key
    assert signature_ok(receiver.bodies[1], receiver.headers[1]["x-xero-signature"], "another-key")
    assert state.webhook_subscription("stranger").last_sequence == 0


async def test_a_failing_receiver_gets_the_same_payload_again_then_the_webhook_is_disabled(
    state: SandboxState,
    tenant: Tenant,
    receiver: Receiver,
    dispatcher: WebhookDispatcher,
) -> None:
    """Non-200 answers keep the batch queued; after max_attempts the webhook is disabled,
    its events are gone, and only a passing intent-to-receive brings it back."""
    state.configure_webhooks(max_attempts=3)
    receiver.mode = "failing"
    state.add_contact(tenant.tenant_id, "Acme")
    attempts = [await dispatcher.flush() for _ in range(3)]
    assert [[(d.attempt, d.status, d.passed) for d in a] for a in attempts] == [
        [(1, 503, False)],
        [(2, 503, False)],
        [(3, 503, False)],
    ]
    assert len(set(receiver.bodies)) == 1
    assert attempts[0][0].reason == "answered 503, not 200"
    assert attempts[2][0].reason is not None
    assert "webhook disabled: 3 delivery attempts failed" in attempts[2][0].reason
    subscription = state.webhook_subscription()
    assert (subscription.status, subscription.discarded_events) == ("DISABLED", 1)
    state.add_contact(tenant.tenant_id, "Bolt")
    assert await dispatcher.flush() == []
    assert state.webhooks.pending(CLIENT_ID) == []

    receiver.mode = "correct"
    result = await dispatcher.intent_to_receive()
    assert result.passed
    assert subscription.status == "OK"
    state.add_contact(tenant.tenant_id, "Cog")
    [delivered] = await dispatcher.flush()
    assert (delivered.passed, delivered.first_sequence) == (True, 2)


async def test_a_receiver_that_recovers_gets_the_batch_on_a_later_attempt(
    state: SandboxState, tenant: Tenant, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    """A retry carries the attempt number; new events wait behind the batch being retried."""
    receiver.mode = "failing"
    state.add_contact(tenant.tenant_id, "Acme")
    await dispatcher.flush()
    state.add_contact(tenant.tenant_id, "Bolt")
    receiver.mode = "correct"
    retried, fresh = await dispatcher.flush(), await dispatcher.flush()
    assert [(d.attempt, d.first_sequence, d.last_sequence, d.passed) for d in retried + fresh] == [
        (2, 1, 1, True),
        (1, 2, 2, True),
    ]
    assert [d.seq for d in state.webhook_deliveries] == [1, 2, 3]


async def test_deliveries_failing_for_24_hours_disable_the_webhook(
    state: SandboxState,
    tenant: Tenant,
    receiver: Receiver,
    dispatcher: WebhookDispatcher,
    clock: ManualClock,
) -> None:
    """Without an attempt limit, Xero's 24 hours of the sandbox clock decide."""
    receiver.mode = "failing"
    state.add_contact(tenant.tenant_id, "Acme")
    await dispatcher.flush()
    clock.advance(23 * 3600)
    await dispatcher.flush()
    assert state.webhook_subscription().status == "OK"
    clock.advance(3600)
    [last] = await dispatcher.flush()
    assert last.attempt == 3
    assert state.webhook_subscription().status == "DISABLED"
    assert state.webhook_subscription().reason == "deliveries failed for 24 hours"


@pytest.mark.usefixtures("session")
async def test_no_answer_in_time_and_no_connection_are_failed_deliveries(
    state: SandboxState, tenant: Tenant, receiver: Receiver
) -> None:
    """A receiver that does not answer within the timeout, or a closed port, fails the attempt."""
    state.configure_webhooks(URL, client_id=CLIENT_ID, webhook_key=KEY)
    receiver.mode = "hang"
    slow = WebhookDispatcher(state, transport=receiver.transport(), timeout=0.05)
    state.add_contact(tenant.tenant_id, "Acme")
    [hung] = await slow.flush()
    assert (hung.status, hung.passed, hung.reason) == (
        None,
        False,
        "no response within 0.05 seconds",
    )
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        state.configure_webhooks(f"http://127.0.0.1:{closed.getsockname()[1]}/webhook")
        [refused] = await WebhookDispatcher(state).flush()
    assert (refused.status, refused.attempt) == (None, 2)
    assert refused.reason == "no response: ConnectError"


async def test_lost_webhooks_leave_a_gap_in_the_sequence(
    state: SandboxState, tenant: Tenant, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    """lose_webhooks_next drops that many events silently; the world still changes."""
    state.faults.lose_webhooks_next = 2
    for name in ("Acme", "Bolt", "Cog"):
        state.add_contact(tenant.tenant_id, name)
    await dispatcher.flush()
    assert [p["firstEventSequence"] for p in receiver.payloads] == [3]
    assert len(tenant.contacts) == 3
    assert state.faults.lose_webhooks_next == 0
    assert state.webhook_subscription().lost_events == 2


@pytest.mark.parametrize("switch", ["fault", "portal"])
async def test_switched_off_webhooks_queue_and_send_nothing(
    state: SandboxState,
    tenant: Tenant,
    receiver: Receiver,
    dispatcher: WebhookDispatcher,
    switch: str,
) -> None:
    """With webhooks off (globally or the app's) changes happen but no event is queued or sent."""
    contact = state.add_contact(tenant.tenant_id, "Acme")
    await dispatcher.flush()
    delivered = len(receiver.events)
    if switch == "fault":
        state.faults.webhooks_enabled = False
    else:
        state.configure_webhooks(enabled=False)
    state.update_contact(tenant.tenant_id, contact.contact_id, name="Acme Holdings")
    assert state.contact(tenant.tenant_id, contact.contact_id).name == "Acme Holdings"
    assert await dispatcher.flush() == []
    assert state.webhooks.pending(CLIENT_ID) == []
    state.faults.webhooks_enabled = True
    state.configure_webhooks(enabled=True)
    state.archive_contact(tenant.tenant_id, contact.contact_id)
    await dispatcher.flush()
    assert [(e["eventCategory"], e["eventType"]) for e in receiver.events[delivered:]] == [
        ("CONTACT", "UPDATE")
    ]


async def test_intent_to_receive_passes_against_a_correct_receiver(
    state: SandboxState, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    """Empty payloads, some mis-signed: 200 to the good, 401 to the bad, no body: passed."""
    result = await dispatcher.intent_to_receive(CLIENT_ID)
    assert result.passed
    assert result.reason is None
    assert [(a.correctly_signed, a.status) for a in result.attempts] == [
        (False, 401),
        (True, 200),
        (False, 401),
        (True, 200),
    ]
    assert receiver.verdicts == [False, True, False, True]
    for body in receiver.bodies:
        assert re.fullmatch(
            rb'\{"events":\[\],"firstEventSequence": 0,"lastEventSequence": 0, '
            rb'"entropy": "[A-Z]{20}"\}',
            body,
        )
    assert [d.kind for d in state.webhook_deliveries] == ["intent"] * 4
    assert state.webhook_subscription().status == "OK"


@pytest.mark.parametrize(
    ("mode", "key", "reason"),
    [
        ("always_200", KEY, "Response to incorrectly signed payload not 401"),
        ("cookie", KEY, "Response set a cookie (Xero requires none)"),
        ("body", KEY, "Response had a body (Xero requires an empty body)"),
        ("correct", "a-stale-key", "Response not 200"),
    ],
)
async def test_intent_to_receive_fails_against_a_careless_receiver(
    state: SandboxState,
    tenant: Tenant,
    receiver: Receiver,
    dispatcher: WebhookDispatcher,
    mode: Mode,
    key: str,
    reason: str,
) -> None:
    """200 to everything, a cookie, a body, or 401 to all (a stale key): failed, and the
    webhook stops."""
    receiver.mode = mode
    receiver.key = key
    result = await dispatcher.intent_to_receive()
    assert not result.passed
    assert result.reason == reason
    subscription = state.webhook_subscription()
    assert subscription.status == "INTENT_REQUIRED"
    assert subscription.reason == f"intent to receive failed: {reason}"
    state.add_contact(tenant.tenant_id, "Acme")
    assert state.webhooks.pending(CLIENT_ID) == []


def test_webhook_configuration_is_checked(state: SandboxState) -> None:
    """A webhook needs a known app with a key and an absolute http(s) URL; a refused change
    changes nothing."""
    with pytest.raises(SandboxError, match="unknown app"):
        state.configure_webhooks(URL, client_id="nobody")
    with pytest.raises(SandboxError, match="no webhook_key"):
        state.configure_webhooks(URL, client_id=CLIENT_ID)
    with pytest.raises(SandboxError, match="client_id is required"):
        state.configure_webhooks(URL)
    with pytest.raises(SandboxError, match="absolute http"):
        state.configure_webhooks("receiver.test/webhook", client_id=CLIENT_ID, webhook_key=KEY)
    with pytest.raises(SandboxError, match="webhook_key must not be empty"):
        state.configure_webhooks(URL, client_id=CLIENT_ID, webhook_key=" ")
    with pytest.raises(SandboxError, match="max_attempts"):
        state.configure_webhooks(URL, client_id=CLIENT_ID, webhook_key=KEY, max_attempts=-1)
    assert state.apps[CLIENT_ID].webhook_key is None
    assert state.webhooks.subscriptions == {}
    with pytest.raises(SandboxError, match="url is required"):
        state.configure_webhooks(client_id=CLIENT_ID, webhook_key=KEY)
    state.configure_webhooks(URL, client_id=CLIENT_ID, webhook_key=KEY)
    with pytest.raises(SandboxError, match="retry_hours"):
        state.configure_webhooks(retry_hours=0)
    with pytest.raises(SandboxError, match="lose_webhooks_next"):
        state.faults.lose_webhooks_next = -1
    with pytest.raises(SandboxError, match="webhooks_enabled"):
        state.faults.webhooks_enabled = 1  # type: ignore[assignment]
    with pytest.raises(SandboxError, match="intent_series"):
        WebhookDispatcher(state, intent_series=[True])


async def test_reset_forgets_queued_events_and_deliveries_but_keeps_the_webhook(
    state: SandboxState, tenant: Tenant, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    """Like the ledger, the queue and the delivery log start afresh; the app's webhook stays."""
    state.add_contact(tenant.tenant_id, "Acme")
    await dispatcher.flush()
    state.add_contact(tenant.tenant_id, "Bolt")
    state.reset()
    assert state.webhook_deliveries == []
    assert state.webhooks.pending(CLIENT_ID) == []
    assert state.webhook_subscription().url == URL
    assert await dispatcher.flush() == []
