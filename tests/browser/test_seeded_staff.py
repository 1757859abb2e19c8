"""The sandbox practice's seeded staff in a real browser: reconcile reports accountants who are
not mapped, the one with an email match is healed from the report, and the staff page offers
the others' suggestions (by email, by name) for the admin to accept; a second run is clean."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.async_api import Page, expect

from syncd.crm.memory import MemoryCrm
from syncd.pipeline.changefeed import ChangeFeed
from syncd.sandbox.staff import Person, seed_staff
from syncd.store.mappings import StaffMappingRepository
from tests.browser.conftest import A, Console
from tests.harness import Harness

# The session's event loop: the one browser lives there (see conftest).
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

ACCOUNTANTS = (("Olivia", "Chen"), ("Liam", "Patel"), ("Mia", "Ngata"))


async def reconcile_from_the_page(page: Page, h: Harness) -> None:
    """Start a run with the button, let it finish, and show its report."""
    await page.get_by_role("link", name="Reconciliations", exact=True).click()
    await page.get_by_role("button", name="Reconcile now").click()
    await expect(page.get_by_role("status")).to_have_text("reconciliation started")
    await h.settle()
    await page.reload()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Reconciliation report")


async def test_staff_not_mapped_is_healed_and_suggestions_accepted(
    console: Console, h: Harness, crm: MemoryCrm
) -> None:
    """Seeded Xero users: the email match heals from the report, the rest are accepted on the
    staff page, and the next reconciliation finds no unmapped staff."""
    tenant = await h.connect(A, "Harbour & Co")
    people = {
        first: crm.add_person(
            company=A,
            role="accountant",
            email=f"{first}.{last}@example.com".lower(),
            first_name=first,
            last_name=last,
        )
        for first, last in ACCOUNTANTS
    }
    seeded = seed_staff(
        h.sandbox,
        tenant,
        [Person(name=f"{f} {la}", email=f"{f}.{la}@example.com".lower()) for f, la in ACCOUNTANTS],
    )
    by_name = {m.name: m for m in seeded}
    service = crm.add_service(company=A, name="Tax Return", base_price=Decimal("350"))
    now = datetime.now(UTC)
    for first, customer in (("Olivia", "Ava"), ("Mia", "Noah")):  # two unmapped with open work
        client = crm.add_person(
            company=A,
            role="client",
            email=f"{customer}@example.com".lower(),
            first_name=customer,
            last_name="Brown",
        )
        request = crm.add_request(
            company=A, client_id=client, service_id=service, now=now - timedelta(hours=1)
        )
        crm.assign(company=A, request_id=request, accountant_id=people[first], now=now)
    await ChangeFeed(db=h.services.db, crm=crm, clock=h.services.clock, settle=timedelta(0)).read(A)
    await h.settle()

    page = console.page
    await console.sign_in(A)
    await reconcile_from_the_page(page, h)
    section = page.get_by_role("region", name="Staff not mapped (2)")
    olivia = section.get_by_role("row").filter(has_text="Accountant: Olivia Chen")
    mia = section.get_by_role("row").filter(has_text="Accountant: Mia Ngata")
    await expect(olivia).to_contain_text("map staff by email")
    await expect(olivia).to_contain_text("olivia.chen@example.com")
    await expect(mia.get_by_role("cell").nth(3)).to_have_text("map")
    await console.visited("report-staff")

    await olivia.get_by_role("button", name="Heal now").click()
    await expect(page.get_by_role("status")).to_contain_text(": healed")
    await expect(olivia.get_by_role("cell", name="healed", exact=True)).to_be_visible()
    await console.visited("report-staff-healed")

    await page.get_by_role("link", name="Staff", exact=True).click()
    olivia_choice = page.get_by_label("Olivia Chen", exact=True)
    liam_choice = page.get_by_label("Liam Patel", exact=True)
    mia_choice = page.get_by_label("Mia Ngata", exact=True)
    await expect(olivia_choice).to_have_value(by_name["Olivia Chen"].xero_id)
    await expect(page.get_by_role("row").filter(has=olivia_choice)).not_to_contain_text("suggested")
    await expect(liam_choice).to_have_value(by_name["Liam Patel"].xero_id)
    await expect(page.get_by_role("row").filter(has=liam_choice)).to_contain_text(
        "suggested by email, not saved yet"
    )
    # Listed in Xero under a work address: the same name is all there is to go on.
    await expect(mia_choice).to_have_value(by_name["Mia Ngata"].xero_id)
    await expect(page.get_by_role("row").filter(has=mia_choice)).to_contain_text(
        "suggested by name, not saved yet"
    )
    # The Xero-only people are there to choose, suggested to no one.
    await expect(mia_choice.get_by_role("option")).to_contain_text(
        ["Margaret Ashby (margaret.ashby@harbour-co.example)"]
    )
    await console.visited("staff-seeded")

    await page.get_by_role("button", name="Save mappings").click()
    await expect(page.get_by_role("status")).to_contain_text("saved")
    await expect(page.get_by_text("not saved yet")).to_have_count(0)
    async with h.services.db.transaction() as session:
        saved = await StaffMappingRepository(session).list(company=A)
    assert {(m.crm_user_id, m.xero_staff_id) for m in saved} == {
        (people[first], by_name[f"{first} {last}"].xero_id) for first, last in ACCOUNTANTS
    }

    await reconcile_from_the_page(page, h)
    await expect(page.get_by_role("definition").filter(has_text="finished")).to_have_count(1)
    await expect(page.get_by_role("heading", name="Staff not mapped")).to_have_count(0)
    await console.visited("report-staff-clean")
