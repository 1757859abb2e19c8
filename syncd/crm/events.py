"""Events the CRM pushes, sans IO: Standard Webhooks verification and the event shape.

Signature: `webhook-signature` holds space-separated `v1,<base64 HMAC-SHA256>` entries over
`{webhook-id}.{webhook-timestamp}.{body}`, keyed by the secret's bytes (`whsec_<base64>`; a
secret without the prefix is used as UTF-8). Timestamps more than 5 minutes off, or not whole
Unix seconds at all, are refused like a bad signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

TOLERANCE = timedelta(minutes=5)
MAX_TIMESTAMP_DIGITS = 12  # Unix seconds stay under 12 digits until the year 33658
REQUEST_EVENTS = frozenset(
    {
        "service_request.assigned",
        "service_request.status_changed",
        "service_request.reassigned",
        "service_request.updated",
    }
)
CLIENT_EVENTS = frozenset({"client.updated"})


class EventRejected(Exception):
    """The request is not a genuine, timely event (answer 401)."""


class EventInvalid(Exception):
    """A genuine event whose content syncd cannot use (answer 422, saying why)."""


def secret_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            raise ValueError("SYNCD_CRM_WEBHOOK_SECRET: whsec_ secret is not base64") from None
    return secret.encode("utf-8")


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def verify(
    key: bytes,
    *,
    webhook_id: str | None,
    timestamp: str | None,
    signatures: str | None,
    body: bytes,
    now: datetime,
) -> None:
    """Raise EventRejected unless one of the signatures matches and the time is close."""
    if not webhook_id or not timestamp or not signatures:
        raise EventRejected("webhook-id, webhook-timestamp and webhook-signature are required")
    # Whole seconds in ASCII digits (int() would also take "+1", "1_0", " 1" and other scripts'
    # digits), compared as integers: no datetime is built from a number a sender chose.
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        raise EventRejected("webhook-timestamp is not a Unix time")
    sent = int(timestamp)
    if abs(int(now.timestamp()) - sent) > TOLERANCE.total_seconds():
        raise EventRejected("webhook-timestamp is more than 5 minutes away from now")
    expected = sign(key, webhook_id, sent, body)
    matched = False
    for candidate in signatures.split():
        matched |= hmac.compare_digest(candidate.encode(), expected.encode())
    if not matched:
        raise EventRejected("no webhook-signature matches")


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmEvent:
    type: str
    company_id: str
    request_id: str | None
    client_id: str | None


def parse(body: bytes) -> CrmEvent:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EventInvalid("the body is not JSON") from None
    except RecursionError:
        raise EventInvalid("the body is JSON nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise EventInvalid('expected {"type": ..., "data": {...}}')
    kind, fields = data.get("type"), data["data"]
    if kind not in REQUEST_EVENTS | CLIENT_EVENTS:
        allowed = ", ".join(sorted(REQUEST_EVENTS | CLIENT_EVENTS))
        raise EventInvalid(f"unknown event type {kind!r}; syncd takes {allowed}")
    company = fields.get("company_id")
    if not isinstance(company, str) or not company:
        raise EventInvalid("data.company_id is required")
    needed = "request_id" if kind in REQUEST_EVENTS else "client_id"
    value = fields.get(needed)
    if not isinstance(value, str) or not value:
        raise EventInvalid(f"data.{needed} is required for {kind}")
    return CrmEvent(
        type=str(kind),
        company_id=company,
        request_id=value if needed == "request_id" else None,
        client_id=value if needed == "client_id" else None,
    )
