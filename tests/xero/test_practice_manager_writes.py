"""What syncd sends to Practice Manager: the request bodies (element order, YYYYMMDD dates,
two-decimal money, optional elements left out, user data escaped), what PracticeManagerApi puts
on the wire (method, path with quoted segments, application/xml), Status ERROR answers to writes,
and the PracticeManagerBackend rules on top (exact client match, the default due date)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from decimal import Decimal
from xml.etree.ElementTree import Element

import httpx
import pytest
import respx
from defusedxml.ElementTree import fromstring

from syncd.domain.errors import NotFound, PermanentError
from syncd.domain.ids import CompanyId
from syncd.xero.governor import RateGovernor
from syncd.xero.http import XeroHttp, build_client
from syncd.xero.jobs import UNDATED_JOB_DUE, Client, Job, JobSpec, PracticeManagerBackend
from syncd.xero.practice_manager import (
    NewJob,
    PracticeManagerApi,
    XpmClient,
    XpmJob,
    client_add_body,
    client_update_body,
    job_add_body,
    job_assign_body,
    job_state_body,
)
from tests.fakes import InstantClock, MemoryAudit, StaticTokens

API = "http://xero.test"
COMPANY = CompanyId("c-1")
BASE = "/practicemanager/3.1"
C1 = "dea92ac7-d536-402d-9447-7875020499be"
C2 = "5b2f0a51-3c1e-4f0e-8d0c-2a9f6b8e4c10"
C3 = "9a1c6e77-0b4d-4a55-b1a2-7e3d5c9f0a21"
J1 = "0d3458b8-7c1d-4e5f-a6b7-c8d9e0f1a2b3"
S1 = "1cd06260-aacc-4634-b605-4d916d72053d"
T1 = "3f863a3b-87ce-4ccb-a112-98a068a3a159"
K1 = "7e6d5c4b-3a29-4180-9f8e-7d6c5b4a3928"
REF = "syncd:5e0c8a4e-1b2c-4d3e-9f80-a1b2c3d4e5f6"

OK = b'<?xml version="1.0" encoding="utf-8"?>\n<Response><Status>OK</Status></Response>'

JOB_ANSWER = f"""<?xml version="1.0" encoding="utf-8"?>
<Response api-method="Add">
  <Status>OK</Status>
  <Job>
    <ID>J000309</ID>
    <UUID>{J1}</UUID>
    <Name>Individual Tax Return - Olivia Chen</Name>
    <Description>FY26 return</Description>
    <ClientOrderNumber>{REF}</ClientOrderNumber>
    <State>Planned</State>
    <StartDate>2026-12-03T00:00:00</StartDate>
    <DueDate>2027-01-02T00:00:00</DueDate>
    <Budget>350.00</Budget>
    <Client><UUID>{C1}</UUID><Name>Olivia Chen</Name></Client>
  </Job>
</Response>""".encode()

CLIENT_ANSWER = f"""<?xml version="1.0" encoding="utf-8"?>
<Response api-method="Add">
  <Status>OK</Status>
  <Client>
    <UUID>{C1}</UUID>
    <Name>Olivia Chen</Name>
    <Email>olivia@example.com</Email>
    <Phone>0400 000 000</Phone>
    <IsArchived>No</IsArchived>
    <IsDeleted>No</IsDeleted>
    <Contacts>
      <Contact><UUID>p-1</UUID><Name>Olivia Chen</Name><IsPrimary>Yes</IsPrimary></Contact>
    </Contacts>
  </Client>
