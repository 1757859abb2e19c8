"""Xero Practice Manager API v3.1 (`/practicemanager/3.1`), read-only: `template.api/list` and
`staff.api/list`, answered in XML (`text/xml`) whatever the request's Accept says, as XPM does.

Only PRACTICEMANAGER tenants have a Practice Manager: any other tenant is refused with 403
`AuthorizationUnsuccessful` in the platform's problem shape. Xero does not document this case;
the sandbox answers as it does for a tenant a call does not cover (syncd: NeedsReconnect). XML
is only built here, never parsed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from xml.etree.ElementTree import Element, SubElement, tostring

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.sandbox import errors, pages
from syncd.sandbox.models import Tenant
from syncd.sandbox.state import SandboxState

BASE = "/practicemanager/3.1"
MEDIA_TYPE = "text/xml"


def _document(root: Element) -> bytes:
    document: bytes = tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def ok_xml(body: Element) -> bytes:
    """`<Response><Status>OK</Status>{body}</Response>`."""
    root = Element("Response")
    SubElement(root, "Status").text = "OK"
    root.append(body)
    return _document(root)


def _list(
    container: str, item: str, rows: Sequence[Mapping[str, str]], fields: tuple[str, ...]
) -> Element:
    found = Element(container)
    for row in rows:
        element = SubElement(found, item)
        for name in fields:
            SubElement(element, name).text = row.get(name, "")
    return found


def templates_xml(templates: Sequence[Mapping[str, str]]) -> bytes:
    """`<Templates><Template><UUID/><Name/></Template>…</Templates>`, in an OK answer."""
    return ok_xml(_list("Templates", "Template", templates, ("UUID", "Name")))


def staff_xml(staff: Sequence[Mapping[str, str]]) -> bytes:
    """`<StaffList><Staff><UUID/><Name/><Email/></Staff>…</StaffList>`, in an OK answer."""
    return ok_xml(_list("StaffList", "Staff", staff, ("UUID", "Name", "Email")))


def xml_response(body: bytes, *, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=MEDIA_TYPE)


def routes(state: SandboxState) -> list[Route]:
    def practice(request: Request) -> Tenant | None:
        tenant = state.tenant(request.state.tenant_id)
        return tenant if tenant.tenant_type == "PRACTICEMANAGER" else None

    def not_a_practice() -> Response:
        return errors.problem(403, "AuthorizationUnsuccessful")

    async def list_templates(request: Request) -> Response:
        tenant = practice(request)
        if tenant is None:
            return not_a_practice()
        return xml_response(templates_xml(tenant.templates))

    async def list_staff(request: Request) -> Response:
        tenant = practice(request)
        if tenant is None:
            return not_a_practice()
        return xml_response(staff_xml(tenant.staff))

    return [
        pages.route(f"{BASE}/template.api/list", list_templates, methods=["GET"]),
        pages.route(f"{BASE}/staff.api/list", list_staff, methods=["GET"]),
    ]
