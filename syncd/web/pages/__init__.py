"""The admin console: server-rendered pages (Jinja2, a little progressive enhancement, no build
step) for Settings → Integrations → Xero, reached from the CRM with a short-lived JWT exchanged
for a session cookie. Every form is CSRF-checked; every query is scoped to the session's
practice."""

from __future__ import annotations

from starlette.routing import BaseRoute

from syncd.web.pages import console, handoff, mapping_pages, operations


def routes() -> list[BaseRoute]:
    return [*handoff.routes, *console.routes, *mapping_pages.routes, *operations.routes]
