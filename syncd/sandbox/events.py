"""Webhook events as Xero sends them: the event and its wire form, the signature, and the per-app
queue (subscriptions, the batch awaiting delivery, retries, disabling, the delivery log).

Pure: no IO, and times are passed in; `webhooks.py` does the sending. Imports only the sandbox's
models.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from syncd.sandbox.models import SandboxError

XERO_API = "https://api.xero.com"
BATCH_SIZE = 50
RETRY_HOURS = 24.0
# Xero has no Projects or Practice Manager webhooks (xero-facts 1.1): the sandbox sends none.
EventCategory = Literal["CONTACT", "INVOICE"]
EventType = Literal["CREATE", "UPDATE"]
SubscriptionStatus = Literal["OK", "DISABLED", "INTENT_REQUIRED"]
DeliveryKind = Literal["events", "intent"]
# Where each category's resource lives. Always Xero's real host: syncd must never follow it.
_RESOURCES: dict[str, str] = {
    "CONTACT": "/api.xro/2.0/Contacts/",
    "INVOICE": "/api.xro/2.0/Invoices/",
}
_BASE64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"


# -- the wire form ----------------------------------------------------------------------------


def event_date_utc(value: datetime) -> str:
    """Xero's `eventDateUtc`: UTC with milliseconds and no zone, e.g. `2024-06-21T01:15:39.902`."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}"


def resource_url(category: EventCategory, resource_id: str) -> str:
    return XERO_API + _RESOURCES[category] + resource_id


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEvent:
    """One event in an app's stream; `sequence` is its number there (from 1)."""

    sequence: int
    category: EventCategory
    event_type: EventType
    resource_id: str
    tenant_id: str
    at: datetime
    tenant_type: str = "ORGANISATION"

    def as_json(self) -> dict[str, str]:
        """The event object, with Xero's key order."""
        return {
            "resourceUrl": resource_url(self.category, self.resource_id),
            "resourceId": self.resource_id,
            "eventDateUtc": event_date_utc(self.at),
            "eventType": self.event_type,
            "eventCategory": self.category,
            "tenantId": self.tenant_id,
            "tenantType": self.tenant_type,
        }