</Response>""".encode()

OLIVIA = XpmClient(client_id=C1, name="Olivia Chen", email="olivia@example.com", archived=False)

FULL_JOB = NewJob(
    name="Individual Tax Return - Olivia Chen",
    description="FY26 return",
    client_id=C1,
    start=date(2026, 12, 3),
    due=date(2026, 12, 31),
    reference=REF,
    template_id=T1,
    category_id=K1,
    budget=Decimal("350"),
)
BARE_JOB = NewJob(
    name="Bookkeeping - Olivia Chen",
    description="Monthly",
    client_id=C1,
    start=date(2027, 1, 4),
    due=date(2027, 2, 3),
    reference=None,
    template_id=None,
    category_id=None,
    budget=None,
)

# User data that would break out of its element if it were formatted into markup.
HOSTILE = [
    "Smith & Sons <Ltd>",
    "</Name><ClientUUID>evil</ClientUUID><Name>",
    'O\'Neil "Tax" Services',
    "ends with ]]> and <![CDATA[ starts ]]>",
    "&lt; is already escaped &amp; stays literal",
    '<!DOCTYPE Job [<!ENTITY x "boom">]>&x;',
]


def xml(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"Content-Type": "text/xml"})


def error(description: str) -> bytes:
    return (
        "<Response><Status>ERROR</Status>"
        f"<ErrorDescription>{description}</ErrorDescription></Response>"
    ).encode()


def parsed(body: bytes) -> Element:
    """The body read back strictly (no DTD, no entities), as XPM would."""
    root: Element = fromstring(body, forbid_dtd=True)
    return root


def fields(element: Element) -> list[tuple[str, str]]:
    """The element's children in order: (tag, text)."""
    return [(child.tag, child.text or "") for child in element]


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


@pytest.fixture
def backend(api: PracticeManagerApi) -> PracticeManagerBackend:
    return PracticeManagerBackend(api)


def sent_xml(route: respx.Route) -> Element:
    """The last request of `route`: checked to be XML, read back."""
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/xml"
    return parsed(request.content)


# -- request bodies (pure) ----------------------------------------------------------------------


def test_job_add_body_in_documented_order_with_xpm_forms() -> None:
    """job.api/add: documented element order, YYYYMMDD dates, two-decimal Budget."""
    root = parsed(job_add_body(FULL_JOB))
    assert root.tag == "Job"
    assert root.attrib == {}
    assert fields(root) == [
        ("Name", "Individual Tax Return - Olivia Chen"),
        ("Description", "FY26 return"),
        ("ClientUUID", C1),
        ("StartDate", "20261203"),
        ("DueDate", "20261231"),
        ("ClientNumber", REF),
        ("TemplateUUID", T1),
        ("CategoryUUID", K1),
        ("Budget", "350.00"),
    ]


def test_job_add_body_leaves_out_unset_optionals() -> None:
    """Without reference, template, category or budget, only the five required elements go."""
    assert fields(parsed(job_add_body(BARE_JOB))) == [
        ("Name", "Bookkeeping - Olivia Chen"),
        ("Description", "Monthly"),
        ("ClientUUID", C1),
        ("StartDate", "20270104"),
        ("DueDate", "20270203"),
    ]


@pytest.mark.parametrize(
    ("budget", "written"),
    [
        (Decimal("350"), "350.00"),
        (Decimal("350.5"), "350.50"),
        (Decimal("1199.99"), "1199.99"),
        (Decimal("1E+3"), "1000.00"),
        (Decimal("0"), "0.00"),
    ],
)
def test_job_budget_has_two_decimals(budget: Decimal, written: str) -> None:
    """Budget is written as a plain number with exactly two decimals (never 1E+3)."""
    job = replace(BARE_JOB, budget=budget)
    assert parsed(job_add_body(job)).findtext("Budget") == written


@pytest.mark.parametrize("hostile", HOSTILE)
def test_user_data_in_a_job_is_escaped_text(hostile: str) -> None:
    """Markup in name, description or reference reads back as text; nothing is injected."""
    body = job_add_body(replace(FULL_JOB, name=hostile, description=hostile, reference=hostile))
    root = parsed(body)
    assert [tag for tag, _ in fields(root)] == [
        "Name",
        "Description",
        "ClientUUID",
        "StartDate",
        "DueDate",
        "ClientNumber",
        "TemplateUUID",
        "CategoryUUID",
        "Budget",
    ]
    assert root.findtext("Name") == hostile
    assert root.findtext("Description") == hostile
    assert root.findtext("ClientNumber") == hostile
    assert [e.text for e in root.iter("ClientUUID")] == [C1]
    assert b"<ClientUUID>evil" not in body
    assert b"]]>" not in body
    assert b"<!DOCTYPE" not in body
    assert b"<![CDATA[" not in body


