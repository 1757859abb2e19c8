"""The sandbox's ASGI app: one Starlette app serving the paths of all of Xero's hosts (login,
identity, api) plus the control API, so syncd's XERO_LOGIN_URL, XERO_IDENTITY_URL and
XERO_API_URL can all point at the same base URL.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from syncd.sandbox import contacts, control, identity, projects
from syncd.sandbox.gate import SandboxGate
from syncd.sandbox.state import SandboxState


def create_sandbox_app(state: SandboxState) -> Starlette:
    """A fresh app over `state`; building it has no side effects on the state."""
    routes: list[BaseRoute] = [
        *identity.routes(state),
        *projects.routes(state),
        *contacts.routes(state),
        *control.routes(state),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SandboxGate, state=state)])
    app.state.sandbox = state
    return app
