"""Finding the browser the browser tests drive: Debian's on PATH first, else Playwright's own
download in the browsers directory, else nothing (and the run stops with one line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.browser.chromium import MISSING, ROOT, find_chromium


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_debian_chromium_on_path_comes_first(tmp_path: Path) -> None:
    """A `chromium` on PATH wins over a Playwright download."""
    debian = executable(tmp_path / "bin" / "chromium")
    executable(tmp_path / "pw" / "chromium-1200" / "chrome-linux" / "chrome")
    env = {"PATH": str(debian.parent), "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "pw")}
    assert find_chromium(env) == str(debian)


def test_playwright_download_is_the_fallback(tmp_path: Path) -> None:
    """Without Debian's, the newest Chromium build in PLAYWRIGHT_BROWSERS_PATH is used."""
    executable(tmp_path / "pw" / "chromium-1100" / "chrome-linux" / "chrome")
    newest = executable(tmp_path / "pw" / "chromium-1200" / "chrome-linux64" / "chrome")
    env = {"PATH": str(tmp_path / "empty"), "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "pw")}
    assert find_chromium(env) == str(newest)


def test_headless_shell_alone_is_enough(tmp_path: Path) -> None:
    """Playwright's headless shell (all a headless run needs) counts as a Chromium."""
    shell = executable(
        tmp_path / "pw" / "chromium_headless_shell-1200" / "chrome-linux" / "headless_shell"
    )
    env = {"PATH": str(tmp_path / "empty"), "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "pw")}
    assert find_chromium(env) == str(shell)


def test_nothing_found_is_none(tmp_path: Path) -> None:
    """No chromium on PATH and an empty browsers directory: no browser."""
    (tmp_path / "pw").mkdir()
    env = {"PATH": str(tmp_path / "empty"), "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "pw")}
    assert find_chromium(env) is None


def test_without_a_browser_the_run_stops_with_one_line(tmp_path: Path) -> None:
    """pytest on the browser tests with no Chromium anywhere prints the hint once, runs nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/browser", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={"PATH": str(bin_dir), "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 4, output
    assert output.count(MISSING) == 1, output
    assert "Traceback" not in output and "passed" not in output, output
