"""Xero's login and identity hosts: authorize (auto-consent), token, revocation, connections.

Routes only; the credential rules live in `tokens.py`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from html import escape
from urllib.parse import unquote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from syncd.sandbox import errors, pages
from syncd.sandbox.models import OAuthApp, connection_date
from syncd.sandbox.state import SandboxState
from syncd.sandbox.tokens import Connection, Grant, OAuthError, TokenSet

_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")
_SCOPE = re.compile(r"^[A-Za-z][A-Za-z0-9._:-]*$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def _refusal_page(reason: str) -> HTMLResponse:
    page = (
        "<!doctype html><title>Sandbox sign-in error</title>"
        f"<h1>Sorry, something went wrong</h1><p>{escape(reason)}</p>"
    )
    return HTMLResponse(page, status_code=400)


def _redirect(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=302)


def connection_json(connection: Connection, state: SandboxState) -> dict[str, str]:
    tenant = state.tenants[connection.tenant_id]
    return {
        "id": connection.connection_id,
        "authEventId": connection.auth_event_id,
        "tenantId": tenant.tenant_id,
        "tenantType": tenant.tenant_type,
        "tenantName": tenant.name,
        "createdDateUtc": connection_date(connection.created_at),
        "updatedDateUtc": connection_date(connection.updated_at),
    }


class _ClientAuthError(Exception):
    def __init__(self, basic: bool) -> None:
        super().__init__("invalid_client")
        self.basic = basic


def _client(state: SandboxState, request: Request, form: dict[str, str]) -> OAuthApp:
    """The app authenticating a token or revocation request (HTTP Basic or form fields)."""
    header = request.headers.get("authorization", "")
    basic = header[:6].lower() == "basic "
    if basic:
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _ClientAuthError(basic) from None
        raw_id, _, raw_secret = decoded.partition(":")
        client_id, secret = unquote(raw_id), unquote(raw_secret) or None
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret") or None
    app = state.apps.get(client_id)
    if app is None:
        raise _ClientAuthError(basic)
    if app.client_secret is not None and (
        secret is None or not hmac.compare_digest(secret, app.client_secret)
    ):
        raise _ClientAuthError(basic)
    return app


async def _form(request: Request) -> dict[str, str] | None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    async with request.form() as form:
        return {key: value for key, value in form.items() if isinstance(value, str)}


def routes(state: SandboxState) -> list[Route]:
    async def authorize(request: Request) -> Response:
        query = request.query_params
        app = state.apps.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if app is None:
            return _refusal_page("unauthorized_client: unknown client_id")
        if redirect_uri not in app.redirect_uris:
            return _refusal_page("invalid redirect_uri: it must match a registered one exactly")
        back: dict[str, str] = {"state": query["state"]} if "state" in query else {}
        if query.get("response_type") != "code":
            return _redirect(redirect_uri, {"error": "unsupported_response_type", **back})
        scopes = tuple(dict.fromkeys(query.get("scope", "").split()))
        if not scopes or not all(_SCOPE.match(scope) for scope in scopes):
            return _redirect(redirect_uri, {"error": "invalid_scope", **back})
        challenge = query.get("code_challenge")
        if challenge is not None:
            if query.get("code_challenge_method") != "S256" or not _CHALLENGE.match(challenge):
                description = "code_challenge must be S256 (43 base64url characters)"
                return _redirect(
                    redirect_uri,
                    {"error": "invalid_request", "error_description": description, **back},
                )
        elif app.client_secret is None:
            description = "PKCE apps must send code_challenge"
            return _redirect(
                redirect_uri,
                {"error": "invalid_request", "error_description": description, **back},
            )
        wanted = state.consent_tenant_ids
        tenant_ids = list(state.tenants) if wanted is None else [t.lower() for t in wanted]
        code = state.authority.consent(
            app=app,
            redirect_uri=redirect_uri,
            scopes=scopes,
            code_challenge=challenge,
            user_id=state.consent_user_id,
            tenant_ids=[t for t in tenant_ids if t in state.tenants],
        )
        params = {"code": code.code, "scope": " ".join(scopes), **back}
        params["session_state"] = code.auth_event_id.replace("-", "")
        return _redirect(redirect_uri, params)

    async def token(request: Request) -> Response:
        form = await _form(request)
        if form is None:
            return errors.oauth_error("invalid_request", "send application/x-www-form-urlencoded")
        try:
            app = _client(state, request, form)
        except _ClientAuthError as exc:
            return errors.oauth_error("invalid_client", status=401 if exc.basic else 400)
        grant_type = form.get("grant_type")
        issued: TokenSet
        try:
            if grant_type == "authorization_code":
                issued = state.authority.exchange_code(
                    app=app,
                    code=form.get("code", ""),
                    redirect_uri=form.get("redirect_uri"),
                    code_verifier=form.get("code_verifier"),
                )
            elif grant_type == "refresh_token":
                issued = state.authority.refresh(
                    app=app, refresh_token=form.get("refresh_token", "")
                )
            else:
                return errors.oauth_error("unsupported_grant_type")
        except OAuthError as exc:
            # Xero answers a bare {"error": "invalid_grant"}; the description helps debugging.
            return errors.oauth_error(exc.error, exc.description, status=exc.status)
        return JSONResponse(
            issued.as_json(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )

    async def revocation(request: Request) -> Response:
        form = await _form(request)
        if form is None or "token" not in form:
            return errors.oauth_error("invalid_request", "form field token is required")
        try:
            app = _client(state, request, form)
        except _ClientAuthError as exc:
            return errors.oauth_error("invalid_client", status=401 if exc.basic else 400)
        state.authority.revoke(app=app, token=form["token"])
        return Response(status_code=200)

    async def list_connections(request: Request) -> Response:
        grant: Grant = request.state.grant
        auth_event_id = request.query_params.get("authEventId")
        if auth_event_id is not None and not _UUID.match(auth_event_id):
            return errors.problem(400, "authEventId must be a UUID")
        found = [
            connection_json(connection, state)
            for connection in state.authority.connections_of(grant)
            if auth_event_id is None or connection.auth_event_id == auth_event_id.lower()
        ]
        return JSONResponse(found)

    async def delete_connection(request: Request) -> Response:
        grant: Grant = request.state.grant
        connection_id = str(request.path_params["connection_id"]).lower()
        for connection in state.authority.connections_of(grant):
            if connection.connection_id == connection_id:
                del state.authority.connections[connection_id]
                return Response(status_code=204)
        return Response(status_code=404)

    return [
        pages.route("/identity/connect/authorize", authorize, methods=["GET"]),
        pages.route("/connect/token", token, methods=["POST"]),
        pages.route("/connect/revocation", revocation, methods=["POST"]),
        pages.route("/Connections", list_connections, methods=["GET"]),
        pages.route("/Connections/{connection_id}", delete_connection, methods=["DELETE"]),
    ]
