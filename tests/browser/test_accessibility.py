"""A keyboard and screen-reader pass over every page of the console's navigation: the skip link
comes first, the current page is marked, each page has one h1 and every form control a name."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.async_api import expect

from syncd.crm.memory import MemoryCrm
from tests.browser.conftest import A, Console
from tests.harness import Harness

# The session's event loop: the one browser lives there (see conftest).
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# Each link of the navigation and its page's h1, starting away from the dashboard (where the
# hand-off lands) so that every click loads a new URL.
NAVIGATION = {
    "Connection": "Connection",
    "Staff": "Staff",
    "Services": "Services → job templates",
    "Clients": "Client matching",
    "Settings": "Sync settings",
    "Sync log": "Sync log",
    "Reconciliations": "Reconciliation reports",
    "Dashboard": "Xero integration",
}


async def test_every_page_of_the_navigation_is_labelled(
    console: Console, h: Harness, crm: MemoryCrm
) -> None:
    """Skip link first; every nav page is marked current, has one h1 and named controls."""
    tenant = h.sandbox.add_tenant("Harbour XPM", tenant_type="PRACTICEMANAGER")
    await h.connect(A, "Harbour XPM")
    h.sandbox.add_template(tenant.tenant_id, "Tax Return")
    h.sandbox.add_staff(tenant.tenant_id, "Ann Lee", "ann@harbour.example")
    h.sandbox.add_contact(tenant.tenant_id, "Olivia Chen", email="olivia@example.com")
    crm.add_person(
        company=A, role="accountant", email="ann@harbour.example", first_name="Ann", last_name="Lee"
    )
    crm.add_person(
        company=A, role="client", email="olivia@example.com", first_name="Olivia", last_name="Chen"
    )
    crm.add_service(company=A, name="Tax Return", base_price=Decimal("350"))

    page = console.page
    await console.sign_in(A)
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()
    navigation = page.get_by_role("navigation", name="Xero integration")
    for label, heading in NAVIGATION.items():
        link = navigation.get_by_role("link", name=label, exact=True)
        href = await link.get_attribute("href")
        await link.click()
        await page.wait_for_url(f"**{href}")
        await expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        await expect(link).to_have_attribute("aria-current", "page")
        await expect(navigation.locator("[aria-current]")).to_have_count(1)
        await console.visited(label.lower().replace(" ", "-"))
