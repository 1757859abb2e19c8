"""Xero Practice Manager API v3.1 (XML), read-only: job templates and staff.

Pure parsers over XPM's `<Response><Status>…</Status>…</Response>` documents (parsed only with
defusedxml) plus `PracticeManagerApi`, which calls through XeroHttp. XPM can report a failure as
HTTP 200 with `<Status>ERROR</Status>`, so every answer's Status is checked, not only its code.
XeroHttp sends `Accept: application/json`; XPM answers XML whatever is asked, so that is fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from syncd.domain.errors import PermanentError
from syncd.domain.ids import CompanyId
from syncd.xero.http import XeroHttp

BASE = "/practicemanager/3.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobTemplate:
    template_id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffMember:
    staff_id: str
    name: str
    email: str | None


def _text(element: Element, tag: str) -> str:
    """The stripped text of the child `tag`, or "" when it is absent or empty."""
    child = element.find(tag)
    return (child.text or "").strip() if child is not None else ""


def parse_response(xml: bytes) -> Element:
    """The `<Response>` root of an XPM answer whose Status is OK.

    Raises PermanentError for malformed XML (or XML defusedxml refuses, such as entity
    declarations), another root element, and Status ERROR (with XPM's ErrorDescription).
    """
    try:
        root: Element = fromstring(xml)
    except (ParseError, DefusedXmlException) as exc:
        raise PermanentError(f"Practice Manager answered unreadable XML: {exc}") from None
    if root.tag != "Response":
        raise PermanentError(f"Practice Manager answered <{root.tag}>, not <Response>")
    status = _text(root, "Status").upper()
    if status == "ERROR":
        description = _text(root, "ErrorDescription") or "no ErrorDescription given"
        raise PermanentError(f"Practice Manager refused the call: {description}")
    if status != "OK":
        raise PermanentError(f"Practice Manager answered Status {status or '(missing)'!r}")
    return root


def _items(xml: bytes, container: str, item: str) -> list[Element]:
    """The `item` elements of the OK answer's `container` (which must be present)."""
    found = parse_response(xml).find(container)
    if found is None:
        raise PermanentError(f"Practice Manager answered OK without <{container}>")
    return found.findall(item)


def _uuid(element: Element, what: str) -> str:
    value = _text(element, "UUID")
    if not value:
        raise PermanentError(f"Practice Manager returned a {what} without a UUID")
    return value


def parse_templates(xml: bytes) -> list[JobTemplate]:
    """`template.api/list`: `<Templates><Template><UUID/><Name/></Template>…</Templates>`."""
    return [
        JobTemplate(template_id=_uuid(t, "template"), name=_text(t, "Name"))
        for t in _items(xml, "Templates", "Template")
    ]


def parse_staff(xml: bytes) -> list[StaffMember]:
    """`staff.api/list`: `<StaffList><Staff><UUID/><Name/><Email/>…</Staff>…</StaffList>`."""
    return [
        StaffMember(
            staff_id=_uuid(s, "staff member"),
            name=_text(s, "Name"),
            email=_text(s, "Email") or None,
        )
        for s in _items(xml, "StaffList", "Staff")
    ]


class PracticeManagerApi:
    def __init__(self, http: XeroHttp) -> None:
        self.http = http

    async def templates(self, company: CompanyId) -> list[JobTemplate]:
        """The practice's job templates (what a job may be created from)."""
        response = await self.http.request(company, "GET", f"{BASE}/template.api/list")
        return parse_templates(response.content)

    async def staff(self, company: CompanyId) -> list[StaffMember]:
        """The practice's staff (the people jobs are assigned to), for mapping."""
        response = await self.http.request(company, "GET", f"{BASE}/staff.api/list")
        return parse_staff(response.content)
