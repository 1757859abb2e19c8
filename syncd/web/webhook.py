"""Xero webhook ingress: `POST /api/integrations/xero/webhook`.

Verify the signature over the raw bytes (401, empty body, when it fails — which is also how
Xero's intent-to-receive check is passed), store what came in durably (events deduplicated,
malformed-but-signed payloads in quarantine), and answer 200 with an empty body and no cookies.
Nothing else happens here: the worker applies the events after the answer.

This is the one hot path of the service, so the endpoint is a plain ASGI callable (no Request
object, no response class) and its route comes first in the routing table; the durable write
is a group commit (syncd.pipeline.inbox). benchmarks/webhook_ack.py measures it.
"""

from __future__ import annotations

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from syncd.logs import get_logger
from syncd.pipeline.inbox import event_row, quarantine_row
from syncd.services import Services
from syncd.web.auth import access
from syncd.xero.webhooks import MalformedPayload, parse, verify

log = get_logger("syncd.webhook")

PATH = "/api/integrations/xero/webhook"
_SIGNATURE = b"x-xero-signature"
_EMPTY_HEADERS = [(b"content-length", b"0")]


class TooLarge(Exception):
    pass


async def _answer(send: Send, status: int, *, allow: str | None = None) -> None:
    headers = list(_EMPTY_HEADERS)
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise TooLarge
    chunks: list[bytes] = []
    size = 0
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
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _answer(send, 405, allow="POST")
            return
        services: Services = scope["app"].state.services
        settings = services.settings
        try:
            body = await _read_body(scope, receive, settings.webhook_max_bytes)
        except TooLarge:
            log.warning("webhook.too_large", limit=settings.webhook_max_bytes)
            await _answer(send, 413)
            return
        signatures = [v.decode("latin-1") for k, v in scope["headers"] if k == _SIGNATURE]
        keys = [
            key.reveal()
            for key in (settings.xero_webhook_key, settings.xero_webhook_key_previous)
            if key is not None
        ]
        if not verify(body, signatures, keys):
            log.warning("webhook.bad_signature", size=len(body))
            await _answer(send, 401)
            return
        now = services.clock.now()
        try:
            delivery = parse(body)
        except MalformedPayload as exc:
            log.warning("webhook.quarantined", reason=str(exc), size=len(body))
            rows = [quarantine_row(body, str(exc), received_at=now)]
        else:
            rows = [event_row(e, source="webhook", received_at=now) for e in delivery.events]
        await services.inbox_writer.write(rows)
        await _answer(send, 200)


routes = [Route(PATH, WebhookIngress())]
