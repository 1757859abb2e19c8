"""The Practice Manager adapter at the HTTP boundary (respx): XML parsing of templates and staff,
Status ERROR on HTTP 200, malformed and hostile XML, empty lists, and what it sends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from syncd.domain.errors import NotFound, PermanentError, TransientError
from syncd.domain.ids import CompanyId
from syncd.xero.governor import RateGovernor
from syncd.xero.http import XeroHttp, build_client
from syncd.xero.practice_manager import (
    JobTemplate,
    PracticeManagerApi,
    StaffMember,
    parse_staff,
    parse_templates,
)
from tests.fakes import InstantClock, MemoryAudit, StaticTokens

API = "http://xero.test"
COMPANY = CompanyId("c-1")
TEMPLATES = "/practicemanager/3.1/template.api/list"
STAFF = "/practicemanager/3.1/staff.api/list"
T1 = "3f863a3b-87ce-4ccb-a112-98a068a3a159"
S1 = "1cd06260-aacc-4634-b605-4d916d72053d"

TEMPLATES_OK = f"""<?xml version="1.0" encoding="utf-8"?>
<Response api-method="List">
  <Status>OK</Status>
  <Templates>
    <Template><UUID>{T1}</UUID><Name>Annual Accounts</Name></Template>
    <Template><UUID>t-2</UUID><Name> Tax Return </Name></Template>
  </Templates>
</Response>""".encode()

STAFF_OK = f"""<Response>
  <Status>OK</Status>
  <StaffList>
    <Staff><UUID>{S1}</UUID><Name>Jo Bloggs</Name><Email>jo@practice.example</Email>
      <Phone>021 555 0100</Phone></Staff>
    <Staff><UUID>s-2</UUID><Name>No Mail</Name><Email /></Staff>
  </StaffList>
</Response>""".encode()

ERROR = b"""<Response><Status>ERROR</Status>
<ErrorDescription>The practice has not enabled the API</ErrorDescription></Response>"""


def xml(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"Content-Type": "text/xml"})


@pytest.fixture
async def router() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=True, assert_all_mocked=True) as mock:
        yield mock


@pytest.fixture
async def api() -> AsyncIterator[PracticeManagerApi]:
    clock = InstantClock()
    async with build_client(base_url=API) as client:
        http = XeroHttp(
            client,
            tokens=StaticTokens(),
            governor=RateGovernor(clock=clock),
            audit=MemoryAudit(),
            clock=clock,
        )
        yield PracticeManagerApi(http)


async def test_templates_are_read_from_template_api_list(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """GET template.api/list with tenant and bearer; each <Template> becomes a JobTemplate."""
    route = router.get(TEMPLATES).mock(return_value=xml(TEMPLATES_OK))
    assert await api.templates(COMPANY) == [
        JobTemplate(template_id=T1, name="Annual Accounts"),
        JobTemplate(template_id="t-2", name="Tax Return"),
    ]
    sent = route.calls.last.request
    assert sent.headers["xero-tenant-id"] == "tenant-1"
    assert sent.headers["authorization"] == "Bearer token-1"
    # XeroHttp's client asks for JSON; XPM answers XML regardless and the adapter reads that.
    assert sent.headers["accept"] == "application/json"


async def test_staff_are_read_from_staff_api_list(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """GET staff.api/list; an empty <Email /> is None and unknown elements are ignored."""
    router.get(STAFF).mock(return_value=xml(STAFF_OK))
    assert await api.staff(COMPANY) == [
        StaffMember(staff_id=S1, name="Jo Bloggs", email="jo@practice.example"),
        StaffMember(staff_id="s-2", name="No Mail", email=None),
    ]


@pytest.mark.parametrize("path", [TEMPLATES, STAFF])
async def test_status_error_on_http_200_is_permanent(
    router: respx.MockRouter, api: PracticeManagerApi, path: str
) -> None:
    """A 200 whose <Status> is ERROR raises PermanentError carrying XPM's ErrorDescription."""
    router.get(path).mock(return_value=xml(ERROR))
    call = api.templates if path == TEMPLATES else api.staff
    with pytest.raises(PermanentError, match="has not enabled the API"):
        await call(COMPANY)


async def test_malformed_xml_is_permanent(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """An answer that is not well-formed XML (here JSON) raises PermanentError."""
    router.get(STAFF).mock(return_value=httpx.Response(200, json={"Staff": []}))
    with pytest.raises(PermanentError, match="unreadable XML"):
        await api.staff(COMPANY)


@pytest.mark.parametrize(
    ("body", "items"),
    [
        (b"<Response><Status>OK</Status><Templates /></Response>", "templates"),
        (b"<Response><Status>OK</Status><StaffList>\n</StaffList></Response>", "staff"),
    ],
)
def test_empty_lists_parse_to_nothing(body: bytes, items: str) -> None:
    """An OK answer with an empty container is an empty list."""
    parse = parse_templates if items == "templates" else parse_staff
    assert parse(body) == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "unreadable XML"),
        (b"<Response><Status>OK</Status>", "unreadable XML"),
        (b"<Templates><Template /></Templates>", "not <Response>"),
        (b"<Response><Templates /></Response>", r"Status '\(missing\)'"),
        (b"<Response><Status>MAYBE</Status><Templates /></Response>", "Status 'MAYBE'"),
        (b"<Response><Status>OK</Status><StaffList /></Response>", "without <Templates>"),
        (
            b"<Response><Status>OK</Status><Templates><Template><Name>x</Name>"
            b"</Template></Templates></Response>",
            "template without a UUID",
        ),
        (b"<Response><Status>ERROR</Status></Response>", "no ErrorDescription"),
    ],
)
def test_unusable_template_answers_are_permanent(body: bytes, fragment: str) -> None:
    """Truncated XML, another root, a missing or odd Status, no container or no UUID: refused."""
    with pytest.raises(PermanentError, match=fragment):
        parse_templates(body)


def test_entity_declarations_are_refused() -> None:
    """XML with entity declarations (a billion-laughs shape) is refused by defusedxml, unread."""
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE Response [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>
<Response><Status>OK</Status><StaffList><Staff><UUID>&b;</UUID></Staff></StaffList></Response>"""
    with pytest.raises(PermanentError, match="unreadable XML"):
        parse_staff(bomb)


def test_a_staff_member_without_a_uuid_is_permanent() -> None:
    """Staff must carry a UUID (it is what syncd maps CRM people to)."""
    body = b"<Response><Status>OK</Status><StaffList><Staff><UUID> </UUID></Staff></StaffList>"
    with pytest.raises(PermanentError, match="staff member without a UUID"):
        parse_staff(body + b"</Response>")


@pytest.mark.parametrize(
    ("status", "error"), [(500, TransientError), (404, NotFound), (400, PermanentError)]
)
async def test_http_errors_are_translated_by_xerohttp(
    router: respx.MockRouter, api: PracticeManagerApi, status: int, error: type[Exception]
) -> None:
    """Non-2xx answers (XPM's XML error bodies too) go through XeroHttp's one translation."""
    router.get(TEMPLATES).mock(return_value=xml(ERROR, status))
    with pytest.raises(error):
        await api.templates(COMPANY)
