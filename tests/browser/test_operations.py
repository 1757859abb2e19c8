"""The sync log and reconciliation pages in a real browser: a task that failed until dead is
retried from the log and its Xero call trail read; a drift found by a reconcile run started from
the page is healed from the report, whose CSV downloads."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.async_api import expect
from sqlalchemy import update

from syncd.crm.memory import MemoryCrm
from syncd.pipeline.changefeed import ChangeFeed
from syncd.store.mappings import StaffMappingRepository
from syncd.store.models import OutboxTask
from syncd.web.auth import Role
from tests.browser.conftest import A, Console
from tests.harness import Harness

# The session's event loop: the one browser lives there (see conftest).
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

API = "/api/integrations/xero"


@dataclass
class World:
    tenant: str
    request: str


async def world(h: Harness, crm: MemoryCrm) -> World:
    """Practice A on a Projects organisation, its accountant mapped, one request assigned."""
    tenant = await h.connect(A, "Harbour & Co")
    accountant = crm.add_person(
        company=A, role="accountant", email="ann@harbour.example", first_name="Ann", last_name="Lee"
    )
    user = h.sandbox.add_user(tenant, "Ann Lee", "ann@harbour.example")
    async with h.services.db.transaction() as session:
        await StaffMappingRepository(session).save(
            company=A,
            user_id=accountant,
            staff_id=user["userId"],
            staff_name="Ann Lee",
            now=datetime.now(UTC),
        )
    client = crm.add_person(
        company=A, role="client", email="olivia@example.com", first_name="Olivia", last_name="Chen"
    )
    service = crm.add_service(company=A, name="Tax Return", base_price=Decimal("350"))
    request = crm.add_request(
        company=A, client_id=client, service_id=service, now=datetime.now(UTC) - timedelta(hours=1)
    )
    crm.assign(company=A, request_id=request, accountant_id=accountant, now=datetime.now(UTC))
    feed = ChangeFeed(db=h.services.db, crm=crm, clock=h.services.clock, settle=timedelta(0))
    await feed.read(A)
    return World(tenant, request)


async def make_due(h: Harness) -> None:
    """Skip the backoff: every pending task may run now."""
    async with h.services.db.transaction() as session:
        await session.execute(
            update(OutboxTask)
            .where(OutboxTask.state == "pending")
            .values(run_after=datetime.now(UTC) - timedelta(seconds=1))
        )


async def test_a_dead_task_is_retried_from_the_sync_log(
    console: Console, h: Harness, crm: MemoryCrm
) -> None:
    """A dead task retried from the sync log is pending, shows its Xero calls, then runs."""
    await world(h, crm)
    # Every Contacts call fails with a transient 503: the job creation dies after 3 attempts.
    h.sandbox.faults.fail_next = 100
    h.sandbox.faults.fail_status = 503
    h.sandbox.faults.path_prefix = "/api.xro/2.0/Contacts"
    for _ in range(4):
        await h.settle()
        await make_due(h)
    h.sandbox.faults.fail_next = 0
    h.sandbox.faults.path_prefix = None
    headers = h.auth(Role.PRACTICE_ADMIN, A)
    [dead] = (await h.syncd.get(f"{API}/sync-logs?state=dead", headers=headers)).json()["items"]
    task = dead["id"]

    page = console.page
    await console.sign_in(A)
    await page.get_by_role("link", name="1 dead").click()
    await expect(page).to_have_url(f"{console.base_url}/admin/sync-log?state=dead")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sync log")
    await expect(page.get_by_label("Show")).to_have_value("dead")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=f"#{task}", exact=True))
    await expect(row.get_by_role("cell", name="dead", exact=True)).to_be_visible()
    await console.visited("sync-log-dead")

    await row.get_by_role("button", name=f"Retry task {task}", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text(f"task {task} will run again")
    # Back on the dead filter, which the task has left; unfiltered it shows as pending.
    await expect(page.get_by_label("Show")).to_have_value("dead")
    await expect(page.get_by_role("button", name=f"Retry task {task}", exact=True)).to_have_count(0)
    await console.visited("sync-log-retried")
    await page.get_by_label("Show").select_option("")
    await page.get_by_role("button", name="Filter").click()
    await expect(row.get_by_role("cell", name="pending", exact=True)).to_be_visible()

    await page.get_by_role("link", name=f"#{task}", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Task #{task}: create job")
    await expect(page.get_by_text("pending after 0 attempt(s)")).to_be_visible()
    calls = page.get_by_role("table").get_by_role("row").filter(has_text="Contacts")
    await expect(calls).to_have_count(3)
    for n in range(3):
        await expect(calls.nth(n).get_by_role("cell", name="503", exact=True)).to_be_visible()
    await console.visited("task")

    await h.settle()
    await page.reload()
    await expect(page.get_by_text("done after 1 attempt(s)")).to_be_visible()
    await console.visited("task-done")
    request = crm.peek(company=A, request_id=dead["request_id"])
    assert request.xero_job_id is not None


async def test_a_finding_is_healed_from_its_report(
    console: Console, h: Harness, crm: MemoryCrm
) -> None:
    """A finding of a run started from the page is healed from its report; its CSV downloads."""
    w = await world(h, crm)
    await h.settle()
    job = crm.peek(company=A, request_id=w.request).xero_job_id
    assert job is not None
    h.sandbox.delete_project(w.tenant, job)

    page = console.page
    await console.sign_in(A)
    await page.get_by_role("link", name="Reconciliations", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Reconciliation reports")
    await expect(page.get_by_label("Dry run (propose only)")).not_to_be_checked()
    await console.visited("reconciliations-empty")
    await page.get_by_role("button", name="Reconcile now").click()
    await page.wait_for_url("**/admin/reconciliations/*")
    await console.visited("report-queued")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Reconciliation report")
    await expect(page.get_by_role("status")).to_have_text("reconciliation started")

    await h.settle()
    await page.get_by_role("link", name="Reconciliations", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Reconciliation reports")
    await expect(page.get_by_role("row")).to_have_count(2)  # the header and the one run
    await console.visited("reconciliations")
    await page.get_by_role("row").nth(1).get_by_role("link").click()
    section = page.get_by_role("region", name="Job missing in xero (1)")
    # The request by its client and service (its id is the hover title), not a UUID.
    finding = section.get_by_role("row").filter(has_text="Request: Olivia Chen — Tax Return")
    await expect(finding.get_by_role("cell", name="open", exact=True)).to_be_visible()
    await expect(finding.get_by_title(w.request).first).to_be_visible()
    await expect(finding).not_to_contain_text(w.request)
    await console.visited("report")

    await finding.get_by_role("button", name="Heal now").click()
    await expect(page.get_by_role("status")).to_contain_text(": healed")
    await expect(finding.get_by_role("cell", name="healed", exact=True)).to_be_visible()
    await expect(finding.get_by_role("button")).to_have_count(0)
    await console.visited("report-healed")
    await h.settle()
    assert crm.peek(company=A, request_id=w.request).xero_job_id in (
        h.sandbox.tenant(w.tenant).projects
    )

    link = page.get_by_role("link", name="Download CSV")
    href = await link.get_attribute("href")
    assert href is not None
    answer = await page.request.get(href)
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await answer.text())))
    assert [(r["kind"], r["request_id"], r["state"]) for r in rows] == [
        ("job_missing_in_xero", w.request, "healed")
    ]
    async with page.expect_download() as started:
        await link.click()
    download = await started.value
    assert download.suggested_filename.startswith("reconciliation-")
    assert download.suggested_filename.endswith(".csv")
    assert await download.failure() is None


async def test_a_run_is_listed_with_a_downloadable_csv(
    console: Console, h: Harness, crm: MemoryCrm
) -> None:
    """A finished run is listed with its findings, and its CSV downloads with the session."""
    w = await world(h, crm)
    await h.settle()
    job = crm.peek(company=A, request_id=w.request).xero_job_id
    assert job is not None
    h.sandbox.delete_project(w.tenant, job)
    started = await h.syncd.post(f"{API}/reconcile", headers=h.auth(Role.PRACTICE_ADMIN, A))
    assert started.status_code == 202, started.text
    await h.settle()
    run = started.json()["run_id"]

    page = console.page
    await console.sign_in(A)
    await page.get_by_role("link", name="Reconciliations", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Reconciliation reports")
    rows = page.get_by_role("row")
    await expect(rows).to_have_count(2)  # the header and the one run
    listed = rows.nth(1)
    await expect(listed.get_by_role("cell")).to_have_text(
        [re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d"), "manual", "finished", "1", "3"]
    )
    await expect(listed.get_by_role("link")).to_have_attribute(
        "href", f"/admin/reconciliations/{run}"
    )
    await console.visited("reconciliations")

    answer = await page.request.get(f"/admin/reconciliations/{run}.csv")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="reconciliation-{run}.csv"'
    )
    found = list(csv.DictReader(io.StringIO(await answer.text())))
    assert [(r["kind"], r["request_id"], r["state"]) for r in found] == [
        ("job_missing_in_xero", w.request, "open")
    ]
