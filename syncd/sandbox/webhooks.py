"""Sends the sandbox's webhooks: each app's queued events as one signed POST per flush, retried on
later flushes until answered 200 (and the webhook disabled, as Xero does, when that takes too
long), and Xero's intent-to-receive handshake.

The IO edge of `events.py`. The transport is the seam: None sends real HTTP, tests pass
`httpx.ASGITransport(app=...)` to deliver in-process. Timeouts and durations are real time (the
receiver's real responsiveness); everything recorded is dated by the sandbox clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from syncd.sandbox.events import (
    BATCH_SIZE,
    Batch,
    Delivery,
    IntentResult,
    Subscription,
    intent_body,
    judge_intent,
    missign,
    sign,
)
from syncd.sandbox.models import SandboxError
from syncd.sandbox.state import SandboxState

TIMEOUT_SECONDS = 5.0
CONTENT_TYPE = "application/json; charset=utf-8"
# Intent-to-receive probes in order, True for a correctly signed one. Xero does not document its
# series; users report mis-signed and good probes mixed (xero-facts 1.4).
INTENT_SERIES = (False, True, False, True)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int | None
    duration_ms: float
    has_body: bool = False
    sets_cookie: bool = False
    failure: str | None = None  # why no answer came


class _Borrowed(httpx.AsyncBaseTransport):
    """A caller's transport lent to one short-lived client: closing the client leaves it open."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)


class WebhookDispatcher:
    """Delivers `state`'s queued webhooks. `flush` sends one payload per app (at most
    `batch_size` events); `intent_to_receive` runs Xero's handshake against an app's URL.
    Every POST is appended to `state.webhook_deliveries`."""

    def __init__(
        self,
        state: SandboxState,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = TIMEOUT_SECONDS,
        batch_size: int = BATCH_SIZE,
        intent_series: Sequence[bool] = INTENT_SERIES,
    ) -> None:
        if batch_size < 1:
            raise SandboxError("batch_size must be at least 1")
        if True not in intent_series or False not in intent_series:
            raise SandboxError("intent_series needs correctly and incorrectly signed probes")
        self.state = state
        self.timeout = timeout
        self.batch_size = batch_size
        self.intent_series = tuple(intent_series)
        self._transport = transport

    def _client(self) -> httpx.AsyncClient:
        transport = _Borrowed(self._transport) if self._transport is not None else None
        return httpx.AsyncClient(transport=transport, timeout=self.timeout)

    def _key(self, subscription: Subscription) -> str | None:
        app = self.state.apps.get(subscription.client_id)
        return app.webhook_key if app is not None else None

    async def flush(self) -> list[Delivery]:
        """Send every app's due payload: its batch awaiting a retry, else its queued events."""
        state = self.state
        sent: list[Delivery] = []
        if not state.faults.webhooks_enabled:
            return sent
        due: list[tuple[Subscription, str]] = []
        for subscription in list(state.webhooks.subscriptions.values()):
            key = self._key(subscription)
            if subscription.active and key and state.webhooks.pending(subscription.client_id):
                due.append((subscription, key))
        if not due:
            return sent
        async with self._client() as client:
            for subscription, key in due:
                batch = state.webhooks.take(subscription.client_id, limit=self.batch_size)
                if batch is not None:
                    sent.append(await self._deliver(client, subscription, key, batch))
        return sent

    async def _deliver(
        self, client: httpx.AsyncClient, subscription: Subscription, key: str, batch: Batch
    ) -> Delivery:
        state = self.state
        at = state.clock.now()
        answer: _Answer | None = None
        try:
            answer = await self._post(client, subscription.url, batch.body, sign(key, batch.body))
        finally:
            delivered = answer is not None and answer.status == 200
            state.webhooks.settle(batch, delivered=delivered, at=state.clock.now())
        reason: str | None = None
        if not delivered:
            reason = answer.failure or f"answered {answer.status}, not 200"
            if not subscription.active:
                reason += f"; webhook disabled: {subscription.reason}"
        return state.webhooks.record(
            at=at,
            client_id=subscription.client_id,
            url=subscription.url,
            kind="events",
            first_sequence=batch.first_sequence,
            last_sequence=batch.last_sequence,
            event_count=len(batch.events),
            attempt=batch.attempts + 1,
            status=answer.status,
            duration_ms=answer.duration_ms,
            passed=delivered,
            reason=reason,
        )

    async def intent_to_receive(self, client_id: str | None = None) -> IntentResult:
        """Xero's handshake: empty payloads, some mis-signed. It passes when every correctly
        signed probe got 200 and every other 401, each with no body and no cookie, in time;
        passing (re-)enables the webhook, failing stops it until a later pass."""
        state = self.state
        subscription = state.webhook_subscription(client_id)
        key = self._key(subscription)
        if not key:
            raise SandboxError(f"app {subscription.client_id} has no webhook_key")
        attempts: list[Delivery] = []
        async with self._client() as client:
            for number, correctly_signed in enumerate(self.intent_series, start=1):
                body = intent_body(state.webhooks.entropy())
                signature = sign(key, body) if correctly_signed else missign(sign(key, body))
                at = state.clock.now()
                answer = await self._post(client, subscription.url, body, signature)
                reason = judge_intent(
                    answer.status,
                    correctly_signed=correctly_signed,
                    has_body=answer.has_body,
                    sets_cookie=answer.sets_cookie,
                    failure=answer.failure,
                )
                attempts.append(
                    state.webhooks.record(
                        at=at,
                        client_id=subscription.client_id,
                        url=subscription.url,
                        kind="intent",
                        first_sequence=0,
                        last_sequence=0,
                        event_count=0,
                        attempt=number,
                        status=answer.status,
                        duration_ms=answer.duration_ms,
                        passed=reason is None,
                        reason=reason,
                        correctly_signed=correctly_signed,
                    )
                )
        failure = next((attempt.reason for attempt in attempts if not attempt.passed), None)
        if failure is None:
            state.webhooks.restore(subscription.client_id)
        else:
            state.webhooks.disable(
                subscription.client_id, "INTENT_REQUIRED", f"intent to receive failed: {failure}"
            )
        return IntentResult(
            client_id=subscription.client_id,
            url=subscription.url,
            passed=failure is None,
            reason=failure,
            attempts=tuple(attempts),
        )

    async def _post(
        self, client: httpx.AsyncClient, url: str, body: bytes, signature: str
    ) -> _Answer:
        headers = {"Content-Type": CONTENT_TYPE, "x-xero-signature": signature}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                response = await client.post(url, content=body, headers=headers)
        except TimeoutError:
            failure = f"no response within {self.timeout:g} seconds"
            return _Answer(None, _since(started), failure=failure)
        except httpx.HTTPError as exc:
            return _Answer(None, _since(started), failure=f"no response: {type(exc).__name__}")
        return _Answer(
            response.status_code,
            _since(started),
            has_body=bool(response.content),
            sets_cookie="set-cookie" in response.headers,
        )


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