def payload_body(events: Sequence[WebhookEvent], *, entropy: str) -> bytes:
    """A delivery's exact bytes: compact JSON in Xero's key order (xero-facts V3)."""
    if not events:
        raise ValueError("a delivery carries at least one event; intent-to-receive has its own")
    body = {
        "events": [event.as_json() for event in events],
        "firstEventSequence": events[0].sequence,
        "lastEventSequence": events[-1].sequence,
        "entropy": entropy,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def intent_body(entropy: str) -> bytes:
    """An intent-to-receive body, spaced exactly as Xero sends it (xero-facts V1, V2)."""
    return (
        f'{{"events":[],"firstEventSequence": 0,"lastEventSequence": 0, "entropy": "{entropy}"}}'
    ).encode()


def sign(key: str, body: bytes) -> str:
    """`x-xero-signature`: base64 HMAC-SHA256 of the raw body, keyed by the key's UTF-8 bytes."""
    digest = hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def missign(signature: str) -> str:
    """A deliberately wrong signature, as in Xero's intent-to-receive: the first character
    changed (still valid base64 of the right length)."""
    first = _BASE64[(_BASE64.index(signature[0]) + 1) % len(_BASE64)]
    return first + signature[1:]


# -- subscriptions, batches and the delivery log ---------------------------------------------


@dataclass(slots=True, kw_only=True)
class Subscription:
    """An app's webhook, as configured in Xero's developer portal, and its health.

    `status` becomes "DISABLED" once a delivery has failed for `retry_hours` of the sandbox
    clock (Xero: 24 hours) or `max_attempts` times (0: no attempt limit, as at Xero), and
    "INTENT_REQUIRED" when an intent-to-receive fails; either way nothing is queued or sent
    until intent-to-receive passes. `enabled` is the portal's on/off switch.
    A control knob, so mutable; every assignment is checked.
    """

    client_id: str
    url: str
    enabled: bool = True
    status: SubscriptionStatus = "OK"
    reason: str | None = None
    max_attempts: int = 0
    retry_hours: float = RETRY_HOURS
    last_sequence: int = 0
    lost_events: int = 0
    discarded_events: int = 0

    def __setattr__(self, name: str, value: object) -> None:
        if name == "enabled" and not isinstance(value, bool):
            raise SandboxError(f"enabled must be true or false, not {value!r}")
        if name == "max_attempts" and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise SandboxError(f"max_attempts must be a whole number of at least 0, not {value!r}")
        if name == "retry_hours" and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
        ):
            raise SandboxError(f"retry_hours must be a number above 0, not {value!r}")
        object.__setattr__(self, name, value)

    @property
    def active(self) -> bool:
        return self.enabled and self.status == "OK"


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """Events of one app sent as one payload; retried as the very same bytes until a 200."""

    client_id: str
    events: tuple[WebhookEvent, ...]
    entropy: str
    body: bytes
    attempts: int = 0
    first_attempt_at: datetime | None = None

    @property
    def first_sequence(self) -> int:
        return self.events[0].sequence

    @property
    def last_sequence(self) -> int:
        return self.events[-1].sequence


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One POST the sandbox made (or tried): a batch of events or an intent-to-receive probe.

    `status` is None when no answer came (no connection, or none within the timeout);
    `passed` says whether Xero would have accepted the answer, `reason` why not;
    `correctly_signed` is False for intent-to-receive's deliberately mis-signed probes.
    """

    seq: int
    at: datetime
    client_id: str
    url: str
    kind: DeliveryKind
    first_sequence: int
    last_sequence: int
    event_count: int
    attempt: int
    status: int | None
    duration_ms: float
    passed: bool
    reason: str | None
    correctly_signed: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "client_id": self.client_id,
            "url": self.url,
            "kind": self.kind,
            "first_sequence": self.first_sequence,
            "last_sequence": self.last_sequence,
            "event_count": self.event_count,
            "attempt": self.attempt,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
            "passed": self.passed,
            "reason": self.reason,
            "correctly_signed": self.correctly_signed,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentResult:
    """The outcome of an intent-to-receive: every probe, and whether the endpoint passed."""

    client_id: str
    url: str
    passed: bool
    reason: str | None
    attempts: tuple[Delivery, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "url": self.url,
            "passed": self.passed,
            "reason": self.reason,
            "attempts": [attempt.as_json() for attempt in self.attempts],
        }


def judge_intent(
    status: int | None,
    *,
    correctly_signed: bool,
    has_body: bool,
    sets_cookie: bool,
    failure: str | None = None,
) -> str | None:
    """Why Xero's portal would fail this intent-to-receive answer (None: it is right).
    The first two messages are the portal's own wording."""
    if status is None:
        return failure or "No response"
    if correctly_signed and status != 200:
        return "Response not 200"
    if not correctly_signed and status != 401:
        return "Response to incorrectly signed payload not 401"
    if has_body:
        return "Response had a body (Xero requires an empty body)"
    if sets_cookie:
        return "Response set a cookie (Xero requires none)"
    return None


