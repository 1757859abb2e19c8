"""Xero webhooks, sans IO: verify the signature over the raw bytes, then parse the envelope.

Verification comes first and needs nothing but bytes and keys (gidgethub's `validate_event`
shape); parsing only ever sees verified bodies. The envelope is Xero's (`events`,
`firstEventSequence`, `lastEventSequence`, `entropy`); the categories are Xero's CONTACT,
INVOICE, CREDITNOTE and SUBSCRIPTION. Xero sends none for Projects or Practice Manager jobs
(xero-facts §1.1): job changes reach syncd through its poller.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SIGNATURE_HEADER = "x-xero-signature"
# 32-byte digest in standard base64 with padding.
_SIGNATURE_SHAPE = re.compile(r"[A-Za-z0-9+/]{43}=")
_UUIDISH = re.compile(r"[0-9A-Za-z-]{1,64}")

EVENT_TYPES = {
    "CONTACT": {"CREATE", "UPDATE"},
    "INVOICE": {"CREATE", "UPDATE"},
    "CREDITNOTE": {"CREATE", "UPDATE"},
    "SUBSCRIPTION": {"CREATE", "UPDATE"},
}


class MalformedPayload(Exception):
    """A correctly signed body that is not a valid webhook envelope (kept in quarantine)."""


def sign(body: bytes, key: str) -> str:
    return _sign(body, key.encode("utf-8")).decode("ascii")


def _sign(body: bytes, key: bytes) -> bytes:
    """The signature's text (standard base64 with padding), as bytes."""
    keyed = _keyed(key).copy()  # the key's HMAC state, computed once: ~1 µs less a request
    keyed.update(body)
    return binascii.b2a_base64(keyed.digest(), newline=False)


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


def verify(body: bytes, signatures: Sequence[str], keys: Sequence[str | bytes]) -> bool:
    """True when exactly one well-formed signature header matches one of `keys`.

    The key is used as its UTF-8 bytes (never base64-decoded); every candidate is compared in
    constant time, and the comparison runs for every key so timing says nothing about which.
    """
    if len(signatures) != 1 or not keys:
        return False
    given = signatures[0].strip()
    if not _SIGNATURE_SHAPE.fullmatch(given):
        return False
    # Compare the text, not the decoded bytes: the last base64 character carries two padding
    # bits, so decoding would accept a signature with one character changed.
    expected = given.encode("ascii")
    matched = False
    for key in keys:
        raw = key if isinstance(key, bytes) else key.encode("utf-8")
        matched |= hmac.compare_digest(_sign(body, raw), expected)
    return matched


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEvent:
    tenant_id: str
    tenant_type: str
    category: str
    event_type: str
    resource_id: str
    event_at: datetime

    @property
    def dedupe_key(self) -> str:
        """Xero sends at least once and names no event id: these fields identify an event."""
        return (
            f"{self.category}:{self.event_type}:{self.resource_id}:"
            f"{self.event_at.isoformat(timespec='milliseconds')}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    events: list[WebhookEvent]
    first_sequence: int
    last_sequence: int


def parse_event_date(value: Any) -> datetime:
    """Xero's `eventDateUtc`: UTC without a zone (`2024-06-21T01:15:39.902`); a zone is allowed."""
    if not isinstance(value, str) or not value:
        raise MalformedPayload("eventDateUtc must be a timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a zone pushing year 1 or 9999 over
        raise MalformedPayload(f"eventDateUtc is not a timestamp: {value[:40]!r}") from None


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    stripped = value.strip() if isinstance(value, str) else ""
    if not stripped:
        raise MalformedPayload(f"event field {key!r} is missing or not a string")
    return stripped


def _identifier(item: dict[str, Any], key: str, *, longest: int) -> str:
    value = _text(item, key)
    if len(value) > longest or not _UUIDISH.fullmatch(value):
        raise MalformedPayload(f"{key} is not an identifier")
    return value


def _parse_event(item: Any) -> WebhookEvent:
    if not isinstance(item, dict):
        raise MalformedPayload("each event must be an object")
    category = _text(item, "eventCategory").upper()
    event_type = _text(item, "eventType").upper()  # docs show "Update" as well as "UPDATE"
    types = EVENT_TYPES.get(category)
    if types is None:
        raise MalformedPayload(f"unknown eventCategory {category!r}")
    if event_type not in types:
        raise MalformedPayload(f"eventType {event_type!r} is not one of category {category}")
    # The inbox's columns hold 64 and 36 characters (a tenant id is a UUID).
    resource_id = _identifier(item, "resourceId", longest=64)
    tenant_id = _identifier(item, "tenantId", longest=36)
    _text(item, "resourceUrl")  # required by the schema; never followed
    return WebhookEvent(
        tenant_id=tenant_id,
        tenant_type=_text(item, "tenantType").upper(),
        category=category,
        event_type=event_type,
        resource_id=resource_id,
        event_at=parse_event_date(item.get("eventDateUtc")),
    )


def _sequence(value: Any) -> int:
    if type(value) is not int or value < 0:  # bool is a subclass of int: not accepted
        raise MalformedPayload("event sequence numbers must be whole numbers")
    return value


def parse(body: bytes) -> Delivery:
    """The envelope of a verified body, or MalformedPayload saying what is wrong: whatever the
    bytes, nothing else is raised (a signed body that breaks the parser is quarantined)."""
    try:
        data = json.loads(body)
    except RecursionError:  # nested deeper than the decoder goes
        raise MalformedPayload("the body is nested too deeply") from None
    except ValueError:  # not JSON, not Unicode, or a number too long to convert
        raise MalformedPayload("the body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedPayload("the body is not a JSON object")
    events = data.get("events")
    if not isinstance(events, list):
        raise MalformedPayload("`events` must be a list")
    first = _sequence(data.get("firstEventSequence"))
    last = _sequence(data.get("lastEventSequence"))
    if not isinstance(data.get("entropy"), str):
        raise MalformedPayload("`entropy` must be a string")
    return Delivery(
        events=[_parse_event(item) for item in events], first_sequence=first, last_sequence=last
    )
