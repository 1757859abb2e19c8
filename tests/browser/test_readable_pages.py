"""Pages name things instead of showing raw ids: the sync log and a task show the request as
client and service with its Xero job number, the task's result as readable lines, and the
connection page says who connected; each id stays on hover (a `title`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.async_api import expect

from syncd.crm.memory import MemoryCrm
from syncd.pipeline.changefeed import ChangeFeed
from tests.browser.conftest import A, Console
from tests.harness import Harness

# The session's event loop: the one browser lives there (see conftest).
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_the_sync_log_and_a_task_name_the_request(
    console: Console, h: Harness, crm: MemoryCrm
) -> None:
    """The created job's task reads "Olivia Chen — Bookkeeping (job …)" in the log and on its
    page, its result names the job and contact; no request UUID is shown, only on hover."""
    await h.connect(A, "Harbour & Co")
    now = datetime.now(UTC)
    client = crm.add_person(
        company=A, role="client", email="olivia@example.com", first_name="Olivia", last_name="Chen"
    )
    accountant = crm.add_person(
        company=A, role="accountant", email="ann@example.com", first_name="Ann", last_name="Lee"
    )
    service = crm.add_service(company=A, name="Bookkeeping", base_price=Decimal("180"))
    request = crm.add_request(company=A, client_id=client, service_id=service, now=now)
    crm.assign(company=A, request_id=request, accountant_id=accountant, now=now)
    await ChangeFeed(db=h.services.db, crm=crm, clock=h.services.clock, settle=timedelta(0)).read(A)
    await h.settle()
    number = crm.peek(company=A, request_id=request).xero_job_number
    assert number

    page = console.page
    await console.sign_in(A)
    await page.get_by_role("link", name="Sync log", exact=True).click()
    row = page.get_by_role("row").filter(has_text="create job")
    named = f"Olivia Chen — Bookkeeping (job {number})"
    await expect(row.get_by_role("cell").nth(2)).to_have_text(named)
    await expect(row.get_by_title(f"request {request}")).to_have_text(named)
    await expect(page.get_by_role("main")).not_to_contain_text(request)
    await console.visited("sync-log-named")

    await row.get_by_role("link").click()
    facts = page.locator("dl.facts")
    await expect(facts.get_by_title(f"request {request}")).to_have_text(named)
    result = page.locator("dl.side")
    await expect(result.locator("dt")).to_have_text(["job", "job number", "contact", "xero calls"])
    await expect(result.locator("dd").nth(0)).to_have_text(f"job {number}")
    await expect(result.locator("dd").nth(1)).to_have_text(number)
    await expect(result.locator("dd").nth(2)).to_have_text("Olivia Chen")
    calls = page.get_by_role("table").last.get_by_role("row")
    await expect(result.locator("dd").nth(3)).to_have_text(str(await calls.count() - 1))
    main = page.get_by_role("main")
    await expect(main).not_to_contain_text(request, use_inner_text=True)
    await page.get_by_text("Ids", exact=True).click()  # the ids, one click away
    await expect(main).to_contain_text(f"create:{request}", use_inner_text=True)
    await console.visited("task-named")


async def test_the_connection_page_says_who_connected(
    console: Console, h: Harness, crm: MemoryCrm
) -> None:
    """The admin who connected reads "by you"; another admin "by another admin of this
    practice"; the user id is the hover title either way."""
    await h.connect(A, "Harbour & Co")  # as admin-1
    page = console.page
    await console.sign_in(A, user="admin-1")
    await page.get_by_role("link", name="Connection", exact=True).click()
    who = page.get_by_title("user admin-1")
    await expect(who).to_have_text("you")
    await console.visited("connection-by-you")

    other = await console.page.context.new_page()
    try:
        await other.goto(console.handoff_url(A, user="admin-2"), referer="http://crm.test/")
        await other.goto("/admin/connection")
        await expect(other.get_by_title("user admin-1")).to_have_text(
            "another admin of this practice"
        )
    finally:
        await other.close()