class WebhookQueue:
    """Subscriptions (one per app), each app's queued events and the batch being delivered or
    retried, and the log of every delivery. Single event loop, no locks: a batch taken for
    sending is marked, so two concurrent flushes never send it twice."""

    def __init__(self, rng: random.Random) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[Delivery] = []
        self._rng = rng
        self._queued: dict[str, list[WebhookEvent]] = {}
        self._batches: dict[str, Batch] = {}
        self._sending: set[str] = set()
        self._delivery_seq = 0

    def clear(self) -> None:
        """Forget queued events, batches and the log; subscriptions (app config) stay."""
        self._queued.clear()
        self._batches.clear()
        self._sending.clear()
        self.deliveries = []
        self._delivery_seq = 0

    def entropy(self) -> str:
        """20 random uppercase letters, as in Xero's payloads."""
        return "".join(self._rng.choice(string.ascii_uppercase) for _ in range(20))

    def queue(
        self,
        client_id: str,
        *,
        category: EventCategory,
        event_type: EventType,
        resource_id: str,
        tenant_id: str,
        at: datetime,
        lost: bool = False,
    ) -> WebhookEvent | None:
        """Number the event in the app's stream and queue it (a lost one only uses its
        number: the gap is all a receiver could ever see of it)."""
        subscription = self.subscriptions[client_id]
        subscription.last_sequence += 1
        event = WebhookEvent(
            sequence=subscription.last_sequence,
            category=category,
            event_type=event_type,
            resource_id=resource_id,
            tenant_id=tenant_id,
            at=at,
        )
        if lost:
            subscription.lost_events += 1
            return None
        self._queued.setdefault(client_id, []).append(event)
        return event

    def pending(self, client_id: str) -> list[WebhookEvent]:
        """Events not yet delivered: the batch in delivery or retry, then the queue."""
        batch = self._batches.get(client_id)
        return [*(batch.events if batch else ()), *self._queued.get(client_id, [])]

    def retrying(self, client_id: str) -> Batch | None:
        return self._batches.get(client_id)

    def take(self, client_id: str, *, limit: int = BATCH_SIZE) -> Batch | None:
        """The batch to send now: the one awaiting a retry, else up to `limit` queued events
        (None: nothing to send, or a send of this app is already under way)."""
        if client_id in self._sending:
            return None
        batch = self._batches.get(client_id)
        if batch is None:
            queued = self._queued.get(client_id, [])
            if not queued:
                return None
            events, self._queued[client_id] = tuple(queued[:limit]), queued[limit:]
            entropy = self.entropy()
            batch = Batch(
                client_id=client_id,
                events=events,
                entropy=entropy,
                body=payload_body(events, entropy=entropy),
            )
            self._batches[client_id] = batch
        self._sending.add(client_id)
        return batch

    def settle(self, batch: Batch, *, delivered: bool, at: datetime) -> Batch | None:
        """Record the outcome of sending `batch`: done, kept for a retry (returned), or, after
        too many attempts or too long, the subscription disabled and its events discarded."""
        client_id = batch.client_id
        self._sending.discard(client_id)
        if self._batches.get(client_id) is not batch:
            return None  # the world was reset meanwhile
        if delivered:
            del self._batches[client_id]
            return None
        failed = replace(
            batch, attempts=batch.attempts + 1, first_attempt_at=batch.first_attempt_at or at
        )
        self._batches[client_id] = failed
        subscription = self.subscriptions.get(client_id)
        if subscription is None:
            return failed
        assert failed.first_attempt_at is not None
        if at - failed.first_attempt_at >= timedelta(hours=subscription.retry_hours):
            self.disable(
                client_id,
                "DISABLED",
                f"deliveries failed for {subscription.retry_hours:g} hours",
            )
            return None
        if subscription.max_attempts and failed.attempts >= subscription.max_attempts:
            self.disable(
                client_id, "DISABLED", f"{failed.attempts} delivery attempts failed in a row"
            )
            return None
        return failed

    def disable(self, client_id: str, status: SubscriptionStatus, reason: str) -> None:
        """Stop the app's webhook until intent-to-receive passes; undelivered events are gone."""
        subscription = self.subscriptions[client_id]
        subscription.status = status
        subscription.reason = reason
        subscription.discarded_events += len(self.pending(client_id))
        self._batches.pop(client_id, None)
        self._queued.pop(client_id, None)

    def restore(self, client_id: str) -> None:
        """Intent-to-receive passed: the webhook delivers again."""
        subscription = self.subscriptions[client_id]
        subscription.status = "OK"
        subscription.reason = None

    def record(self, **fields: Any) -> Delivery:
        """Append a delivery to the log, numbered."""
        self._delivery_seq += 1
        delivery = Delivery(seq=self._delivery_seq, **fields)
        self.deliveries.append(delivery)
        return delivery

    def deliveries_since(self, seq: int = 0) -> list[Delivery]:
        return [delivery for delivery in self.deliveries if delivery.seq > seq]

    def describe(self, client_id: str) -> dict[str, Any]:
        """A subscription and its queue, as the control API shows it."""
        subscription = self.subscriptions[client_id]
        batch = self._batches.get(client_id)
        return {
            "client_id": subscription.client_id,
            "url": subscription.url,
            "enabled": subscription.enabled,
            "status": subscription.status,
            "reason": subscription.reason,
            "max_attempts": subscription.max_attempts,
            "retry_hours": subscription.retry_hours,
            "last_sequence": subscription.last_sequence,
            "pending_events": len(self.pending(client_id)),
            "retry_attempts": batch.attempts if batch else 0,
            "lost_events": subscription.lost_events,
            "discarded_events": subscription.discarded_events,
        }
