"""The sandbox's Practice Manager clients (client.api search, list, get, add, update) and
categories in Xero's XML shapes, their refusals as HTTP 200 Status ERROR, and request bodies
read only as defusedxml allows (no DTDs or entities, well-formed, the documented root) on every
write."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from syncd.sandbox.models import ClientContact, PracticeClient, Tenant
from syncd.sandbox.state import SandboxState
from tests.sandbox.flow import Session
from tests.sandbox.xpm import XML, XPM, assign, body, job_add, ok, one, refused, tags

ADD = f"{XPM}/client.api/add"
UPDATE = f"{XPM}/client.api/update"
SEARCH = f"{XPM}/client.api/search"
LIST = f"{XPM}/client.api/list"
CLIENT_TAGS = ["UUID", "Name", "Email", "Phone", "IsArchived", "IsDeleted", "Contacts"]


@pytest.fixture
def olivia(state: SandboxState, practice: Tenant) -> PracticeClient:
    return state.add_client(practice.tenant_id, "Olivia Chen", "olivia@example.com")


def _headers(xpm: Session, practice: Tenant) -> dict[str, str]:
    return {**xpm.headers(practice.tenant_id), **XML}


async def test_add_answers_the_client_with_its_primary_contact(
    client: httpx.AsyncClient, state: SandboxState, practice: Tenant, xpm: Session
) -> None:
    """client.api/add answers `<Client>` with UUID, Name, Email, Phone, IsArchived No,
    IsDeleted No and `<Contacts><Contact><UUID/><Name/><Email/><IsPrimary/>`, in that order."""
    sent = (
        b"<Client><Name>Olivia Chen</Name><Email>olivia@example.com</Email>"
        b"<Phone>0400 000 000</Phone><Contacts><Contact><Name>Olivia Chen</Name>"
        b"<IsPrimary>Yes</IsPrimary><Email>olivia@example.com</Email>"
        b"<Phone>0400 000 000</Phone></Contact></Contacts></Client>"
    )
    added = one(ok(await client.post(ADD, headers=_headers(xpm, practice), content=sent)), "Client")
    assert tags(added) == CLIENT_TAGS
    assert [added.findtext(t) for t in CLIENT_TAGS[1:6]] == [
        "Olivia Chen",
        "olivia@example.com",
        "0400 000 000",
        "No",
        "No",
    ]
    contact = one(added, "Contacts/Contact")
    assert tags(contact) == ["UUID", "Name", "Email", "IsPrimary"]
    assert [contact.findtext(t) for t in ("Name", "Email", "IsPrimary")] == [
        "Olivia Chen",
        "olivia@example.com",
        "Yes",
    ]
    stored = practice.clients[added.findtext("UUID") or ""]
    assert stored.contacts[0].contact_uuid == contact.findtext("UUID")
    assert stored.contacts[0].phone == "0400 000 000"
    bare = await client.post(
        ADD, headers=_headers(xpm, practice), content=body("Client", {"Name": "Acme"})
    )
    bare_client = one(ok(bare), "Client")
    assert tags(bare_client) == CLIENT_TAGS
    assert (bare_client.findtext("Email"), tags(bare_client.find("Contacts"))) == ("", [])
    assert len(practice.clients) == 2


@pytest.mark.parametrize("name", [None, "", "   "])
async def test_add_needs_a_name(
    client: httpx.AsyncClient, practice: Tenant, xpm: Session, name: str | None
) -> None:
    """A client without a Name (absent, empty or blank) is Status ERROR and nothing is added."""
    sent = body("Client", {"Name": name, "Email": "jo@example.com"})
    answer = await client.post(ADD, headers=_headers(xpm, practice), content=sent)
    assert refused(answer) == "Client Name is required"
    assert practice.clients == {}


async def test_update_renames_and_changes_the_email(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """client.api/update sets the Name and, when sent, the Email (an empty one clears it); it
    answers the client, found by UUID in any letter case."""
    sent = body("Client", {"UUID": olivia.uuid.upper(), "Name": "Olivia Chen-Li"})
    renamed = one(
        ok(await client.put(UPDATE, headers=_headers(xpm, practice), content=sent)), "Client"
    )
    assert tags(renamed) == CLIENT_TAGS
    assert (renamed.findtext("Name"), renamed.findtext("Email")) == (
        "Olivia Chen-Li",
        "olivia@example.com",
    )
    sent = body("Client", {"UUID": olivia.uuid, "Name": "Olivia Chen-Li", "Email": "o@x.example"})
    ok(await client.put(UPDATE, headers=_headers(xpm, practice), content=sent))
    assert state.client(practice.tenant_id, olivia.uuid).email == "o@x.example"
    sent = b"<Client><UUID>%s</UUID><Name>Olivia</Name><Email /></Client>" % olivia.uuid.encode()
    ok(await client.put(UPDATE, headers=_headers(xpm, practice), content=sent))
    assert state.client(practice.tenant_id, olivia.uuid).email is None


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"UUID": "0d3458b8-0000-4000-8000-000000000000", "Name": "X"}, "Client 0d3458b8-"),
        ({"UUID": "{uuid}"}, "Client Name is required"),
        ({"UUID": "{uuid}", "Name": " "}, "Client Name is required"),
        ({"Name": "X"}, "Client UUID is required"),
    ],
)
async def test_update_refuses_unknown_clients_and_a_missing_name(
    client: httpx.AsyncClient,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
    fields: dict[str, str],
    says: str,
) -> None:
    """An unknown UUID (`Client {uuid} not found`), a missing UUID or Name: Status ERROR and the
    client is unchanged."""
    sent = body("Client", {k: v.format(uuid=olivia.uuid) for k, v in fields.items()})
    answer = await client.put(UPDATE, headers=_headers(xpm, practice), content=sent)
    description = refused(answer)
    assert description.startswith(says)
    if says.startswith("Client 0d"):
        assert description.endswith(" not found")
    assert practice.clients[olivia.uuid] == olivia


async def test_update_of_a_deleted_client_is_not_found(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """A deleted client cannot be updated: `Client {uuid} not found`."""
    state.delete_client(practice.tenant_id, olivia.uuid)
    sent = body("Client", {"UUID": olivia.uuid, "Name": "Back"})
    answer = await client.put(UPDATE, headers=_headers(xpm, practice), content=sent)
    assert refused(answer) == f"Client {olivia.uuid} not found"
    assert practice.clients[olivia.uuid].name == "Olivia Chen"


async def test_search_matches_name_email_and_contact_emails_in_any_case(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """client.api/search?query= is a case-insensitive substring of Name, Email or a contact's
    email; archived clients are found (IsArchived Yes), deleted ones never."""
    partner = ClientContact(contact_uuid="", name="Sam Chen", email="sam@partner.example")
    family = state.add_client(practice.tenant_id, "Chen Family Trust", contacts=[partner])
    archived = state.add_client(practice.tenant_id, "Old Chen Pty Ltd")
    state.archive_client(practice.tenant_id, archived.uuid)
    gone = state.add_client(practice.tenant_id, "Deleted Chen")
    state.delete_client(practice.tenant_id, gone.uuid)
    state.add_client(practice.tenant_id, "Acme Ltd", "accounts@acme.example")
    headers = xpm.headers(practice.tenant_id)

    async def search(query: str) -> list[tuple[str | None, str | None]]:
        found = ok(await client.get(SEARCH, headers=headers, params={"query": query}))
        assert tags(found) == ["Status", "Clients"]
        return [(c.findtext("Name"), c.findtext("IsArchived")) for c in found.iter("Client")]

    assert await search("CHEN") == [
        ("Olivia Chen", "No"),
        ("Chen Family Trust", "No"),
        ("Old Chen Pty Ltd", "Yes"),
    ]
    assert await search("Olivia@Example.com") == [("Olivia Chen", "No")]
    assert await search("partner.example") == [("Chen Family Trust", "No")]
    assert await search("nobody") == []
    family_xml = ok(await client.get(SEARCH, headers=headers, params={"query": "sam@"}))
    assert family_xml.findtext("Clients/Client/UUID") == family.uuid


@pytest.mark.parametrize("params", [{}, {"query": ""}, {"query": "  "}])
async def test_search_needs_a_query(
    client: httpx.AsyncClient, practice: Tenant, xpm: Session, params: dict[str, str]
) -> None:
    """A missing or empty query is Status ERROR, not a list of every client."""
    answer = await client.get(SEARCH, headers=xpm.headers(practice.tenant_id), params=params)
    assert refused(answer) == "The query parameter is required"


async def test_list_answers_every_client_but_deleted_ones(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """client.api/list answers `<Clients>` with archived clients flagged and deleted ones left
    out; an empty practice answers `<Clients />`."""
    other = state.add_client(practice.tenant_id, "Gone Ltd")
    state.archive_client(practice.tenant_id, olivia.uuid)
    state.delete_client(practice.tenant_id, other.uuid)
    listed = ok(await client.get(LIST, headers=xpm.headers(practice.tenant_id)))
    [only] = list(listed.iter("Client"))
    assert tags(only) == CLIENT_TAGS
    assert (only.findtext("UUID"), only.findtext("IsArchived"), only.findtext("IsDeleted")) == (
        olivia.uuid,
        "Yes",
        "No",
    )
    state.delete_client(practice.tenant_id, olivia.uuid)
    empty = ok(await client.get(LIST, headers=xpm.headers(practice.tenant_id)))
    assert tags(empty.find("Clients")) == []


async def test_get_answers_one_client_and_refuses_unknown_or_deleted_ones(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """client.api/get/{uuid} answers the `<Client>`; an unknown or deleted one is HTTP 200
    Status ERROR "Client {uuid} not found"."""
    got = one(
        ok(
            await client.get(f"{XPM}/client.api/get/{olivia.uuid}", headers=_headers(xpm, practice))
        ),
        "Client",
    )
    assert (tags(got), got.findtext("Name")) == (CLIENT_TAGS, "Olivia Chen")
    state.delete_client(practice.tenant_id, olivia.uuid)
    gone = await client.get(f"{XPM}/client.api/get/{olivia.uuid}", headers=_headers(xpm, practice))
    assert refused(gone) == f"Client {olivia.uuid} not found"


async def test_categories_list_answers_xpm_xml(
    client: httpx.AsyncClient, state: SandboxState, practice: Tenant, xpm: Session
) -> None:
    """category.api/list answers `<Categories><Category><UUID/><Name/>…`."""
    tax = state.add_category(practice.tenant_id, "Tax")
    state.add_category(practice.tenant_id, "Bookkeeping")
    listed = ok(
        await client.get(f"{XPM}/category.api/list", headers=xpm.headers(practice.tenant_id))
    )
    assert tags(listed) == ["Status", "Categories"]
    assert [tags(c) for c in listed.iter("Category")] == [["UUID", "Name"]] * 2
    assert [c.findtext("Name") for c in listed.iter("Category")] == ["Tax", "Bookkeeping"]
    assert listed.findtext("Categories/Category/UUID") == tax.uuid


# -- request bodies ---------------------------------------------------------------------------

WRITES = ["client.api/add", "client.api/update", "job.api/add", "job.api/state", "job.api/assign"]
MALFORMED = {
    "dtd": ("<!DOCTYPE {root}>{valid}", "The request must not contain a DTD"),
    "entity": (
        '<!DOCTYPE {root} [<!ENTITY x "Acme">]>{valid}',
        "The request must not contain a DTD",
    ),
    "external": (
        '<!DOCTYPE {root} [<!ENTITY x SYSTEM "file:///etc/passwd">]>{valid}',
        "The request must not contain a DTD",
    ),
    "laughs": (
        '<!DOCTYPE {root} [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;">]>{valid}',
        "The request must not contain a DTD",
    ),
    "truncated": ("{cut}", "The request is not well-formed XML"),
    "empty": ("", "The request is not well-formed XML"),
    "not xml": ('{{"Name": "Acme"}}', "The request is not well-formed XML"),
    "wrong root": ("{renamed}", "The request must be a <{root}> element, not <{lower}>"),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
@pytest.mark.parametrize("path", WRITES)
async def test_bodies_xpm_would_not_read_are_refused_and_change_nothing(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
    path: str,
    kind: str,
) -> None:
    """DTDs and entity declarations (defusedxml), bodies that are not well-formed, and a root
    other than the documented one (names are case-sensitive) are Status ERROR on every write,
    and nothing changes; the same body without the fault then works."""
    ann = state.add_staff(practice.tenant_id, "Ann Accountant", "ann@practice.example")
    job = state.add_job(
        practice.tenant_id,
        client_uuid=olivia.uuid,
        name="Tax Return",
        description="FY26",
        start_date=date(2026, 12, 3),
        due_date=date(2026, 12, 31),
    )
    valid, root = {
        "client.api/add": (body("Client", {"Name": "Acme"}), "Client"),
        "client.api/update": (body("Client", {"UUID": olivia.uuid, "Name": "Acme"}), "Client"),
        "job.api/add": (job_add(ClientUUID=olivia.uuid), "Job"),
        "job.api/state": (
            body("Job", {"ID": job.number, "UUID": job.uuid, "State": "Completed"}),
            "Job",
        ),
        "job.api/assign": (assign(job.number, job.uuid, ("add-manager", ann["UUID"])), "Job"),
    }[path]
    text = valid.decode()
    inner = text[len(root) + 2 : -(len(root) + 3)]
    template, says = MALFORMED[kind]
    sent = template.format(
        root=root,
        valid=text,
        cut=text[:-3],
        renamed=f"<{root.lower()}>{inner}</{root.lower()}>",
    )
    method = "POST" if path.endswith("/add") else "PUT"
    url = f"{XPM}/{path}"
    before = (dict(practice.clients), dict(practice.jobs))
    answer = await client.request(method, url, headers=_headers(xpm, practice), content=sent)
    assert refused(answer).startswith(says.format(root=root, lower=root.lower()))
    assert (practice.clients, practice.jobs) == before
    ok(await client.request(method, url, headers=_headers(xpm, practice), content=valid))
    assert (practice.clients, practice.jobs) != before
