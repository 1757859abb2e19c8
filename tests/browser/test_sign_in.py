"""Signing in to the admin console in a real browser: the CRM hand-off gives an HttpOnly session
and the dashboard (a link without the CRM's Referer asks for a click first, and works once);
sign-out is a button that ends the session server-side; a practice admin cannot see another
practice's pages."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

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


async def test_a_link_without_the_crms_referer_is_confirmed_by_a_click(
    console: Console, h: Harness
) -> None:
    """Opened with no Referer, the link shows a confirmation page (nothing signed in yet); its
    button signs in; the same link again is refused as used."""
    page = console.page
    link = console.handoff_url(A)
    await page.goto(link)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Open the Xero settings")
    await console.visited("handoff-confirmation")
    assert not [c for c in await page.context.cookies() if c["name"] == "syncd_session"]
    await page.get_by_role("button", name="Continue to the Xero settings").click()
    await expect(page).to_have_url(f"{console.base_url}/admin")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Xero integration")
    await console.visited("dashboard")

    await page.goto(link)
    await console.visited("handoff-used", status=401)
    await expect(page.get_by_text("This sign-in link has already been used")).to_be_visible()


async def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(
    console: Console, h: Harness, browser: Browser, base_url: str
) -> None:
    """Visiting /admin/logout only offers the button; the Sign out button (a POST with the CSRF
    token) ends the session, and a copy of the old cookie in another browser no longer works."""
    page = console.page
    await console.sign_in(A)
    old = [c for c in await page.context.cookies() if c["name"] == "syncd_session"]

    await page.goto("/admin/logout")
    await console.visited("sign-out-offered")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign out of the Xero settings")
    await page.goto("/admin")
    await console.visited("still-signed-in")

    await page.get_by_role("banner").get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You have signed out")).to_be_visible()
    await console.visited("signed-out")
    await page.goto("/admin")
    await console.visited("after-sign-out", status=401)

    other = await browser.new_context(base_url=base_url)
    try:
        await other.add_cookies(old)  # type: ignore[arg-type]
        tab = await other.new_page()
        answer = await tab.goto("/admin")
        assert answer is not None and answer.status == 401
    finally:
        await other.close()