def test_client_add_body_has_the_client_as_primary_contact() -> None:
    """client.api/add: Name (collapsed), Email, Phone, and the same person as primary contact."""
    root = parsed(
        client_add_body(name="  Olivia   Chen ", email="olivia@example.com", phone="0400 000 000")
    )
    assert root.tag == "Client"
    assert [child.tag for child in root] == ["Name", "Email", "Phone", "Contacts"]
    assert root.findtext("Name") == "Olivia Chen"
    assert root.findtext("Email") == "olivia@example.com"
    assert root.findtext("Phone") == "0400 000 000"
    [contact] = root.findall("Contacts/Contact")
    assert fields(contact) == [
        ("Name", "Olivia Chen"),
        ("IsPrimary", "Yes"),
        ("Email", "olivia@example.com"),
        ("Phone", "0400 000 000"),
    ]


def test_client_add_body_leaves_out_missing_email_and_phone() -> None:
    """No email or phone: neither element is sent, for the client or its contact."""
    root = parsed(client_add_body(name="Olivia Chen", email=None, phone=None))
    assert [child.tag for child in root] == ["Name", "Contacts"]
    assert fields(root.find("Contacts/Contact")) == [("Name", "Olivia Chen"), ("IsPrimary", "Yes")]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_user_data_in_a_client_is_escaped_text(hostile: str) -> None:
    """A hostile name, email or phone is text in the client and its contact; nothing injected."""
    body = client_add_body(name=hostile, email=hostile, phone=hostile)
    root = parsed(body)
    for element in (root, root.find("Contacts/Contact")):
        assert element is not None
        assert element.findtext("Name") == " ".join(hostile.split())
        assert element.findtext("Email") == hostile
        assert element.findtext("Phone") == hostile
    assert not list(root.iter("ClientUUID"))
    assert len(list(root.iter("Contact"))) == 1


def test_client_update_body() -> None:
    """<Client>: UUID, Name (collapsed), Email; without an email, no Email element."""
    root = parsed(client_update_body(client_id=C1, name="Olivia  Chen", email="o@example.com"))
    assert (root.tag, fields(root)) == (
        "Client",
        [("UUID", C1), ("Name", "Olivia Chen"), ("Email", "o@example.com")],
    )
    bare = parsed(client_update_body(client_id=C1, name='A & "B" <C>', email=None))
    assert fields(bare) == [("UUID", C1), ("Name", 'A & "B" <C>')]


def test_job_state_body() -> None:
    """<Job>: ID, UUID, State, in that order; the state is sent as given."""
    root = parsed(job_state_body(number="J000309", job_id=J1, state="In Progress"))
    assert (root.tag, fields(root)) == (
        "Job",
        [("ID", "J000309"), ("UUID", J1), ("State", "In Progress")],
    )


def test_job_assign_body_adds_a_manager() -> None:
    """<Job>: ID, UUID, then <add-manager uuid="…"/>; no remove-manager for a first manager."""
    root = parsed(job_assign_body(number="J000309", job_id=J1, manager_id=S1, replace=False))
    assert [child.tag for child in root] == ["ID", "UUID", "add-manager"]
    manager = root.find("add-manager")
    assert manager is not None
    assert manager.attrib == {"uuid": S1}
    assert not (manager.text or "").strip()
    assert not list(manager)


