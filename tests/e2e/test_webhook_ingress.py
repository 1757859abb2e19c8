"""Webhook ingress: every class of bad request gets its specified answer and writes nothing but
quarantine or audit rows; good deliveries are stored once and acknowledged with an empty 200."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from syncd.store.db import Database
from syncd.store.models import InboxEvent
from syncd.xero.webhooks import sign
from tests.harness import Harness, harness

KEY = "test-only-webhook-key-not-a-real-secret"
URL = "/api/integrations/xero/webhook"
TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"


def delivery(
    tenant: str = TENANT,
    resource: str = "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
    category: str = "CONTACT",
    event_type: str = "UPDATE",
) -> bytes:
    event = {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{resource}",
        "resourceId": resource,
        "eventDateUtc": "2024-06-21T01:15:39.902",
        "eventType": event_type,
        "eventCategory": category,
        "tenantId": tenant,
        "tenantType": "ORGANISATION",
    }
    return json.dumps(
        {
            "events": [event],
            "firstEventSequence": 1,
            "lastEventSequence": 1,
            "entropy": "S0m3r4Nd0mt3xt",
        },
        separators=(",", ":"),
    ).encode()


BODY = delivery()
GOOD = sign(BODY, KEY)


@dataclass(frozen=True)
class Case:
    status: int
    events: int = 0
    quarantined: int = 0


Send = Callable[[httpx.AsyncClient], "object"]


async def post(
    client: httpx.AsyncClient, body: bytes | object, headers: list[tuple[str, str]]
) -> httpx.Response:
    return await client.post(URL, content=body, headers=headers)  # type: ignore[arg-type]


async def chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 65536 + 1):
        yield b" " * 65536


def signed(body: bytes) -> Callable[[httpx.AsyncClient], object]:
    return lambda c: post(c, body, [("x-xero-signature", sign(body, KEY))])


# Deeper than json.loads goes (RecursionError), yet well under the size limit.
NESTED = b"[" * 100_000 + b"]" * 100_000
NESTED_EVENT = (
    b'{"events":[' + b"[" * 50_000 + b"]" * 50_000 + b'],"firstEventSequence":1,'
    b'"lastEventSequence":1,"entropy":"S0m3r4Nd0mt3xt"}'
)


def flipped(body: bytes) -> bytes:
    data = bytearray(body)
    data[10] ^= 0x01
    return bytes(data)


CASES: dict[str, tuple[Callable[[httpx.AsyncClient], object], Case]] = {
    "missing signature": (lambda c: post(c, BODY, []), Case(401)),
    "empty signature": (lambda c: post(c, BODY, [("x-xero-signature", "")]), Case(401)),
    "non-base64 signature": (
        lambda c: post(c, BODY, [("x-xero-signature", "***not*base64***")]),
        Case(401),
    ),
    "wrong-length signature": (
        lambda c: post(c, BODY, [("x-xero-signature", "YWJjZA==")]),
        Case(401),
    ),
    "hex signature": (lambda c: post(c, BODY, [("x-xero-signature", "ab" * 32)]), Case(401)),
    "wrong key": (
        lambda c: post(c, BODY, [("x-xero-signature", sign(BODY, "not-the-key"))]),
        Case(401),
    ),
    "flipped byte": (lambda c: post(c, flipped(BODY), [("x-xero-signature", GOOD)]), Case(401)),
    "re-serialised body": (
        lambda c: post(
            c, json.dumps(json.loads(BODY), indent=1).encode(), [("x-xero-signature", GOOD)]
        ),
        Case(401),
    ),
    "truncated body": (lambda c: post(c, BODY[:-5], [("x-xero-signature", GOOD)]), Case(401)),
    "signature of another body": (
        lambda c: post(c, BODY, [("x-xero-signature", sign(delivery(resource="other"), KEY))]),
        Case(401),
    ),
    "two signature headers": (
        lambda c: post(c, BODY, [("x-xero-signature", GOOD), ("x-xero-signature", GOOD)]),
        Case(401),
    ),
    "oversized with Content-Length": (
        lambda c: post(c, b" " * 300_000, [("x-xero-signature", GOOD)]),
        Case(413),
    ),
    "oversized without Content-Length": (
        lambda c: post(c, chunks(300_000), [("x-xero-signature", GOOD)]),
        Case(413),
    ),
    "wrong method": (lambda c: c.get(URL), Case(405)),
    "signed but not JSON": (
        lambda c: post(c, b"hello", [("x-xero-signature", sign(b"hello", KEY))]),
        Case(200, quarantined=1),
    ),
    "signed but schema-invalid": (
        lambda c: post(c, b'{"events": 1}', [("x-xero-signature", sign(b'{"events": 1}', KEY))]),
        Case(200, quarantined=1),
    ),
    "signed but nested too deeply": (signed(NESTED), Case(200, quarantined=1)),
    "signed, an event nested too deeply": (signed(NESTED_EVENT), Case(200, quarantined=1)),
    "signed, a number too long to convert": (
        signed(BODY.replace(b'"firstEventSequence":1', b'"firstEventSequence":' + b"9" * 5000)),
        Case(200, quarantined=1),
    ),
    "signed, an event date out of range": (
        signed(BODY.replace(b"2024-06-21T01:15:39.902", b"0001-01-01T00:00:00+14:00")),
        Case(200, quarantined=1),
    ),
    "signed, a tenantId longer than a UUID": (
        signed(BODY.replace(TENANT.encode(), TENANT.encode() + b"-0123")),
        Case(200, quarantined=1),
    ),
    "signed, NUL bytes (not storable as PostgreSQL text)": (
        signed(b"\x00" + BODY),
        Case(200, quarantined=1),
    ),
    "unknown tenant": (lambda c: post(c, BODY, [("x-xero-signature", GOOD)]), Case(200, events=1)),
}


@pytest.fixture
async def h(db: Database, fernet_key: str) -> AsyncIterator[Harness]:
    async with harness(db, fernet_key) as ready:
        yield ready


async def inbox_counts(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(InboxEvent.state, func.count()).group_by(InboxEvent.state)
        )
        return {state: int(n) for state, n in rows.all()}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_bad_request_gets_its_answer_and_writes_nothing_else(
    h: Harness, case: str
) -> None:
    """The specified status, no body on 401/200, and only quarantine/audit rows stored."""
    send, expected = CASES[case]
    response: httpx.Response = await send(h.syncd)  # type: ignore[misc]
    assert response.status_code == expected.status
    if expected.status in {200, 401}:
        assert response.content == b""
        assert "set-cookie" not in response.headers
    counts = await inbox_counts(h.services.db)
    assert counts.get("quarantined", 0) == expected.quarantined
    assert counts.get("pending", 0) == expected.events
    assert sum(counts.values()) == expected.events + expected.quarantined
    await h.services.worker.wait_idle()
    after = await inbox_counts(h.services.db)
    # An event for a tenant no practice connected is kept only as an audit row.
    assert after.get("ignored", 0) == expected.events
    assert after.get("done", 0) == 0


async def test_exact_replay_is_stored_once(h: Harness) -> None:
    """The same delivery twice (Xero retries) is acknowledged twice and stored once."""
    for _ in range(2):
        response = await post(h.syncd, BODY, [("x-xero-signature", GOOD)])
        assert response.status_code == 200
    assert await inbox_counts(h.services.db) == {"pending": 1}


async def test_intent_to_receive_payloads(h: Harness) -> None:
    """Xero's empty ITR payloads: 200 when signed, 401 when not; nothing is stored."""
    body = (
        b'{"events":[],"firstEventSequence": 0,"lastEventSequence": 0, "entropy": "S0m3r4Nd0mt3xt"}'
    )
    good = await post(
        h.syncd, body, [("x-xero-signature", "fZKUTf0/u7rg/vJdZMiOinpUdZY8yLLCzQb9NFlnarE=")]
    )
    bad = await post(
        h.syncd, body, [("x-xero-signature", "gZKUTf0/u7rg/vJdZMiOinpUdZY8yLLCzQb9NFlnarE=")]
    )
    assert (good.status_code, bad.status_code) == (200, 401)
    assert good.content == b"" and bad.content == b""
    assert await inbox_counts(h.services.db) == {}


async def test_previous_key_is_accepted_during_rotation(db: Database, fernet_key: str) -> None:
    """With XERO_WEBHOOK_KEY_PREVIOUS set, deliveries signed with the old key still count."""
    from syncd.settings import Secret

    async with harness(
        db,
        fernet_key,
        xero_webhook_key=Secret("brand-new-key-0123456789"),
        xero_webhook_key_previous=Secret(KEY),
    ) as h:
        assert (await post(h.syncd, BODY, [("x-xero-signature", GOOD)])).status_code == 200
        other = sign(BODY, "some-third-key-000000")
        assert (await post(h.syncd, BODY, [("x-xero-signature", other)])).status_code == 401


async def test_xeros_intent_to_receive_handshake_passes(h: Harness) -> None:
    """The sandbox runs Xero's ITR series (good and deliberately bad signatures) against
    syncd's real endpoint, and syncd passes it."""
    result = await h.webhooks.intent_to_receive()
    assert result.passed, result
    assert await inbox_counts(h.services.db) == {}
