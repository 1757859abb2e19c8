"""Xero webhook ingress: `POST /api/integrations/xero/webhook`.

Verify the signature over the raw bytes (401, empty body, when it fails — which is also how
Xero's intent-to-receive check is passed), store what came in durably (events deduplicated,
malformed-but-signed payloads in quarantine), and answer 200 with an empty body and no cookies.
Nothing else happens here: the worker applies the events after the answer.

This is the one hot path of the service, so the endpoint is a plain ASGI callable (no Request
object, no response class) that the application calls before its routing and middleware
(syncd.web.app.SyncdApp); it answers its own failures (503 when the database refuses the
write, so Xero delivers again). The durable write is a group commit (syncd.pipeline.inbox).
benchmarks/webhook_ack.py measures it.
"""

from __future__ import annotations

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from syncd.logs import get_logger
from syncd.observability.instruments import record_webhook
from syncd.pipeline.inbox import event_row, quarantine_row
from syncd.services import Services
from syncd.settings import Settings
from syncd.web.auth import access
from syncd.xero.webhooks import MalformedPayload, parse, verify

log = get_logger("syncd.webhook")

PATH = "/api/integrations/xero/webhook"
_SIGNATURE = b"x-xero-signature"


class TooLarge(Exception):
    pass


async def _answer(send: Send, status: int, *, allow: str | None = None) -> None:
    headers = [(b"content-length", b"0")]
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _read_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise TooLarge
    if not message.get("more_body", False):
        return body  # the usual case: the whole body in one message
    chunks, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


@access("xero-signature")
class WebhookIngress:
    def __init__(self) -> None:
        # The webhook keys as bytes, for the settings they came from: revealing and encoding
        # them for every request cost more than the identity check (apps in tests differ).
        self._keys: tuple[Settings | None, list[bytes]] = (None, [])

    def _keys_of(self, settings: Settings) -> list[bytes]:
        cached_for, keys = self._keys
        if cached_for is not settings:
            keys = [
                key.reveal().encode("utf-8")
                for key in (settings.xero_webhook_key, settings.xero_webhook_key_previous)
                if key is not None
            ]
            self._keys = (settings, keys)
        return keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            record_webhook("xero", "method_not_allowed")
            await _answer(send, 405, allow="POST")
            return
        services: Services = scope["app"].state.services
        settings = services.settings
        limit = settings.webhook_max_bytes
        signatures: list[str] = []
        too_large = False
        for name, value in scope["headers"]:  # one pass for both headers
            if name == b"content-length":
                # (digit count first: int() refuses strings past 4,300 digits)
                too_large = value.isdigit() and (len(value) > 18 or int(value) > limit)
            elif name == _SIGNATURE:
                signatures.append(value.decode("latin-1"))
        try:
            if too_large:
                raise TooLarge
            body = await _read_body(receive, limit)
        except TooLarge:
            log.warning("webhook.too_large", limit=limit)
            record_webhook("xero", "too_large")
            await _answer(send, 413)
            return
        if not verify(body, signatures, self._keys_of(settings)):
            log.warning("webhook.bad_signature", size=len(body))
            record_webhook("xero", "bad_signature")
            await _answer(send, 401)
            return
        now = services.clock.now()
        try:
            delivery = parse(body)
        except MalformedPayload as exc:
            log.warning("webhook.quarantined", reason=str(exc), size=len(body))
            outcome, rows = "quarantined", [quarantine_row(body, str(exc), received_at=now)]
        else:
            outcome = "accepted"
            rows = [event_row(e, source="webhook", received_at=now) for e in delivery.events]
        try:
            await services.inbox_writer.write(rows)
        except Exception as exc:  # the database refused the batch: Xero delivers again later
            # (the writer logged the failure as an error, once for its batch)
            log.warning("webhook.not_stored", error=f"{type(exc).__name__}: {exc}"[:500])
            record_webhook("xero", "not_stored")
            await _answer(send, 503)
            return
        record_webhook("xero", outcome)
        await _answer(send, 200)


# syncd.web.app answers PATH with this ingress before routing and middleware; the route keeps
# it in the table for everything that lists routes (access labels, docs).
ingress = WebhookIngress()
routes = [Route(PATH, ingress)]