def test_job_assign_body_replaces_a_manager() -> None:
    """Replacing: <remove-manager/> comes first, then <add-manager uuid="…"/>."""
    root = parsed(job_assign_body(number="J000309", job_id=J1, manager_id=S1, replace=True))
    assert [child.tag for child in root] == ["ID", "UUID", "remove-manager", "add-manager"]
    remove = root.find("remove-manager")
    assert remove is not None
    assert (remove.attrib, list(remove), remove.text) == ({}, [], None)


def test_job_assign_body_quotes_the_uuid_attribute() -> None:
    """A staff id with quotes or markup stays the attribute's value, injecting nothing."""
    hostile = '"/><remove-manager/><add-manager uuid="x'
    root = parsed(job_assign_body(number="J1", job_id=J1, manager_id=hostile, replace=False))
    assert [child.tag for child in root] == ["ID", "UUID", "add-manager"]
    assert [m.get("uuid") for m in root.iter("add-manager")] == [hostile]


# -- what PracticeManagerApi sends --------------------------------------------------------------


async def test_add_job_posts_the_body_and_reads_the_new_job(
    router: respx.MockRouter, api: PracticeManagerApi, audit: MemoryAudit
) -> None:
    """POST job.api/add as application/xml with its key; the answer's <Job> is the new job."""
    route = router.post(f"{BASE}/job.api/add").mock(return_value=xml(JOB_ANSWER))
    job = await api.add_job(COMPANY, FULL_JOB, idempotency_key="create_job:r-1")
    assert job == XpmJob(
        number="J000309",
        job_id=J1,
        name="Individual Tax Return - Olivia Chen",
        state="Planned",
        client_id=C1,
        client_order_number=REF,
        due=date(2027, 1, 2),
        manager_id=None,
    )
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.url.raw_path == f"{BASE}/job.api/add".encode()
    assert request.headers["idempotency-key"].startswith("create_job:r-1:")
    assert request.headers["xero-tenant-id"] == "tenant-1"
    root = sent_xml(route)
    assert root.tag == "Job"
    assert fields(root) == fields(parsed(job_add_body(FULL_JOB)))
    [record] = audit.calls
    assert (record.method, record.status, record.error) == ("POST", 200, None)


