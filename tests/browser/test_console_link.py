"""The console link that `syncd demo --serve` prints signs the first practice's admin in to
/admin in a real browser, once: a real demo process on free ports, in a folder of its own."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import SCREENSHOTS
from tests.e2e.test_cli import SYNCD
from tests.e2e.test_demo_env import PATIENCE, bare_env, two_free_ports

# The session's event loop: the one browser lives there (see conftest).
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

LINK = re.compile(r"^\s+(http://127\.0\.0\.1:\d+/admin/login\?token=\S+)$")


async def test_the_demos_console_link_signs_in_once(browser: Browser, tmp_path: Path) -> None:
    """Opened as printed (no Referer: the confirmation page), one click lands on the dashboard
    of the practice the demo connected; the same link again is refused as used."""
    port, sandbox_port = two_free_ports()
    with (tmp_path / "demo.err").open("w") as errors:
        process = await asyncio.create_subprocess_exec(
            *SYNCD,
            *("demo", "--serve", "--port", str(port), "--sandbox-port", str(sandbox_port)),
            cwd=tmp_path,
            env=bare_env(),
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    try:
        assert process.stdout is not None
        links: list[str] = []
        async with asyncio.timeout(PATIENCE):
            while True:
                line = (await process.stdout.readline()).decode()
                assert line, f"the demo ended early: {(tmp_path / 'demo.err').read_text()}"
                if found := LINK.match(line.rstrip("\n")):
                    links.append(found.group(1))
                if line.startswith("Serving syncd on"):
                    break
        [link] = links
        assert link.startswith(f"http://127.0.0.1:{port}/admin/login?token=")

        context = await browser.new_context()
        try:
            page = await context.new_page()
            await page.goto(link)
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                "Open the Xero settings"
            )
            await page.get_by_role("button", name="Continue to the Xero settings").click()
            await expect(page).to_have_url(f"http://127.0.0.1:{port}/admin")
            await expect(page.get_by_role("heading", level=1)).to_have_text("Xero integration")
            await expect(page.get_by_text("Connected to Harbour & Co Accountants")).to_be_visible()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=SCREENSHOTS / "demo-console-link.png", full_page=True)

            again = await context.new_page()
            await again.goto(link)
            await expect(
                again.get_by_text("this sign-in link has already been used")
            ).to_be_visible()
        finally:
            await context.close()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(60):
                await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
