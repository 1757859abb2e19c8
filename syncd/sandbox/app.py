"""The sandbox's ASGI app: one Starlette app serving the paths of all of Xero's hosts (login,
identity, api) plus the control API, so syncd's XERO_LOGIN_URL, XERO_IDENTITY_URL and
XERO_API_URL can all point at the same base URL.
"""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from syncd.sandbox import contacts, control, identity, invoices, practice_manager, projects
from syncd.sandbox.gate import SandboxGate
from syncd.sandbox.state import SandboxState
from syncd.sandbox.webhooks import WebhookDispatcher


def create_sandbox_app(
    state: SandboxState, *, webhook_transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """A fresh app over `state`; building it has no side effects on the state. Webhooks flushed
    through its control API go over `webhook_transport` (None: real HTTP); its dispatcher is
    `app.state.webhooks`."""
    dispatcher = WebhookDispatcher(state, transport=webhook_transport)
    routes: list[BaseRoute] = [
        *identity.routes(state),
        *projects.routes(state),
        *contacts.routes(state),
        *invoices.routes(state),
        *practice_manager.routes(state),
        *control.routes(state, dispatcher),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SandboxGate, state=state)])
    app.state.sandbox = state
    app.state.webhooks = dispatcher
    return app
