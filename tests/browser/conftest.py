"""Browser fixtures: syncd served for real over HTTP by uvicorn (on the harness's services and
SQLite), one headless Chromium (Debian's, else Playwright's in the venv: see chromium.py) driven by
Playwright, and a `Console` tab that signs in through the CRM hand-off (coming from the CRM, as its
link does), checks each page's basic accessibility and that the Content-Security-Policy blocked
nothing, and screenshots it.

Playwright's objects belong to the event loop that made them, so the browser tests and their
async fixtures run in the session's loop (one browser launch per run, not per test).
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import uvicorn
import yaml
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    async_playwright,
    expect,
)

from syncd.crm.memory import MemoryCrm
from syncd.domain.ids import CompanyId
from syncd.settings import DEFAULT_SCOPES
from syncd.store.db import Database
from syncd.web.app import create_app
from syncd.web.auth import Role, mint_token
from tests.browser.chromium import MISSING, find_chromium
from tests.harness import Harness, harness

A = CompanyId("company-a")
B = CompanyId("company-b")
# Practice Manager scopes on top of the defaults, so a practice may connect to either backend.
XPM_SCOPES = (
    *DEFAULT_SCOPES.split(),
    "practicemanager.job",
    "practicemanager.client",
    "practicemanager.staff",
)
# Where the CRM lives (SYNCD_CRM_URL): its links arrive with this Referer.
CRM = "http://crm.test"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# This machine has no network but loopback: keep Chromium from reaching out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A node of an ARIA snapshot, `role "accessible name" [state]`: the name must not be empty.
NAMED = re.compile(r'^[\w-]+ "[^"]+"')
CONTROLS = "input:not([type=hidden]), select, textarea, button"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a Chromium, stop before any test runs with one line saying how to get one
    (rather than one Playwright traceback per browser test)."""
    if any(item.get_closest_marker("browser") for item in items) and find_chromium() is None:
        raise pytest.UsageError(MISSING)


def named(snapshot: str) -> bool:
    """Whether a control's ARIA snapshot (YAML: `- role "name": value`) gives it a name."""
    [node] = yaml.safe_load(snapshot)
    head = next(iter(node)) if isinstance(node, dict) else node
    return bool(NAMED.match(str(head)))


@pytest.fixture
def crm() -> MemoryCrm:
    """The CRM twin with two practices, A and B."""
    memory = MemoryCrm()
    memory.add_company(name="Harbour & Co", company_id=A)
    memory.add_company(name="Bayside Accounting", company_id=B)
    return memory


@pytest_asyncio.fixture(loop_scope="session")
async def h(sqlite_db: Database, fernet_key: str, crm: MemoryCrm) -> AsyncIterator[Harness]:
    """syncd + the in-process sandbox on SQLite (browser tests run on one database only)."""
    try:
        async with harness(
            sqlite_db,
            fernet_key,
            crm=crm,
            xero_scopes=XPM_SCOPES,
            outbox_max_attempts=3,
            crm_url=CRM,
        ) as ready:
            yield ready
    finally:
        # The connections were opened in this loop: close them here, not in sqlite_db's.
        await sqlite_db.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def base_url(h: Harness) -> AsyncIterator[str]:
    """The app on the harness's services, served by uvicorn on a free loopback port."""
    app = create_app(h.settings, services=h.services, run_scheduler=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", log_config=None, lifespan="off", access_log=False)
    )
    # The socket listens before uvicorn starts: a browser connecting early waits in the backlog.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(10):
                while not server.started:  # uvicorn has no startup event: watch its flag
                    if task.done():
                        task.result()  # startup failed: raise its error
                        raise RuntimeError("uvicorn stopped before it started")
                    await asyncio.sleep(0.01)
            host, port = sock.getsockname()
            yield f"http://{host}:{port}"
        finally:
            server.should_exit = True
            await task
    finally:
        sock.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium (or Playwright's in the venv), headless; found at collection."""
    executable = find_chromium()
    assert executable is not None, MISSING  # checked at collection already
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser, base_url: str) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (no cookies) pointed at the served app."""
    ctx = await browser.new_context(base_url=base_url, accept_downloads=True)
    try:
        yield ctx
    finally:
        await ctx.close()


class Console:
    """One admin's browser tab on the console, with the checks every visited page gets."""

    def __init__(self, page: Page, h: Harness, base_url: str, test: str) -> None:
        self.page = page
        self.h = h
        self.base_url = base_url
        self.test = test
        self.errors: list[str] = []
        self.status: int | None = None  # of the last document the tab loaded
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        page.on("response", self._seen)

    def _console(self, message: ConsoleMessage) -> None:
        # What the Content-Security-Policy blocked (an inline script or style, a foreign file).
        if "Content Security Policy" in message.text:
            self.errors.append(message.text)

    def _seen(self, response: Response) -> None:
        if response.request.is_navigation_request() and response.frame == self.page.main_frame:
            self.status = response.status

    def handoff_url(self, company: str, *, user: str = "admin-1") -> str:
        """The CRM's link: a practice-admin JWT valid for five minutes."""
        token = mint_token(
            self.h.settings,
            user=user,
            role=Role.PRACTICE_ADMIN,
            company=company,
            ttl=timedelta(minutes=5),
        )
        return f"/admin/login?token={token}"

    async def sign_in(self, company: str, *, user: str = "admin-1") -> None:
        """Come from the CRM (its Referer) and land on the dashboard."""
        await self.page.goto(self.handoff_url(company, user=user), referer=f"{CRM}/settings")
        await expect(self.page).to_have_url(f"{self.base_url}/admin")

    async def visited(self, name: str, *, status: int = 200) -> None:
        """The page as it stands: answered `status`, one h1, every visible form control named, no
        script error; and a full-page screenshot `<test>-<name>.png`, even when a check fails."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        try:
            assert self.status == status, f"{name}: {self.page.url} answered {self.status}"
            await expect(self.page.get_by_role("heading", level=1)).to_have_count(1)
            await expect(self.page.locator("h1")).to_have_count(1)
            for control in await self.page.locator(CONTROLS).all():
                if not await control.is_visible():
                    continue
                if not named(await control.aria_snapshot()):
                    html = await control.evaluate("e => e.outerHTML")
                    raise AssertionError(f"{name}: form control without a name: {html}")
            assert self.errors == [], f"{name}: script errors {self.errors}"
        finally:
            shot = SCREENSHOTS / f"{self.test}-{name}.png"
            await self.page.screenshot(path=shot, full_page=True)


@pytest_asyncio.fixture(loop_scope="session")
async def console(
    context: BrowserContext, h: Harness, base_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Console]:
    """A tab in the fresh profile, not signed in yet."""
    page = await context.new_page()
    try:
        yield Console(page, h, base_url, request.node.name)
    finally:
        await page.close()
