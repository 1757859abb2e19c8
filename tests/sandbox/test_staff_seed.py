"""The sandbox's practice staff: most accountants under their CRM email, one under a work
address, two Xero-only people; served as Projects users or Practice Manager staff, in Xero's
shapes, so syncd's mapping has suggestions to offer and rows to leave to the admin."""

from __future__ import annotations

import httpx
import pytest

from syncd.domain.suggestions import Candidate, SuggestionIndex
from syncd.sandbox.models import SandboxError, Tenant
from syncd.sandbox.staff import Person, plan_staff, practice_domain, seed_staff
from syncd.sandbox.state import SandboxState
from syncd.xero.practice_manager import parse_staff
from tests.sandbox.flow import PROJECTS, Session

ACCOUNTANTS = [
    Person(name="Olivia Chen", email="olivia.chen@example.com"),
    Person(name="Liam Patel", email="liam.patel@example.com"),
    Person(name="Mia Ngata", email="mia.ngata@example.com"),
]
STAFF = "/practicemanager/3.1/staff.api/list"


def test_the_plan_matches_some_accountants_by_email_and_not_all() -> None:
    """All accountants but the last keep their CRM email; the last and two others do not."""
    planned = plan_staff(ACCOUNTANTS, domain="harbour-co.example")
    assert [(p.name, p.email, crm) for p, crm in planned] == [
        ("Olivia Chen", "olivia.chen@example.com", "olivia.chen@example.com"),
        ("Liam Patel", "liam.patel@example.com", "liam.patel@example.com"),
        ("Mia Ngata", "mia.ngata@harbour-co.example", "mia.ngata@example.com"),
        ("Margaret Ashby", "margaret.ashby@harbour-co.example", None),
        ("Daniel Reyes", "daniel.reyes@harbour-co.example", None),
    ]


def test_a_single_accountant_is_matched() -> None:
    """With one accountant, that one is listed under the CRM email (some match)."""
    [(person, crm), *others] = plan_staff(ACCOUNTANTS[:1], domain="x.example")
    assert person.email == crm == "olivia.chen@example.com"
    assert [c for _, c in others] == [None, None]


def test_an_accountant_without_an_email_is_refused() -> None:
    """Bad input is a clear error, and nothing is listed."""
    with pytest.raises(SandboxError, match="needs a name and an email"):
        plan_staff([Person(name="Ann", email="no address")], domain="x.example")


def test_the_practice_domain_comes_from_the_organisation_name() -> None:
    """Harbour & Co Accountants (Projects) → harbour-co-accountants.example."""
    assert (
        practice_domain("Harbour & Co Accountants (Projects)") == "harbour-co-accountants.example"
    )
    assert practice_domain("!!!") == "practice.example"


async def test_projects_users_list_the_seeded_people(
    client: httpx.AsyncClient, session: Session, state: SandboxState, tenant: Tenant
) -> None:
    """On a Projects organisation they are users, in ProjectsUsers' shape (userId, name, email),
    and email suggestions find exactly the accountants listed under their CRM email."""
    seeded = seed_staff(state, tenant.tenant_id, ACCOUNTANTS)
    answer = await client.get(
        f"{PROJECTS}/ProjectsUsers", params={"pageSize": 50}, headers=session.headers()
    )
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [set(item) for item in items] == [{"userId", "name", "email"}] * 5
    assert [(i["userId"], i["name"], i["email"]) for i in items] == [
        (m.xero_id, m.name, m.email) for m in seeded
    ]
    index = SuggestionIndex(
        Candidate(xero_id=i["userId"], name=i["name"], email=i["email"]) for i in items
    )
    by_email = {
        p.email
        for p in ACCOUNTANTS
        if (s := index.suggest(name=p.name, email=p.email)) and s.reason == "email"
    }
    assert by_email == {"olivia.chen@example.com", "liam.patel@example.com"}
    assert [m.matches_crm for m in seeded] == [True, True, False, False, False]


async def test_practice_manager_staff_list_the_seeded_people(
    client: httpx.AsyncClient, state: SandboxState, practice: Tenant, xpm: Session
) -> None:
    """On a Practice Manager practice they are staff, read by syncd's own staff.api parser."""
    seeded = seed_staff(state, practice.tenant_id, ACCOUNTANTS)
    answer = await client.get(STAFF, headers=xpm.headers(practice.tenant_id))
    assert answer.status_code == 200
    listed = parse_staff(answer.content)
    assert [(s.staff_id, s.name, s.email) for s in listed] == [
        (m.xero_id, m.name, m.email) for m in seeded
    ]
    assert {m.email for m in seeded if m.matches_crm} == {
        "olivia.chen@example.com",
        "liam.patel@example.com",
    }
