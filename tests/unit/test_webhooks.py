"""Webhook signature and envelope, sans IO: known answers from xero-facts §1.7, tampering, and
what a well-formed delivery must contain."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.xero.webhooks import MalformedPayload, parse, sign, verify

V1_KEY = "LR+QgKlbRciIPYpi65tTKLaZ3FzLLofCNEQWrRXqWXJeDFrfexzfVI9SmnVuCWDJ4jnjHB9ECtOyxZSofRxwWw=="
V1_BODY = (
    b'{"events":[],"firstEventSequence": 0,"lastEventSequence": 0, '
    b'"entropy": "LUWDSUDGSWNZVALZXBEV"}'
)
V23_KEY = "test-only-webhook-key-not-a-real-secret"
V2_BODY = (
    b'{"events":[],"firstEventSequence": 0,"lastEventSequence": 0, "entropy": "S0m3r4Nd0mt3xt"}'
)
V3_BODY = (
    b'{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/Contacts/717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",'
    b'"resourceId":"717f2bfc-c6d4-41fd-b238-3f2f0c0cf777","eventDateUtc":"2024-06-21T01:15:39.902",'
    b'"eventType":"UPDATE","eventCategory":"CONTACT","tenantId":"c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",'
    b'"tenantType":"ORGANISATION"}],"firstEventSequence":1,"lastEventSequence":1,"entropy":"S0m3r4Nd0mt3xt"}'
)


@pytest.mark.parametrize(
    ("body", "key", "signature", "expected"),
    [
        (V1_BODY, V1_KEY, "BjzNbYUfrzg4g8wxm+dKHaZVrKxr2m75E296fUbD1E4=", True),
        (V1_BODY, V1_KEY, "/jzNbYUfrzg4g8wxm+dKHaZVrKxr2m75E296fUbD1E4=", False),  # Xero's bad ITR
        (V1_BODY, V1_KEY, "Mq69bgTi4NjaAH80DD36XGZTvVkmO6OvkkRpU2zYijA=", False),  # decoded key
        (V1_BODY, V1_KEY, "05NlK23dTIMq/IbzQ8QaQPyNtD53TnSeLWfxjsjtbYI=", False),  # re-serialised
        (V2_BODY, V23_KEY, "fZKUTf0/u7rg/vJdZMiOinpUdZY8yLLCzQb9NFlnarE=", True),
        (V3_BODY, V23_KEY, "X4p5DMadhM4j3iG3P4NyPXrZB6kmIbtvzTF/YniZKHU=", True),
    ],
)
def test_known_answers(body: bytes, key: str, signature: str, expected: bool) -> None:
    """The documented vectors verify, and the documented wrong signatures do not."""
    assert len(V1_BODY) == 95 and len(V2_BODY) == 89 and len(V3_BODY) == 399
    assert verify(body, [signature], [key]) is expected
    if expected:
        assert sign(body, key) == signature


@given(position=st.integers(min_value=0), delta=st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_of_the_body_is_rejected(position: int, delta: int) -> None:
    """Flip any byte of the body: the signature no longer verifies."""
    index = position % len(V3_BODY)
    body = bytearray(V3_BODY)
    body[index] = (body[index] + delta) % 256
    assert not verify(bytes(body), [sign(V3_BODY, V23_KEY)], [V23_KEY])


@given(position=st.integers(min_value=0), delta=st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_of_the_signature_is_rejected(position: int, delta: int) -> None:
    """Change any byte of the signature (text or decoded digest): rejected."""
    good = sign(V3_BODY, V23_KEY)
    raw = bytearray(base64.b64decode(good))
    index = position % len(raw)
    raw[index] = (raw[index] + delta) % 256
    assert not verify(V3_BODY, [base64.b64encode(bytes(raw)).decode()], [V23_KEY])
    text = bytearray(good.encode())
    text_index = position % len(text)
    text[text_index] = (text[text_index] + delta) % 256
    assert not verify(V3_BODY, [text.decode("latin-1")], [V23_KEY])


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [""],
        ["not base64 !!"],
        ["YWJj"],  # wrong length
        ["5f8a" * 16],  # hex, not base64
        [sign(V3_BODY, "another-key")],
        [sign(V3_BODY, V23_KEY), sign(V3_BODY, V23_KEY)],  # two signature headers
    ],
)
def test_malformed_or_foreign_signatures_are_rejected(headers: list[str]) -> None:
    """Missing, empty, non-base64, wrong length, hex, wrong key or repeated headers fail."""
    assert not verify(V3_BODY, headers, [V23_KEY])


def test_previous_key_is_accepted_during_rotation() -> None:
    """Either the current or the previous key verifies; no key verifies nothing."""
    signature = sign(V3_BODY, "old-key-still-valid")
    assert verify(V3_BODY, [signature], [V23_KEY, "old-key-still-valid"])
    assert not verify(V3_BODY, [signature], [])


def test_parse_a_real_delivery() -> None:
    """Xero's CONTACT event becomes a typed event in UTC with a stable dedupe key."""
    delivery = parse(V3_BODY)
    [event] = delivery.events
    assert (event.category, event.event_type, event.tenant_type) == (
        "CONTACT",
        "UPDATE",
        "ORGANISATION",
    )
    assert event.resource_id == "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777"
    assert event.event_at.isoformat() == "2024-06-21T01:15:39.902000+00:00"
    assert event.dedupe_key == parse(V3_BODY).events[0].dedupe_key
    assert parse(V1_BODY).events == []