async def test_add_client_posts_the_client_and_its_primary_contact(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """POST client.api/add with the client and its primary contact; the answer is the client."""
    route = router.post(f"{BASE}/client.api/add").mock(return_value=xml(CLIENT_ANSWER))
    created = await api.add_client(
        COMPANY,
        name="Olivia Chen",
        email="olivia@example.com",
        phone="0400 000 000",
        idempotency_key="client:crm-1",
    )
    assert created == OLIVIA
    request = route.calls.last.request
    assert (request.method, request.url.path) == ("POST", f"{BASE}/client.api/add")
    assert request.headers["idempotency-key"].startswith("client:crm-1:")
    root = sent_xml(route)
    assert root.findtext("Name") == "Olivia Chen"
    assert root.findtext("Contacts/Contact/IsPrimary") == "Yes"
    assert root.findtext("Contacts/Contact/Email") == "olivia@example.com"


async def test_update_client_puts_uuid_name_and_email(
    router: respx.MockRouter, api: PracticeManagerApi
) -> None:
    """PUT client.api/update with UUID, Name and Email; the answer is the updated client."""
    route = router.put(f"{BASE}/client.api/update").mock(return_value=xml(CLIENT_ANSWER))
    updated = await api.update_client(
        COMPANY, C1, name="Olivia Chen", email="olivia@example.com", idempotency_key="k"
    )
    assert updated == OLIVIA
    assert route.calls.last.request.method == "PUT"
    assert fields(sent_xml(route)) == [
        ("UUID", C1),
        ("Name", "Olivia Chen"),
        ("Email", "olivia@example.com"),
    ]


async def test_set_state_puts_the_state(
    router: respx.MockRouter, api: PracticeManagerApi, audit: MemoryAudit
) -> None:
    """PUT job.api/state with ID, UUID and State; a plain OK answer is success."""
    route = router.put(f"{BASE}/job.api/state").mock(return_value=xml(OK))
    result = await api.set_state(
        COMPANY, number="J000309", job_id=J1, state="In Progress", idempotency_key="state:1"
    )
    assert result is None
    assert route.calls.last.request.headers["idempotency-key"].startswith("state:1:")
    assert fields(sent_xml(route)) == [("ID", "J000309"), ("UUID", J1), ("State", "In Progress")]
    assert [(r.method, r.path, r.status, r.error) for r in audit.calls] == [
        ("PUT", f"{BASE}/job.api/state", 200, None)
    ]


@pytest.mark.parametrize(
    ("replace", "tags"),
    [
        (False, ["ID", "UUID", "add-manager"]),
        (True, ["ID", "UUID", "remove-manager", "add-manager"]),
    ],
    ids=["first-manager", "replacing"],
)
async def test_assign_manager_puts_the_assignment(
    router: respx.MockRouter, api: PracticeManagerApi, replace: bool, tags: list[str]
) -> None:
    """PUT job.api/assign: remove-manager only when replacing, then add-manager uuid=…."""
    answer = OK.replace(b"</Response>", b"<Job><ID>J000309</ID></Job></Response>")
    route = router.put(f"{BASE}/job.api/assign").mock(return_value=xml(answer))
    await api.assign_manager(
        COMPANY, number="J000309", job_id=J1, manager_id=S1, replace=replace, idempotency_key="m"
    )
    root = sent_xml(route)
    assert [child.tag for child in root] == tags
    assert root.findtext("ID") == "J000309"
    assert root.findtext("UUID") == J1
    assert [m.get("uuid") for m in root.iter("add-manager")] == [S1]


@pytest.mark.parametrize(
    "hostile",
    ["Ann & <Accountant>", "x]]>y", "</UUID><ID>J999999</ID>"],
)
async def test_user_data_sent_over_the_wire_is_escaped(
    router: respx.MockRouter, api: PracticeManagerApi, hostile: str
) -> None:
    """What actually goes on the wire reads back to the same text, with no injected element."""
    route = router.put(f"{BASE}/job.api/state").mock(return_value=xml(OK))
    await api.set_state(COMPANY, number="J000309", job_id=J1, state=hostile, idempotency_key="k")
    raw = route.calls.last.request.content
    root = parsed(raw)
    assert fields(root) == [("ID", "J000309"), ("UUID", J1), ("State", hostile)]
    assert b"<ID>J999999" not in raw


@pytest.mark.parametrize(
    ("call", "quoted"),
    [
        ("job", f"{BASE}/job.api/get/J%2F309%3Fx%3D1%23y"),
        ("client", f"{BASE}/client.api/get/J%2F309%3Fx%3D1%23y"),
        ("client_jobs", f"{BASE}/job.api/client/J%2F309%3Fx%3D1%23y"),
    ],
)
async def test_path_segments_are_quoted(
    router: respx.MockRouter, api: PracticeManagerApi, audit: MemoryAudit, call: str, quoted: str
) -> None:
    """A number or id with `/`, `?`, `=` or `#` stays one quoted path segment, no query."""
    odd = "J/309?x=1#y"
    answers = {
        "job": JOB_ANSWER,
        "client": CLIENT_ANSWER,
        "client_jobs": b"<Response><Status>OK</Status><Jobs /></Response>",
    }
    route = router.get(path__regex=r".*").mock(return_value=xml(answers[call]))
    await getattr(api, call)(COMPANY, odd)
    url = route.calls.last.request.url
    assert url.raw_path == quoted.encode()
    assert url.query == b""
    assert audit.calls[-1].path == quoted


@pytest.mark.parametrize(
    ("description", "error_type"),
    [
        ("DueDate must be on or after StartDate", PermanentError),
        ("Budget is not a number", PermanentError),
        ("Job J000309 not found", NotFound),
    ],
)
async def test_status_error_on_a_write_is_raised_and_logged(
    router: respx.MockRouter,
    api: PracticeManagerApi,
    audit: MemoryAudit,
    description: str,
    error_type: type[PermanentError],
) -> None:
    """A write refused with HTTP 200 Status ERROR raises once and is logged with status 200."""
    route = router.put(f"{BASE}/job.api/state").mock(return_value=xml(error(description)))
    with pytest.raises(PermanentError, match=description) as refused:
        await api.set_state(
            COMPANY, number="J000309", job_id=J1, state="Planned", idempotency_key="k"
        )
    assert type(refused.value) is error_type
    assert route.call_count == 1
    [record] = audit.calls
    assert (record.method, record.path, record.status) == ("PUT", f"{BASE}/job.api/state", 200)
    assert record.error is not None
    assert description in record.error


@pytest.mark.parametrize(
    ("method", "path", "send"),
    [
        ("POST", "job.api/add", "add_job"),
        ("POST", "client.api/add", "add_client"),
        ("PUT", "client.api/update", "update_client"),
        ("PUT", "job.api/assign", "assign_manager"),
    ],
)
async def test_every_write_checks_the_envelope(
    router: respx.MockRouter,
    api: PracticeManagerApi,
    audit: MemoryAudit,
    method: str,
    path: str,
    send: str,
) -> None:
    """Every write refused with Status ERROR on HTTP 200 raises PermanentError and is logged."""
    router.route(method=method, path=f"{BASE}/{path}").mock(
        return_value=xml(error("Name is required"))
    )
    calls = {
        "add_job": lambda: api.add_job(COMPANY, FULL_JOB, idempotency_key="k"),
        "add_client": lambda: api.add_client(
            COMPANY, name="x", email=None, phone=None, idempotency_key="k"
        ),
        "update_client": lambda: api.update_client(
            COMPANY, C1, name="x", email=None, idempotency_key="k"
        ),
        "assign_manager": lambda: api.assign_manager(
            COMPANY, number="J1", job_id=J1, manager_id=S1, replace=False, idempotency_key="k"
        ),
    }
    with pytest.raises(PermanentError, match="Name is required"):
        await calls[send]()
    [record] = audit.calls
    assert (record.method, record.status) == (method, 200)
    assert record.error is not None
    assert "Name is required" in record.error


# -- PracticeManagerBackend ----------------------------------------------------------------------


def clients_answer(*clients: tuple[str, str, str | None, bool]) -> bytes:
    """A client.api/search answer: (uuid, name, email, archived) per client."""
    rows = "".join(
        f"<Client><UUID>{uuid}</UUID><Name>{name}</Name>"
        f"<Email>{email or ''}</Email><Phone />"
        f"<IsArchived>{'Yes' if archived else 'No'}</IsArchived><IsDeleted>No</IsDeleted>"
        "</Client>"
        for uuid, name, email, archived in clients
    )
    return f"<Response><Status>OK</Status><Clients>{rows}</Clients></Response>".encode()


async def test_find_client_prefers_an_exact_email_match(
    router: respx.MockRouter, backend: PracticeManagerBackend
) -> None:
    """Search by email; an exact email match (any case) beats a client sharing the name."""
    route = router.get(f"{BASE}/client.api/search").mock(
        return_value=xml(
            clients_answer(
                (C1, "Olivia Chen", "other@example.com", False),
                (C2, "O. Chen", " OLIVIA@Example.COM ", False),
            )
        )
    )
    found = await backend.find_client(COMPANY, name="Olivia Chen", email="olivia@example.com")
    assert found == Client(client_id=C2, name="O. Chen", email="OLIVIA@Example.COM", archived=False)
    assert dict(route.calls.last.request.url.params) == {"query": "olivia@example.com"}


async def test_find_client_falls_back_to_an_exact_name(
    router: respx.MockRouter, backend: PracticeManagerBackend
) -> None:
    """No email matches: the one client with exactly the name (case and spacing aside) is taken."""
    router.get(f"{BASE}/client.api/search").mock(
        return_value=xml(
            clients_answer(
                (C1, "olivia  CHEN", None, False),
                (C2, "Olivia Chen Ltd", "olivia@example.com.au", False),
            )
        )
    )
    found = await backend.find_client(COMPANY, name="Olivia Chen", email="olivia@example.com")
    assert found is not None
    assert found.client_id == C1


async def test_find_client_without_email_searches_by_name(
    router: respx.MockRouter, backend: PracticeManagerBackend
) -> None:
    """A CRM client without email is searched (and matched) by name."""
    route = router.get(f"{BASE}/client.api/search").mock(
        return_value=xml(clients_answer((C1, "Olivia Chen", "olivia@example.com", False)))
    )
    found = await backend.find_client(COMPANY, name="Olivia Chen", email=None)
    assert found is not None
    assert found.client_id == C1
    assert dict(route.calls.last.request.url.params) == {"query": "Olivia Chen"}


async def test_find_client_ignores_archived_clients(
    router: respx.MockRouter, backend: PracticeManagerBackend
) -> None:
    """An archived exact match is not taken; an active one beside it is, without ambiguity."""
    route = router.get(f"{BASE}/client.api/search")
    route.mock(return_value=xml(clients_answer((C1, "Olivia Chen", "olivia@example.com", True))))
    assert (
        await backend.find_client(COMPANY, name="Olivia Chen", email="olivia@example.com") is None
    )
    route.mock(
        return_value=xml(
            clients_answer(
                (C1, "Olivia Chen", "olivia@example.com", True),
                (C2, "Olivia Chen", "olivia@example.com", False),
            )
        )
    )
    found = await backend.find_client(COMPANY, name="Olivia Chen", email="olivia@example.com")
    assert found is not None
    assert (found.client_id, found.archived) == (C2, False)


@pytest.mark.parametrize(
    "matches",
    [
        [
            (C1, "Olivia Chen", "olivia@example.com", False),
            (C2, "Liv", "Olivia@example.com", False),
        ],
        [(C1, "Olivia Chen", None, False), (C2, "OLIVIA CHEN", "x@example.com", False)],
    ],
    ids=["two-emails", "two-names"],
)
async def test_two_exact_matches_must_be_mapped_by_hand(
    router: respx.MockRouter,
    backend: PracticeManagerBackend,
    matches: list[tuple[str, str, str | None, bool]],
) -> None:
    """Two active exact matches: PermanentError asking to map the client by hand."""
    router.get(f"{BASE}/client.api/search").mock(return_value=xml(clients_answer(*matches)))
    with pytest.raises(
        PermanentError, match=r"2 Practice Manager clients match .*map the client by"
    ):
        await backend.find_client(COMPANY, name="Olivia Chen", email="olivia@example.com")


@pytest.mark.parametrize(
    "near",
    [
        (C1, "Olivia Chen Ltd", "olivia@example.com.au", False),
        (C1, "Olivia", "chen.olivia@example.com", False),
        (C1, "Dr Olivia Chen", "olivia@example.co", False),
        (C1, "", None, False),
    ],
)
async def test_near_misses_are_not_taken(
    router: respx.MockRouter,
    backend: PracticeManagerBackend,
    near: tuple[str, str, str | None, bool],
) -> None:
    """A client whose name or email only contains (or is contained in) the CRM's is no match."""
    router.get(f"{BASE}/client.api/search").mock(return_value=xml(clients_answer(near)))
    assert (
        await backend.find_client(COMPANY, name="Olivia Chen", email="olivia@example.com") is None
    )


async def test_no_search_results_is_no_client(
    router: respx.MockRouter, backend: PracticeManagerBackend
) -> None:
    """An empty <Clients /> answer is "not found" (None), not an error."""
    router.get(f"{BASE}/client.api/search").mock(return_value=xml(clients_answer()))
    assert await backend.find_client(COMPANY, name="Olivia Chen", email=None) is None


SPEC = JobSpec(
    name="Individual Tax Return - Olivia Chen",
    description="FY26 return",
    client_id=C1,
    start=date(2026, 12, 3),
    due=None,
    budget=Decimal("350"),
    template_id=T1,
    category_id=K1,
    reference=REF,
)


async def test_create_job_without_a_due_date_is_due_thirty_days_after_start(
    router: respx.MockRouter, backend: PracticeManagerBackend
) -> None:
    """No due date in the spec: DueDate is start + 30 days (20261203 → 20270102)."""
    assert UNDATED_JOB_DUE.days == 30
    route = router.post(f"{BASE}/job.api/add").mock(return_value=xml(JOB_ANSWER))
    job = await backend.create_job(COMPANY, SPEC, key="create_job:r-1")
    root = sent_xml(route)
    assert root.findtext("StartDate") == "20261203"
    assert root.findtext("DueDate") == "20270102"
    assert fields(root) == [
        ("Name", "Individual Tax Return - Olivia Chen"),
        ("Description", "FY26 return"),
        ("ClientUUID", C1),
        ("StartDate", "20261203"),
        ("DueDate", "20270102"),
        ("ClientNumber", REF),
        ("TemplateUUID", T1),
        ("CategoryUUID", K1),
        ("Budget", "350.00"),
    ]
    assert route.calls.last.request.headers["idempotency-key"].startswith("create_job:r-1:")
    assert job == Job(
        job_id=J1,
        number="J000309",
        client_id=C1,
        name="Individual Tax Return - Olivia Chen",
        state="Planned",
        due=date(2027, 1, 2),
        manager_id=None,
        reference=REF,
    )


async def test_create_job_keeps_a_given_due_date(
    router: respx.MockRouter, backend: PracticeManagerBackend
) -> None:
    """A spec with a due date is sent with exactly that date; unmapped extras are left out."""
    route = router.post(f"{BASE}/job.api/add").mock(return_value=xml(JOB_ANSWER))
    await backend.create_job(
        COMPANY,
        replace(SPEC, due=date(2026, 12, 24), template_id=None, category_id=None, budget=None),
        key="k",
    )
    root = sent_xml(route)
    assert root.findtext("DueDate") == "20261224"
    assert [child.tag for child in root] == [
        "Name",
        "Description",
        "ClientUUID",
        "StartDate",
        "DueDate",
        "ClientNumber",
    ]


async def test_job_writes_without_a_number_fail_before_any_call(
    backend: PracticeManagerBackend, audit: MemoryAudit
) -> None:
    """XPM addresses jobs by number: without one on record, nothing is sent."""
    with pytest.raises(PermanentError, match="no job number on record"):
        await backend.job(COMPANY, job_id=J1, number=None)
    with pytest.raises(PermanentError, match="no job number on record"):
        await backend.set_state(COMPANY, job_id=J1, number="", state="Planned", key="k")
    with pytest.raises(PermanentError, match="no job number on record"):
        await backend.set_manager(
            COMPANY, job_id=J1, number=None, staff_id=S1, replace=False, key="k"
        )
    assert audit.calls == []


async def test_clients_listing_leaves_out_archived_unless_asked(
    router: respx.MockRouter, backend: PracticeManagerBackend
) -> None:
    """client.api/list through the backend: archived clients only with include_archived."""
    router.get(f"{BASE}/client.api/list").mock(
        return_value=xml(
            clients_answer(
                (C1, "Olivia Chen", "olivia@example.com", False),
                (C3, "Old Client", None, True),
            )
        )
    )
    active = await backend.clients(COMPANY, include_archived=False)
    assert [c.client_id for c in active] == [C1]
    everyone = await backend.clients(COMPANY, include_archived=True)
    assert [(c.client_id, c.archived) for c in everyone] == [(C1, False), (C3, True)]
