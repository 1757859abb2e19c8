"""The sandbox's control API under `/_sandbox/` (JSON): the `SandboxState` methods over HTTP, so a
sandbox in another process can be seeded, steered and inspected by the demo and by tests, and
its webhooks configured, flushed and checked with intent-to-receive.

Bad input answers 400 `{"error": "..."}`; unknown tenants, contacts, projects, invoices, clients
and jobs 404. Practice Manager's routes are `control_practice.py`'s.
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.sandbox import checks, control_practice
from syncd.sandbox.contacts import contact_json
from syncd.sandbox.control_body import Body, Handler, guarded, read_json
from syncd.sandbox.identity import connection_json
from syncd.sandbox.invoices import invoice_json
from syncd.sandbox.models import (
    Faults,
    Invoice,
    Limits,
    SandboxError,
    Tenant,
    parse_iso,
)
from syncd.sandbox.projects import project_json
from syncd.sandbox.state import SandboxState
from syncd.sandbox.webhooks import WebhookDispatcher

PREFIX = "/_sandbox"


def _tenant_json(tenant: Tenant) -> dict[str, Any]:
    return {
        "tenant_id": tenant.tenant_id,
        "name": tenant.name,
        "tenant_type": tenant.tenant_type,
        "currency": tenant.currency,
        "contacts": len(tenant.contacts),
        "projects": len(tenant.projects),
        "invoices": len(tenant.invoices),
        "users": len(tenant.users),
        "templates": len(tenant.templates),
        "staff": len(tenant.staff),
        "clients": len(tenant.clients),
        "jobs": len(tenant.jobs),
        "categories": len(tenant.categories),
    }


def _merged(current: Any, body: Body, fields: set[str]) -> dict[str, Any]:
    values = asdict(current)
    values.update({k: v for k, v in body.data.items() if k in fields})
    return values


def routes(state: SandboxState, dispatcher: WebhookDispatcher) -> list[Route]:
    """The control routes; `dispatcher` sends the webhooks flushed over this API."""

    def invoice_out(tenant_id: str, invoice: Invoice) -> dict[str, Any]:
        return invoice_json(invoice, state.tenant(tenant_id).contacts.get(invoice.contact_id))

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    async def register_app(request: Request) -> Response:
        allowed = {
            "client_id",
            "client_secret",
            "redirect_uris",
            "webhook_key",
            "webhook_url",
            "name",
        }
        body = await read_json(request, allowed)
        app = state.register_app(
            body.text("client_id"),
            body.optional_text("client_secret"),
            body.texts("redirect_uris") or [],
            body.optional_text("webhook_key"),
            name=body.optional_text("name") or "syncd sandbox app",
            webhook_url=body.optional_text("webhook_url"),
        )
        return JSONResponse(
            {"client_id": app.client_id, "redirect_uris": list(app.redirect_uris)},
            status_code=201,
        )

    async def list_tenants(request: Request) -> Response:
        return JSONResponse([_tenant_json(t) for t in state.tenants.values()])

    async def add_tenant(request: Request) -> Response:
        body = await read_json(request, {"name", "tenant_type", "tenant_id", "currency"})
        tenant = state.add_tenant(
            body.text("name"),
            tenant_type=body.optional_text("tenant_type") or "ORGANISATION",
            tenant_id=body.optional_text("tenant_id"),
            currency=body.optional_text("currency") or "AUD",
        )
        return JSONResponse(_tenant_json(tenant), status_code=201)

    async def get_tenant(request: Request) -> Response:
        return JSONResponse(_tenant_json(state.tenant(request.path_params["tenant_id"])))

    async def consent(request: Request) -> Response:
        if request.method == "PUT":
            body = await read_json(request, {"tenant_ids", "user_id"})
            tenant_ids = body.texts("tenant_ids", nullable=True)
            for tenant_id in tenant_ids or []:
                state.tenant(tenant_id)
            state.consent_tenant_ids = tenant_ids
            state.consent_user_id = body.optional_text("user_id")
        return JSONResponse(
            {"tenant_ids": state.consent_tenant_ids, "user_id": state.consent_user_id}
        )

    async def users(request: Request) -> Response:
        tenant = state.tenant(request.path_params["tenant_id"])
        if request.method == "GET":
            return JSONResponse(list(tenant.users))
        body = await read_json(request, {"name", "email"})
        user = state.add_user(tenant.tenant_id, body.text("name"), body.text("email"))
        return JSONResponse(user, status_code=201)

    async def contacts(request: Request) -> Response:
        tenant = state.tenant(request.path_params["tenant_id"])
        if request.method == "GET":
            return JSONResponse([contact_json(c) for c in tenant.contacts.values()])
        allowed = {
            "name",
            "email",
            "first_name",
            "last_name",
            "contact_number",
            "account_number",
        }
        body = await read_json(request, allowed)
        contact = state.add_contact(
            tenant.tenant_id,
            body.text("name"),
            body.optional_text("email"),
            first_name=body.optional_text("first_name"),
            last_name=body.optional_text("last_name"),
            contact_number=body.optional_text("contact_number"),
            account_number=body.optional_text("account_number"),
        )
        return JSONResponse(contact_json(contact), status_code=201)

    async def update_contact(request: Request) -> Response:
        fields = {
            "name",
            "email",
            "first_name",
            "last_name",
            "contact_number",
            "account_number",
            "status",
        }
        body = await read_json(request, fields)
        changes = {name: body.optional_text(name) for name in body.data}
        if "status" in changes and changes["status"] is None:
            raise SandboxError("status must be a string")
        contact = state.update_contact(
            request.path_params["tenant_id"], request.path_params["contact_id"], **changes
        )
        return JSONResponse(contact_json(contact))

    async def archive_contact(request: Request) -> Response:
        contact = state.archive_contact(
            request.path_params["tenant_id"], request.path_params["contact_id"]
        )
        return JSONResponse(contact_json(contact))

    async def projects(request: Request) -> Response:
        tenant = state.tenant(request.path_params["tenant_id"])
        if request.method == "GET":
            return JSONResponse([project_json(p) for p in tenant.projects.values()])
        body = await read_json(request, {"contact_id", "name", "deadline", "estimate"})
        deadline_text = body.optional_text("deadline")
        estimate = body.data.get("estimate")
        try:
            deadline = parse_iso(deadline_text) if deadline_text else None
            amount = Decimal(str(estimate)) if estimate is not None else None
        except (ValueError, InvalidOperation):
            raise SandboxError("deadline must be ISO-8601 and estimate a number") from None
        project = state.add_project(
            tenant.tenant_id,
            contact_id=body.text("contact_id"),
            name=body.text("name"),
            deadline=deadline,
            estimate=amount,
        )
        return JSONResponse(project_json(project), status_code=201)

    async def one_project(request: Request) -> Response:
        tenant_id = request.path_params["tenant_id"]
        project_id = request.path_params["project_id"]
        if request.method == "DELETE":
            state.delete_project(tenant_id, project_id)
            return Response(status_code=204)
        return JSONResponse(project_json(state.project(tenant_id, project_id)))

    async def project_status(request: Request) -> Response:
        body = await read_json(request, {"status"})
        project = state.set_project_status(
            request.path_params["tenant_id"],
            request.path_params["project_id"],
            body.text("status"),
        )
        return JSONResponse(project_json(project))

    async def invoices(request: Request) -> Response:
        tenant = state.tenant(request.path_params["tenant_id"])
        if request.method == "GET":
            return JSONResponse(
                [invoice_out(tenant.tenant_id, i) for i in tenant.invoices.values()]
            )
        allowed = {
            "contact_id",
            "total",
            "reference",
            "status",
            "invoice_number",
            "issued_on",
            "due_on",
        }
        body = await read_json(request, allowed)
        invoice = state.add_invoice(
            tenant.tenant_id,
            contact_id=body.text("contact_id"),
            total=body.amount("total"),
            reference=body.optional_text("reference"),
            status=body.optional_text("status") or "AUTHORISED",
            invoice_number=body.optional_text("invoice_number"),
            issued_on=body.optional_date("issued_on"),
            due_on=body.optional_date("due_on"),
        )
        return JSONResponse(invoice_out(tenant.tenant_id, invoice), status_code=201)

    async def one_invoice(request: Request) -> Response:
        tenant_id = request.path_params["tenant_id"]
        invoice = state.invoice(tenant_id, request.path_params["invoice_id"])
        return JSONResponse(invoice_out(tenant_id, invoice))

    async def invoice_status(request: Request) -> Response:
        body = await read_json(request, {"status"})
        tenant_id = request.path_params["tenant_id"]
        invoice = state.update_invoice_status(
            tenant_id, request.path_params["invoice_id"], body.text("status")
        )
        return JSONResponse(invoice_out(tenant_id, invoice))

    async def webhooks(request: Request) -> Response:
        if request.method == "PUT":
            fields = {"client_id", "url", "enabled", "webhook_key", "max_attempts", "retry_hours"}
            body = await read_json(request, fields)
            subscription = state.configure_webhooks(
                body.optional_text("url"),
                client_id=body.optional_text("client_id"),
                enabled=body.optional_bool("enabled"),
                webhook_key=body.optional_text("webhook_key"),
                max_attempts=body.optional_int("max_attempts"),
                retry_hours=body.optional_number("retry_hours"),
            )
            return JSONResponse(state.webhooks.describe(subscription.client_id))
        return JSONResponse(
            {
                "webhooks_enabled": state.faults.webhooks_enabled,
                "subscriptions": [
                    state.webhooks.describe(client_id) for client_id in state.webhooks.subscriptions
                ],
            }
        )

    async def flush_webhooks(request: Request) -> Response:
        sent = await dispatcher.flush()
        return JSONResponse({"deliveries": [delivery.as_json() for delivery in sent]})

    async def intent_to_receive(request: Request) -> Response:
        body = await read_json(request, {"client_id"})
        result = await dispatcher.intent_to_receive(body.optional_text("client_id"))
        return JSONResponse(result.as_json())

    async def deliveries(request: Request) -> Response:
        raw = request.query_params.get("since", "0")
        try:
            since = int(raw)
        except ValueError:
            raise SandboxError(f"since must be an integer, not {raw!r}") from None
        found = state.webhooks.deliveries_since(since)
        last = found[-1].seq if found else since
        return JSONResponse({"deliveries": [d.as_json() for d in found], "last_seq": last})

    async def limits(request: Request) -> Response:
        if request.method == "PUT":
            fields = {"per_minute", "per_day", "concurrent", "app_per_minute"}
            body = await read_json(request, fields | {"tenant_id"})
            tenant_id = body.optional_text("tenant_id")
            current = state.limits_for(tenant_id) if tenant_id else state.limits
            state.set_limits(Limits(**_merged(current, body, fields)), tenant_id=tenant_id)
        overrides = {t: asdict(limits) for t, limits in state.tenant_limits.items()}
        return JSONResponse({"limits": asdict(state.limits), "tenants": overrides})

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            fields = {
                "latency_ms",
                "fail_next",
                "fail_status",
                "drop_next",
                "path_prefix",
                "drop_mode",
                "drop_hang_seconds",
                "lose_webhooks_next",
                "webhooks_enabled",
            }
            body = await read_json(request, fields)
            state.faults = Faults(**_merged(state.faults, body, fields))
        return JSONResponse(asdict(state.faults))

    async def expire_access_tokens(request: Request) -> Response:
        state.expire_access_tokens()
        return JSONResponse({"expired": True})

    async def revoke_refresh_tokens(request: Request) -> Response:
        state.revoke_refresh_tokens()
        return JSONResponse({"revoked": True})

    async def connections(request: Request) -> Response:
        return JSONResponse(
            [connection_json(c, state) for c in state.authority.connections.values()]
        )

    async def ledger(request: Request) -> Response:
        raw = request.query_params.get("since", "0")
        try:
            since = int(raw)
        except ValueError:
            raise SandboxError(f"since must be an integer, not {raw!r}") from None
        entries = state.ledger_since(since)
        last = entries[-1].seq if entries else since
        return JSONResponse({"entries": [e.as_json() for e in entries], "last_seq": last})

    async def report(request: Request) -> Response:
        tenant = state.tenant(request.path_params["tenant_id"])
        seconds = float(request.query_params.get("seconds", "60"))
        return JSONResponse(
            {
                "tenant_id": tenant.tenant_id,
                "max_concurrency": checks.max_concurrency(state.ledger, tenant.tenant_id),
                "max_calls_in_any_window": checks.max_calls_in_any_window(
                    state.ledger, tenant.tenant_id, seconds
                ),
                "count_429": checks.count_429(state.ledger, tenant.tenant_id),
                "duplicate_projects": [
                    [p.project_id for p in group]
                    for group in checks.duplicate_projects(state, tenant.tenant_id)
                ],
                "duplicate_jobs": [
                    [j.number for j in group]
                    for group in checks.duplicate_jobs(state, tenant.tenant_id)
                ],
            }
        )

    table: list[tuple[str, Handler, list[str]]] = [
        ("/reset", reset, ["POST"]),
        ("/apps", register_app, ["POST"]),
        ("/tenants", list_tenants, ["GET"]),
        ("/tenants", add_tenant, ["POST"]),
        ("/tenants/{tenant_id}", get_tenant, ["GET"]),
        ("/consent", consent, ["GET", "PUT"]),
        ("/tenants/{tenant_id}/users", users, ["GET", "POST"]),
        ("/tenants/{tenant_id}/contacts", contacts, ["GET", "POST"]),
        ("/tenants/{tenant_id}/contacts/{contact_id}", update_contact, ["PATCH"]),
        ("/tenants/{tenant_id}/contacts/{contact_id}/archive", archive_contact, ["POST"]),
        ("/tenants/{tenant_id}/projects", projects, ["GET", "POST"]),
        ("/tenants/{tenant_id}/projects/{project_id}", one_project, ["GET", "DELETE"]),
        ("/tenants/{tenant_id}/projects/{project_id}/status", project_status, ["PUT"]),
        ("/tenants/{tenant_id}/invoices", invoices, ["GET", "POST"]),
        ("/tenants/{tenant_id}/invoices/{invoice_id}", one_invoice, ["GET"]),
        ("/tenants/{tenant_id}/invoices/{invoice_id}/status", invoice_status, ["PUT"]),
        ("/tenants/{tenant_id}/checks", report, ["GET"]),
        ("/limits", limits, ["GET", "PUT"]),
        ("/faults", faults, ["GET", "PUT"]),
        ("/expire-access-tokens", expire_access_tokens, ["POST"]),
        ("/revoke-refresh-tokens", revoke_refresh_tokens, ["POST"]),
        ("/connections", connections, ["GET"]),
        ("/ledger", ledger, ["GET"]),
        ("/webhooks", webhooks, ["GET", "PUT"]),
        ("/webhooks/flush", flush_webhooks, ["POST"]),
        ("/webhooks/intent-to-receive", intent_to_receive, ["POST"]),
        ("/webhooks/deliveries", deliveries, ["GET"]),
        *control_practice.routes(state),
    ]
    return [Route(PREFIX + path, guarded(h), methods=methods) for path, h, methods in table]