def test_project_events_are_not_xeros_and_casing() -> None:
    """Xero has no PROJECT webhooks, so a PROJECT event is a malformed payload (quarantined);
    event types compare case-insensitively."""
    body = json.loads(V3_BODY)
    body["events"][0].update(eventCategory="PROJECT", eventType="project.completed")
    with pytest.raises(MalformedPayload, match="eventCategory"):
        parse(json.dumps(body).encode())
    body["events"][0].update(eventCategory="CONTACT", eventType="Update")
    assert parse(json.dumps(body).encode()).events[0].event_type == "UPDATE"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("events"), "events"),
        (lambda d: d.update(events="x"), "events"),
        (lambda d: d.update(firstEventSequence="1"), "sequence"),
        (lambda d: d.pop("entropy"), "entropy"),
        (lambda d: d["events"][0].pop("tenantId"), "tenantId"),
        (lambda d: d["events"][0].update(eventCategory="PAYMENT"), "eventCategory"),
        (lambda d: d["events"][0].update(eventType="DELETE"), "eventType"),
        (lambda d: d["events"][0].update(eventDateUtc="yesterday"), "eventDateUtc"),
        (lambda d: d["events"][0].update(resourceId="../../etc"), "resourceId"),
        (lambda d: d["events"].append("junk"), "object"),
    ],
)
def test_schema_violations_are_named(change: object, message: str) -> None:
    """Each structural problem is a MalformedPayload saying what is wrong."""
    data = json.loads(V3_BODY)
    change(data)  # type: ignore[operator]
    with pytest.raises(MalformedPayload, match=message):
        parse(json.dumps(data).encode())


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b"\xff\xfe"])
def test_non_json_bodies_are_malformed(body: bytes) -> None:
    """Signed garbage is malformed, not an exception."""
    with pytest.raises(MalformedPayload):
        parse(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (
            V3_BODY.replace(b'"events":[', b'"events":[' + b"[" * 50_000 + b"]" * 50_000 + b","),
            "nested too deeply",
        ),
        (
            V3_BODY.replace(b'"firstEventSequence":1', b'"firstEventSequence":' + b"9" * 5000),
            "JSON",
        ),
        (V3_BODY.replace(b"2024-06-21T01:15:39.902", b"0001-01-01T00:00:00+14:00"), "eventDateUtc"),
        (V3_BODY.replace(b"2024-06-21T01:15:39.902", b"9999-12-31T23:59:59-14:00"), "eventDateUtc"),
        (V3_BODY.replace(b'"tenantId":"c2cc', b'"tenantId":"0123456789c2cc'), "tenantId"),
    ],
)
def test_bodies_that_break_the_parser_are_malformed(body: bytes, message: str) -> None:
    """Nesting beyond what json.loads goes, a number too long to convert, a date a zone pushes
    out of range, a tenant id longer than a UUID: each is a MalformedPayload, never another
    exception (a signed body is then quarantined rather than answered 500)."""
    with pytest.raises(MalformedPayload, match=message):
        parse(body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)
EVENT_FIELDS = [
    "resourceUrl",
    "resourceId",
    "eventDateUtc",
    "eventType",
    "eventCategory",
    "tenantId",
    "tenantType",
]


@given(field=st.sampled_from(EVENT_FIELDS), value=JSON)
def test_any_value_in_an_event_field_parses_or_is_malformed(field: str, value: object) -> None:
    """Whatever JSON a field holds, parse returns a delivery or raises MalformedPayload."""
    data = json.loads(V3_BODY)
    data["events"][0][field] = value
    with contextlib.suppress(MalformedPayload):
        parse(json.dumps(data).encode())


@given(body=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_any_body_parses_or_is_malformed(body: bytes) -> None:
    """Whatever the bytes, parse returns a delivery or raises MalformedPayload."""
    with contextlib.suppress(MalformedPayload):
        parse(body)


def test_keys_given_as_bytes_verify_like_text() -> None:
    """A key passed as its UTF-8 bytes verifies exactly as the text key does."""
    signature = sign(V3_BODY, V23_KEY)
    assert verify(V3_BODY, [signature], [V23_KEY.encode()])
    assert not verify(V3_BODY, [signature], [b"another-key"])
