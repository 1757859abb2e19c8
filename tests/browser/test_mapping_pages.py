"""The mapping pages in a real browser: a suggested Xero user is preselected and marked as not
saved until the admin saves it; a service is mapped to a Practice Manager job template with the
keyboard alone."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.async_api import expect

from syncd.crm.memory import MemoryCrm
from syncd.store.mappings import ServiceMappingRepository, StaffMappingRepository
from syncd.web.auth import Role
from tests.browser.conftest import A, Console
from tests.harness import Harness

# The session's event loop: the one browser lives there (see conftest).
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

API = "/api/integrations/xero"


async def test_a_suggested_staff_member_is_saved(
    console: Console, h: Harness, crm: MemoryCrm
) -> None:
    """A suggested Xero user, preselected and marked unsaved, is mapped by "Save mappings"."""
    tenant = await h.connect(A, "Harbour & Co")
    ann = crm.add_person(
        company=A, role="accountant", email="ann@harbour.example", first_name="Ann", last_name="Lee"
    )
    cat = crm.add_person(
        company=A, role="accountant", email="cat@home.example", first_name="Cat", last_name="Ng"
    )
    user = h.sandbox.add_user(tenant, "Annabel Lee", "ANN@harbour.example")
    h.sandbox.add_user(tenant, "Bob Stone", "bob@harbour.example")

    page = console.page
    await console.sign_in(A)
    await page.get_by_role("link", name="Staff", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Staff")
    ann_choice = page.get_by_label("Ann Lee", exact=True)
    ann_row = page.get_by_role("row").filter(has=ann_choice)
    cat_choice = page.get_by_label("Cat Ng", exact=True)
    await expect(ann_choice).to_have_value(user["userId"])
    await expect(ann_row).to_contain_text("suggested by email, not saved yet")
    await expect(cat_choice).to_have_value("")
    await expect(page.get_by_text("not saved yet")).to_have_count(1)
    await console.visited("staff-suggested")

    await page.get_by_role("button", name="Save mappings").click()
    # A plain submit sends every row (the unchanged one too); a script may send only changes.
    await expect(page.get_by_role("status")).to_have_text(re.compile(r"^saved [12] row\(s\)$"))
    await expect(ann_choice).to_have_value(user["userId"])
    await expect(ann_row).not_to_contain_text("suggested")
    await expect(cat_choice).to_have_value("")
    await console.visited("staff-saved")

    async with h.services.db.transaction() as session:
        saved = await StaffMappingRepository(session).list(company=A)
    assert [(m.crm_user_id, m.xero_staff_id) for m in saved] == [(ann, user["userId"])]
    listed = await h.syncd.get(f"{API}/mappings/staff", headers=h.auth(Role.PRACTICE_ADMIN, A))
    items = {i["accountant_id"]: i for i in listed.json()["items"]}
    assert items[ann]["mapped"]["id"] == user["userId"] and items[ann]["suggestion"] is None
    assert items[cat]["mapped"] is None


async def test_a_service_is_mapped_to_a_template_with_the_keyboard(
    console: Console, h: Harness, crm: MemoryCrm
) -> None:
    """A service is mapped to a Practice Manager job template with the keyboard alone."""
    tenant = h.sandbox.add_tenant("Harbour XPM", tenant_type="PRACTICEMANAGER")
    await h.connect(A, "Harbour XPM")
    h.sandbox.add_template(tenant.tenant_id, "Tax Return")
    template = h.sandbox.add_template(tenant.tenant_id, "Monthly Bookkeeping")
    h.sandbox.add_staff(tenant.tenant_id, "Ann Lee", "ann@harbour.example")
    service = crm.add_service(company=A, name="Bookkeeping", base_price=Decimal("120"))

    page = console.page
    await console.sign_in(A)
    await page.get_by_role("link", name="Services", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Services → job templates")
    choice = page.get_by_label("Bookkeeping", exact=True)
    await expect(choice).to_have_value("")
    await expect(choice.get_by_role("option")).to_have_text(
        ["— not mapped —", "Tax Return", "Monthly Bookkeeping"]
    )
    await console.visited("services")

    await choice.focus()
    await page.keyboard.press("m")  # type-ahead: the first option starting with "M"
    await expect(choice).to_have_value(template["UUID"])
    await page.keyboard.press("Tab")
    save = page.get_by_role("button", name="Save mappings")
    await expect(save).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_have_text("saved 1 row(s)")
    await expect(choice).to_have_value(template["UUID"])
    await console.visited("services-saved")

    async with h.services.db.transaction() as session:
        saved = await ServiceMappingRepository(session).list(company=A)
    assert [(m.crm_service_id, m.xero_template_id) for m in saved] == [(service, template["UUID"])]
