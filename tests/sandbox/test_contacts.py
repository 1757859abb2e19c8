"""The sandbox's Accounting contacts: find by email or name, create, duplicates, update, archive."""

from __future__ import annotations

import re

import httpx
import pytest

from syncd.sandbox.models import Contact
from syncd.sandbox.state import SandboxState
from tests.fakes import ManualClock
from tests.sandbox.flow import ACCOUNTING, Session

pytestmark = pytest.mark.usefixtures("session")
CONTACTS = f"{ACCOUNTING}/Contacts"


async def _find(client: httpx.AsyncClient, session: Session, **params: object) -> list[dict]:
    answer = await client.get(CONTACTS, params=params, headers=session.headers())
    assert answer.status_code == 200, answer.text
    return answer.json()["Contacts"]


@pytest.mark.parametrize(
    "where",
    [
        'EmailAddress=="jo@acme.example"',
        'EmailAddress="jo@acme.example"',
        'EmailAddress == "JO@ACME.EXAMPLE"',
        'Name=="acme ltd"',
        'Name=="Acme Ltd" AND EmailAddress=="jo@acme.example"',
        'ContactID==Guid("{id}")',
    ],
)
async def test_where_finds_by_email_or_name_case_insensitively(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState, where: str
) -> None:
    """where with == or =, any case, AND-joined clauses, Guid ids."""
    state.add_contact(session.tenant_id, "Someone Else", "else@acme.example")
    found = await _find(client, session, where=where.replace("{id}", contact.contact_id))
    assert [c["ContactID"] for c in found] == [contact.contact_id]


async def test_where_is_accent_insensitive_and_supports_or(
    client: httpx.AsyncClient, session: Session, state: SandboxState
) -> None:
    """Names compare without accents; OR joins alternatives."""
    cafe = state.add_contact(session.tenant_id, "Café Rouge")
    bar = state.add_contact(session.tenant_id, "Bar Bleu")
    found = await _find(client, session, where='Name=="Cafe Rouge" OR Name=="Bar Bleu"')
    assert {c["ContactID"] for c in found} == {cafe.contact_id, bar.contact_id}


async def test_unsupported_where_is_400(client: httpx.AsyncClient, session: Session) -> None:
    """A where clause the sandbox cannot evaluate answers 400, never a wrong result."""
    answer = await client.get(CONTACTS, params={"where": "Balance > 3"}, headers=session.headers())
    assert answer.status_code == 400


