"""Signing in to the admin console in a real browser: the CRM hand-off gives an HttpOnly session
and the dashboard; a practice admin cannot see another practice's pages."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from syncd.web.auth import Role
from tests.browser.conftest import A, B, Console
from tests.harness import Harness

# The session's event loop: the one browser lives there (see conftest).
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

API = "/api/integrations/xero"


async def test_the_crm_handoff_signs_an_admin_in(console: Console, h: Harness) -> None:
    """The CRM hand-off lands on the dashboard of the connected practice, cookie HttpOnly."""
    await h.connect(A, "Harbour & Co")
    page = console.page
    await console.sign_in(A)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Xero integration")
    await expect(page.get_by_text("Connected to Harbour & Co")).to_be_visible()
    await expect(page.get_by_role("link", name="Dashboard", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    await console.visited("dashboard")
    [cookie] = [c for c in await page.context.cookies() if c["name"] == "syncd_session"]
    assert cookie["httpOnly"] is True
    assert (cookie["path"], cookie["sameSite"]) == ("/admin", "Lax")
    assert "syncd_session" not in await page.evaluate("document.cookie")


async def test_a_practice_admin_cannot_see_another_practice(console: Console, h: Harness) -> None:
    """Another practice's report is a 404 page, and asking for its company_id a 403 page."""
    await h.connect(A, "Harbour & Co")
    await h.connect(B, "Bayside Accounting")
    started = await h.syncd.post(f"{API}/reconcile", headers=h.auth(Role.PRACTICE_ADMIN, B))
    assert started.status_code == 202, started.text
    await h.settle()
    theirs = started.json()["run_id"]

    page = console.page
    await console.sign_in(A)
    await page.goto(f"/admin/reconciliations/{theirs}")
    await console.visited("report-of-b", status=404)
    await expect(page.get_by_role("heading", level=1)).to_have_text("You cannot see this page")
    await expect(page.get_by_text("no such reconciliation in your practice")).to_be_visible()
    await expect(page.get_by_text(B)).to_have_count(0)

    await page.goto(f"/admin/sync-log?company_id={B}")
    await console.visited("sync-log-of-b", status=403)
    await expect(page.get_by_role("heading", level=1)).to_have_text("You cannot see this page")
    await expect(page.get_by_text("It belongs to another practice")).to_be_visible()
    await expect(page.get_by_role("table")).to_have_count(0)

    await page.get_by_role("link", name="Back to your practice's dashboard").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Xero integration")
    await expect(page.get_by_text("Connected to Harbour & Co")).to_be_visible()
    await console.visited("dashboard")
