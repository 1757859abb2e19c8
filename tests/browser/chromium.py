"""Which Chromium the browser tests drive: Debian's (`chromium` on PATH) when there is one, else
Playwright's own download in the venv (`make chromium` puts it there when apt-get cannot run).
Pure lookups on the file system; nothing is downloaded here."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where `make chromium` installs Playwright's browser when Debian's cannot be had.
VENV_BROWSERS = ROOT / ".venv" / "playwright-browsers"
MISSING = (
    "no Chromium: install Debian's chromium (apt-get install chromium) "
    "or run `PLAYWRIGHT_BROWSERS_PATH=.venv/playwright-browsers "
    ".venv/bin/playwright install chromium`"
)
# Inside a Playwright browsers directory, newest build first: the full browser, then the
# headless shell Playwright uses for headless runs.
PLAYWRIGHT_BUILDS = (
    "chromium-*/chrome-linux*/chrome",
    "chromium_headless_shell-*/chrome-*/headless_shell",
    "chromium_headless_shell-*/chrome-*/chrome-headless-shell",
)


def browsers_path(environ: Mapping[str, str] | None = None) -> Path:
    """Playwright's browsers directory: `PLAYWRIGHT_BROWSERS_PATH`, else the venv's."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    configured = env.get("PLAYWRIGHT_BROWSERS_PATH", "")
    return Path(configured) if configured and configured != "0" else VENV_BROWSERS


def playwright_chromium(directory: Path) -> str | None:
    """The newest Chromium Playwright installed in `directory`, if any."""
    for pattern in PLAYWRIGHT_BUILDS:
        found = sorted(
            (p for p in directory.glob(pattern) if os.access(p, os.X_OK)),
            key=lambda p: p.parts[len(directory.parts)],
            reverse=True,
        )
        if found:
            return str(found[0])
    return None


def find_chromium(environ: Mapping[str, str] | None = None) -> str | None:
    """Debian's `chromium` on PATH, else Playwright's in the browsers directory, else None."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    return shutil.which("chromium", path=env.get("PATH", os.defpath)) or playwright_chromium(
        browsers_path(env)
    )
