"""`POST /api/crm/events`: the CRM pushes what changed, signed per Standard Webhooks with
SYNCD_CRM_WEBHOOK_SECRET. 202 with the tasks it caused; 200 for a duplicate id; 401 for a bad
signature or stale timestamp; 422 for an event syncd cannot use (saying why)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from syncd.crm.events import EventInvalid, EventRejected, parse, secret_key, verify
from syncd.observability.instruments import record_webhook
from syncd.pipeline.intake import take
from syncd.web.auth import access
from syncd.web.context import services_of
from syncd.web.errors import ApiError
from syncd.web.requests import MAX_JSON_BODY, read_limited

PATH = "/api/crm/events"


@access("crm-signature")
async def receive(request: Request) -> JSONResponse:
    services = services_of(request)
    secret = services.settings.crm_webhook_secret
    if secret is None or services.crm is None:
        record_webhook("crm", "not_configured")
        raise ApiError(503, "CRM events are not configured (SYNCD_CRM_WEBHOOK_SECRET, CRM)")
    body = await read_limited(request, MAX_JSON_BODY)
    headers = request.headers
    try:
        verify(
            secret_key(secret.reveal()),
            webhook_id=headers.get("webhook-id"),
            timestamp=headers.get("webhook-timestamp"),
            signatures=headers.get("webhook-signature"),
            body=body,
            now=services.clock.now(),
        )
    except EventRejected as exc:
        record_webhook("crm", "bad_signature")
        raise ApiError(401, str(exc)) from None
    try:
        event = parse(body)
        intake = await take(
            db=services.db,
            crm=services.crm,
            clock=services.clock,
            event=event,
            webhook_id=str(headers.get("webhook-id")),
        )
    except EventInvalid as exc:
        record_webhook("crm", "invalid")
        raise ApiError(422, str(exc)) from None
    record_webhook("crm", "duplicate" if intake.duplicate else "accepted")
    return JSONResponse(
        {
            "accepted": not intake.duplicate,
            "duplicate": intake.duplicate,
            "tasks": [{"kind": t.kind, "key": t.key} for t in intake.tasks],
            "note": intake.note,
        },
        status_code=200 if intake.duplicate else 202,
    )


routes = [Route(PATH, receive, methods=["POST"])]
