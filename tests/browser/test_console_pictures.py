"""The console's pictures in a real browser: the dashboard's charts of the practice's last day
(jobs created, statuses each way, Xero calls against the budget, queue depth) and the findings
per kind over the last reconciliation runs, drawn as inline SVG under the strict CSP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.async_api import Locator, Page, expect

from syncd.crm.memory import MemoryCrm
from syncd.pipeline.changefeed import ChangeFeed
from syncd.store.activity import hour_starts
from syncd.store.sync_log import SyncLogRepository
from syncd.web.auth import Role
from tests.browser.conftest import A, B, Console
from tests.harness import Harness

# The session's event loop: the one browser lives there (see conftest).
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

API = "/api/integrations/xero"


def chart(page: Page, title: str) -> Locator:
    return page.get_by_role("img", name=title, exact=True)


async def description(svg: Locator) -> str:
    return str(await svg.locator("desc").text_content())


async def test_the_dashboard_draws_the_practices_last_day(
    console: Console, h: Harness, crm: MemoryCrm
) -> None:
    """A job created, a status each way and a task waiting show in the dashboard's charts, the
    Xero calls as many as the sync log holds, against the hourly share of the daily budget; the
    other practice's activity is not there."""
    tenant = await h.connect(A, "Harbour & Co")
    await h.connect(B, "Bayside Accounting")
    feed = ChangeFeed(db=h.services.db, crm=crm, clock=h.services.clock, settle=timedelta(0))
    now = datetime.now(UTC)
    service = {
        company: crm.add_service(company=company, name="Tax Return", base_price=Decimal("350"))
        for company in (A, B)
    }
    requests = {}
    for company, first in ((A, "Olivia"), (B, "Bea"), (B, "Ben")):
        client = crm.add_person(
            company=company,
            role="client",
            email=f"{first}@example.com".lower(),
            first_name=first,
            last_name="Chen",
        )
        accountant = crm.add_person(
            company=company,
            role="accountant",
            email=f"acct-{first}@example.com".lower(),
            first_name="Ann",
            last_name=first,
        )
        request = crm.add_request(
            company=company, client_id=client, service_id=service[company], now=now
        )
        crm.assign(company=company, request_id=request, accountant_id=accountant, now=now)
        requests[first] = request
    for company in (A, B):
        await feed.read(company)
    await h.settle()
    job = crm.peek(company=A, request_id=requests["Olivia"]).xero_job_id
    assert job is not None
    # Xero → CRM: closed in Xero, found by the poller, completed in the CRM.
    h.sandbox.set_project_status(tenant, job, "CLOSED")
    await h.poll(A)
    assert crm.peek(company=A, request_id=requests["Olivia"]).status == "completed"
    # CRM → Xero: reopened in the CRM, the project goes back in progress.
    crm.set_status(
        company=A, request_id=requests["Olivia"], status="processing", now=datetime.now(UTC)
    )
    await feed.read(A)
    await h.settle()
    assert h.sandbox.project(tenant, job).status == "INPROGRESS"
    # One more assignment read but not yet sent: a task waiting now.
    later = crm.add_request(
        company=A,
        client_id=crm.peek(company=A, request_id=requests["Olivia"]).client_id,
        service_id=service[A],
        now=datetime.now(UTC),
    )
    crm.assign(
        company=A,
        request_id=later,
        accountant_id=str(crm.peek(company=A, request_id=requests["Olivia"]).accountant_id),
        now=datetime.now(UTC),
    )
    await feed.read(A)

    page = console.page
    await console.sign_in(A)
    await expect(page.get_by_role("heading", name="Last 24 hours")).to_be_visible()
    jobs = chart(page, "Jobs created per hour, last 24 hours")
    assert await description(jobs) == "jobs created: 1"  # B's two are not A's
    hour = f"{datetime.now(UTC):%H}:00"
    await expect(jobs.locator("rect title")).to_have_text([f"{hour} · jobs created: 1"])
    statuses = chart(page, "Statuses written each way per hour, last 24 hours")
    assert await description(statuses) == "CRM → Xero: 1; Xero → CRM: 1"

    async with h.services.db.transaction() as session:
        calls = await SyncLogRepository(session).count_since(
            company=A, since=hour_starts(datetime.now(UTC))[0]
        )
    assert calls > 0
    share = h.services.require_xero().governor.limits.per_day / 24
    budget = chart(page, "Xero calls per hour against the daily budget, last 24 hours")
    assert await description(budget) == (
        f"Xero calls: {calls}; hourly share of the daily limit: "
        + (f"{share:,.0f}" if share.is_integer() else f"{share:,.1f}")
    )
    await expect(budget.locator("line.limit title")).to_have_count(1)
    queue = chart(page, "Outbox tasks waiting at the end of each hour, last 24 hours")
    await expect(queue.locator("rect title").last).to_have_text(f"{hour} · tasks waiting: 1")
    await console.visited("dashboard-charts")


async def test_the_reconcile_pages_chart_findings_per_kind(
    console: Console, h: Harness, crm: MemoryCrm
) -> None:
    """Two runs that each found a job missing in Xero and an unmapped accountant are two stacked
    bars of those kinds, on the list and on the report, whose practice is named, not an id."""
    tenant = await h.connect(A, "Harbour & Co")
    now = datetime.now(UTC)
    client = crm.add_person(
        company=A, role="client", email="olivia@example.com", first_name="Olivia", last_name="Chen"
    )
    accountant = crm.add_person(
        company=A, role="accountant", email="ann@example.com", first_name="Ann", last_name="Lee"
    )
    service = crm.add_service(company=A, name="Tax Return", base_price=Decimal("350"))
    request = crm.add_request(company=A, client_id=client, service_id=service, now=now)
    crm.assign(company=A, request_id=request, accountant_id=accountant, now=now)
    await ChangeFeed(db=h.services.db, crm=crm, clock=h.services.clock, settle=timedelta(0)).read(A)
    await h.settle()
    job = crm.peek(company=A, request_id=request).xero_job_id
    assert job is not None
    h.sandbox.delete_project(tenant, job)
    runs = []
    for _ in range(2):
        started = await h.syncd.post(f"{API}/reconcile", headers=h.auth(Role.PRACTICE_ADMIN, A))
        assert started.status_code == 202, started.text
        await h.settle()
        runs.append(started.json()["run_id"])

    page = console.page
    await console.sign_in(A)
    await page.get_by_role("link", name="Reconciliations", exact=True).click()
    title = "Findings per kind in the last reconciliation runs"
    listed = chart(page, title)
    await expect(listed.locator("rect title")).to_have_count(4)  # 2 runs, 2 kinds each
    assert await description(listed) == "job missing in xero: 2; staff not mapped: 2"
    await console.visited("reconciliations-chart")

    await page.goto(f"/admin/reconciliations/{runs[0]}")
    practice = page.get_by_role("definition").filter(has_text="Harbour & Co")
    await expect(practice).to_have_attribute("title", f"practice {A}")
    # The first run's report shows the runs up to it: one bar.
    assert await description(chart(page, title)) == "job missing in xero: 1; staff not mapped: 1"
    await console.visited("report-chart")