async def test_search_term_ids_and_archived(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """searchTerm matches substrings; IDs batches; archived contacts need includeArchived."""
    gone = state.add_contact(session.tenant_id, "Acme Old", "old@acme.example")
    state.archive_contact(session.tenant_id, gone.contact_id)
    assert [c["Name"] for c in await _find(client, session, searchTerm="ACME")] == ["Acme Ltd"]
    archived = await _find(client, session, searchTerm="acme", includeArchived="true")
    assert {c["Name"] for c in archived} == {"Acme Ltd", "Acme Old"}
    both = await _find(
        client, session, IDs=f"{contact.contact_id},{gone.contact_id}", includeArchived="true"
    )
    assert len(both) == 2
    status = await _find(client, session, where='ContactStatus=="ARCHIVED"')
    assert [c["ContactID"] for c in status] == [gone.contact_id]


async def test_paging_adds_pagination(
    client: httpx.AsyncClient, session: Session, state: SandboxState, clock: ManualClock
) -> None:
    """page/pageSize page the list (UpdatedDateUTC order) and add the pagination object."""
    for index in range(3):
        state.add_contact(session.tenant_id, f"Client {index}")
        clock.advance(1)
    answer = await client.get(
        CONTACTS, params={"page": 2, "pageSize": 2}, headers=session.headers()
    )
    body = answer.json()
    assert body["pagination"] == {"page": 2, "pageSize": 2, "pageCount": 2, "itemCount": 3}
    assert [c["Name"] for c in body["Contacts"]] == ["Client 2"]
    unpaged = (await client.get(CONTACTS, headers=session.headers())).json()
    assert "pagination" not in unpaged
    assert unpaged["Status"] == "OK"
    assert re.fullmatch(r"/Date\(\d+\)/", unpaged["DateTimeUTC"])


async def test_contact_shape_uses_dotnet_dates(
    client: httpx.AsyncClient, session: Session, contact: Contact
) -> None:
    """A contact answers ContactID, ContactStatus, Name, EmailAddress and /Date(…+0000)/."""
    answer = await client.get(f"{CONTACTS}/{contact.contact_id}", headers=session.headers())
    body = answer.json()["Contacts"][0]
    assert body["ContactID"] == contact.contact_id
    assert body["ContactStatus"] == "ACTIVE"
    assert body["EmailAddress"] == "jo@acme.example"
    millis = int(contact.updated_at.timestamp() * 1000)
    assert body["UpdatedDateUTC"] == f"/Date({millis}+0000)/"


async def test_unknown_contact_is_404(client: httpx.AsyncClient, session: Session) -> None:
    """GET and POST /Contacts/{unknown id} answer 404."""
    unknown = "00000000-0000-0000-0000-000000000001"
    assert (await client.get(f"{CONTACTS}/{unknown}", headers=session.headers())).status_code == 404
    update = await client.post(
        f"{CONTACTS}/{unknown}", headers=session.headers(), json={"Contacts": [{"Name": "x"}]}
    )
    assert update.status_code == 404


async def test_get_by_contact_number(
    client: httpx.AsyncClient, session: Session, state: SandboxState
) -> None:
    """GET /Contacts/{ContactNumber} finds a contact by the caller's own id."""
    numbered = state.add_contact(session.tenant_id, "Numbered", contact_number="CRM-42")
    answer = await client.get(f"{CONTACTS}/CRM-42", headers=session.headers())
    assert answer.json()["Contacts"][0]["ContactID"] == numbered.contact_id


async def test_put_creates_and_refuses_a_duplicate_name(
    client: httpx.AsyncClient, session: Session, contact: Contact
) -> None:
    """PUT creates; an active contact with the same name is a 400 ValidationException."""
    created = await client.put(
        CONTACTS,
        headers=session.headers(),
        json={"Contacts": [{"Name": "New Client", "EmailAddress": "new@client.example"}]},
    )
    assert created.status_code == 200
    body = created.json()["Contacts"][0]
    assert body["Name"] == "New Client"
    assert body["ContactStatus"] == "ACTIVE"
    duplicate = await client.put(
        CONTACTS, headers=session.headers(), json={"Contacts": [{"Name": "ACME LTD"}]}
    )
    assert duplicate.status_code == 400
    error = duplicate.json()
    assert error["Type"] == "ValidationException"
    assert error["ErrorNumber"] == 10
    message = error["Elements"][0]["ValidationErrors"][0]["Message"]
    assert "already used by another active contact" in message


async def test_put_with_summarize_errors_false_saves_the_good_ones(
    client: httpx.AsyncClient, session: Session, contact: Contact
) -> None:
    """summarizeErrors=false answers 200 with per-item status; valid items are saved."""
    answer = await client.put(
        CONTACTS,
        params={"summarizeErrors": "false"},
        headers=session.headers(),
        json={"Contacts": [{"Name": "Acme Ltd"}, {"Name": "Fresh Co"}]},
    )
    assert answer.status_code == 200
    items = answer.json()["Contacts"]
    assert [i["StatusAttributeString"] for i in items] == ["ERROR", "OK"]
    assert [c["Name"] for c in await _find(client, session, where='Name=="Fresh Co"')] == [
        "Fresh Co"
    ]


@pytest.mark.parametrize(
    "item", [{"Name": ""}, {"Name": "x" * 256}, {"Name": "Bad Mail", "EmailAddress": "nope"}, {}]
)
async def test_put_validates_fields(
    client: httpx.AsyncClient, session: Session, item: dict[str, str]
) -> None:
    """Name is required and ≤ 255 characters; EmailAddress must look like an address."""
    answer = await client.put(CONTACTS, headers=session.headers(), json={"Contacts": [item]})
    assert answer.status_code == 400
    assert answer.json()["Type"] == "ValidationException"


async def test_post_creates_or_updates(
    client: httpx.AsyncClient, session: Session, contact: Contact
) -> None:
    """POST /Contacts updates by ContactID or by name, and creates otherwise."""
    by_id = await client.post(
        CONTACTS,
        headers=session.headers(),
        json={"Contacts": [{"ContactID": contact.contact_id, "EmailAddress": "new@acme.example"}]},
    )
    assert by_id.json()["Contacts"][0]["EmailAddress"] == "new@acme.example"
    by_name = await client.post(
        CONTACTS,
        headers=session.headers(),
        json={"Contacts": [{"Name": "acme ltd", "FirstName": "Jo"}]},
    )
    assert by_name.json()["Contacts"][0]["ContactID"] == contact.contact_id
    assert by_name.json()["Contacts"][0]["FirstName"] == "Jo"
    created = await client.post(
        CONTACTS, headers=session.headers(), json={"Contacts": [{"Name": "Brand New"}]}
    )
    assert created.json()["Contacts"][0]["ContactID"] != contact.contact_id
    assert len(await _find(client, session)) == 2


async def test_post_by_id_updates_and_archives(
    client: httpx.AsyncClient, session: Session, contact: Contact, clock: ManualClock
) -> None:
    """POST /Contacts/{id} updates fields and archives with ContactStatus ARCHIVED."""
    clock.advance(10)
    url = f"{CONTACTS}/{contact.contact_id}"
    renamed = await client.post(
        url, headers=session.headers(), json={"Contacts": [{"Name": "Acme Group"}]}
    )
    assert renamed.status_code == 200
    assert renamed.json()["Contacts"][0]["Name"] == "Acme Group"
    assert (
        renamed.json()["Contacts"][0]["UpdatedDateUTC"]
        != f"/Date({int(contact.updated_at.timestamp() * 1000)}+0000)/"
    )
    archived = await client.post(
        url, headers=session.headers(), json={"Contacts": [{"ContactStatus": "ARCHIVED"}]}
    )
    assert archived.json()["Contacts"][0]["ContactStatus"] == "ARCHIVED"
    assert await _find(client, session) == []
    # The name is free again once the contact is archived.
    again = await client.put(
        CONTACTS, headers=session.headers(), json={"Contacts": [{"Name": "Acme Group"}]}
    )
    assert again.status_code == 200
    unarchive = await client.post(
        url, headers=session.headers(), json={"Contacts": [{"ContactStatus": "ACTIVE"}]}
    )
    assert unarchive.status_code == 400


async def test_if_modified_since_filters(
    client: httpx.AsyncClient,
    session: Session,
    contact: Contact,
    state: SandboxState,
    clock: ManualClock,
) -> None:
    """If-Modified-Since returns only contacts changed after the timestamp."""
    clock.advance(60)
    since = clock.now().isoformat()
    clock.advance(1)
    fresh = state.add_contact(session.tenant_id, "Fresh")
    answer = await client.get(CONTACTS, headers={**session.headers(), "If-Modified-Since": since})
    assert [c["ContactID"] for c in answer.json()["Contacts"]] == [fresh.contact_id]


async def test_json_must_be_accepted(client: httpx.AsyncClient, session: Session) -> None:
    """Without Accept: application/json the sandbox answers 406 (Xero would send XML)."""
    headers = {k: v for k, v in session.headers().items() if k != "Accept"}
    answer = await client.get(CONTACTS, headers=headers)
    assert answer.status_code == 406
    assert "Accept: application/json" in answer.json()["Message"]


async def test_bad_body_is_400(client: httpx.AsyncClient, session: Session) -> None:
    """A body without a Contacts list answers 400."""
    answer = await client.put(CONTACTS, headers=session.headers(), json={"Name": "flat"})
    assert answer.status_code == 400


@pytest.mark.parametrize(
    "item",
    [
        {"Name": 5},
        {"Name": "Typed", "EmailAddress": None},
        {"Name": "Typed", "ContactStatus": "archived"},
        {"Name": "Typed", "ContactID": "not-a-guid"},
        {"Name": "Typed", "Phones": [{"PhoneType": "CELL"}]},
        {"Name": "Typed", "Addresses": "none"},
        {"Name": "Typed", "IsCustomer": "true"},
        {"Name": "Typed", "DefaultCurrency": "aud"},
        {"Name": "Typed", "PaymentTerms": {"Bills": {"Day": "15"}}},
    ],
)
async def test_values_of_the_wrong_type_refuse_the_whole_body(
    client: httpx.AsyncClient, session: Session, state: SandboxState, item: dict[str, object]
) -> None:
    """A value the spec's types, formats or enums refuse makes the body unreadable: 400
    PostDataInvalidException naming the field, and nothing is saved (even with
    summarizeErrors=false)."""
    before = dict(state.tenant(session.tenant_id).contacts)
    for params in ({}, {"summarizeErrors": "false"}):
        answer = await client.put(
            CONTACTS, params=params, headers=session.headers(), json={"Contacts": [item]}
        )
        assert answer.status_code == 400, answer.text
        error = answer.json()
        assert (error["ErrorNumber"], error["Type"]) == (14, "PostDataInvalidException")
        assert "Contacts[0]." in error["Message"]
    assert state.tenant(session.tenant_id).contacts == before


async def test_lengths_over_the_spec_are_per_item_validation_errors(
    client: httpx.AsyncClient, session: Session
) -> None:
    """A nested value over its maxLength (a phone number of 51 characters) is a readable item
    Xero refuses: a ValidationException, or an ERROR item with summarizeErrors=false."""
    long_phone = {
        "Name": "Long Phone",
        "Phones": [{"PhoneType": "MOBILE", "PhoneNumber": "1" * 51}],
    }
    batch = {"Contacts": [long_phone, {"Name": "Short Phone"}]}
    refused = await client.put(CONTACTS, headers=session.headers(), json=batch)
    assert refused.status_code == 400
    element = refused.json()["Elements"][0]
    assert element["ValidationErrors"] == [
        {"Message": "Phones[0].PhoneNumber must not be longer than 50 characters."}
    ]
    split = await client.put(
        CONTACTS, params={"summarizeErrors": "false"}, headers=session.headers(), json=batch
    )
    assert [c["StatusAttributeString"] for c in split.json()["Contacts"]] == ["ERROR", "OK"]


async def test_read_only_fields_are_ignored(client: httpx.AsyncClient, session: Session) -> None:
    """UpdatedDateUTC, Website and Discount are read-only: sent back, they are ignored."""
    item = {"Name": "Echo Co", "UpdatedDateUTC": "yesterday", "Website": 5, "Discount": "x"}
    answer = await client.put(CONTACTS, headers=session.headers(), json={"Contacts": [item]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["Contacts"][0]["UpdatedDateUTC"].startswith("/Date(")


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"IDs": "not-a-guid"}, {}),
        ({"IDs": "{id},not-a-guid"}, {}),
        ([("IDs", "{id}"), ("IDs", "{id}")], {}),
        ({"includeArchived": "yes"}, {}),
        ({"summaryOnly": ""}, {}),
        ({"page": "x"}, {}),
        ({"pageSize": "1.5"}, {}),
        ([("where", 'Name=="a"'), ("where", 'Name=="b"')], {}),
        ({}, {"If-Modified-Since": "2020-02-06T12:17:43"}),
        ({}, {"If-Modified-Since": "Thu, 06 Feb 2020 12:17:43 GMT"}),
    ],
)
async def test_list_refuses_parameters_the_spec_refuses(
    client: httpx.AsyncClient,
    session: Session,
    contact: Contact,
    params: object,
    headers: dict[str, str],
) -> None:
    """IDs are comma-separated UUIDs given once, booleans are true or false, integers are
    integers, If-Modified-Since is an RFC 3339 date-time with a zone, a scalar comes once."""
    items = params.items() if isinstance(params, dict) else params
    query = [(k, v.replace("{id}", contact.contact_id)) for k, v in items]
    answer = await client.get(CONTACTS, params=query, headers={**session.headers(), **headers})
    assert answer.status_code == 400, answer.text
    assert answer.json()["Type"] == "QueryParseException"
