"""The `syncd` command as a user runs it: real processes, real databases, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import free_port

SYNCD = [sys.executable, "-m", "syncd"]


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYNCD, *args],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _env(extra: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "XERO_"))}
    return {**keep, "SYNCD_LOG_FORMAT": "json", **extra}


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SYNCD_DATABASE_URL": "mongodb://x"}, "SYNCD_DATABASE_URL"),
        ({"SYNCD_ENCRYPTION_KEYS": "not-a-key"}, "SYNCD_ENCRYPTION_KEYS"),
        ({"SYNCD_PORT": "-1"}, "SYNCD_PORT"),
        ({}, "SYNCD_ENCRYPTION_KEYS"),  # serve needs keys
    ],
)
def test_bad_settings_give_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    """A bad or missing setting stops `syncd serve` with one line naming it; no traceback."""
    result = run(["serve"], tmp_path, **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_setting_in_dotenv_is_reported_too(tmp_path: Path) -> None:
    """A .env file in the working folder is read, and its mistakes are named the same way."""
    (tmp_path / ".env").write_text("SYNCD_LOG_LEVEL=loud\n")
    result = run(["migrate"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("syncd: configuration error: SYNCD_LOG_LEVEL")


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["worker"],
        ["migrate"],
        ["keys"],
        ["keys", "generate"],
        ["keys", "rotate"],
        ["config"],
        ["token"],
        ["sandbox"],
        ["sample-crm"],
        ["sync-job"],
        ["demo"],
    ],
)
def test_every_command_explains_itself(tmp_path: Path, command: list[str]) -> None:
    """`--help` works everywhere and says what the command does."""
    result = run([*command, "--help"], tmp_path)
    assert result.returncode == 0
    assert "usage: syncd" in result.stdout
    assert len(result.stdout.split()) > 20


def test_migrate_twice_is_a_no_op_and_downgrade_reaches_base(tmp_path: Path) -> None:
    """The second `syncd migrate` changes nothing; `--downgrade base` empties the schema."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    first = run(["migrate"], tmp_path, SYNCD_DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert "migrated from (empty)" in first.stdout
    second = run(["migrate"], tmp_path, SYNCD_DATABASE_URL=url)
    assert "nothing to do" in second.stdout
    down = run(["migrate", "--downgrade", "base"], tmp_path, SYNCD_DATABASE_URL=url)
    assert down.returncode == 0
    assert "to base" in down.stdout


def test_migrate_against_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    """A database that cannot be reached is reported in one line with exit code 1."""
    result = run(["migrate"], tmp_path, SYNCD_DATABASE_URL="postgresql://nobody@127.0.0.1:1/x")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_config_hides_passwords_in_urls(tmp_path: Path) -> None:
    """`syncd config` shows database and CRM URLs with their passwords as ***."""
    result = run(
        ["config"],
        tmp_path,
        SYNCD_DATABASE_URL="postgresql://syncd:hunter2@db:5432/syncd",
        SYNCD_CRM_DATABASE_URL="postgresql://crm@crmdb/crm?password=qwerty123&ssl=require",
        SYNCD_CRM_URL="https://admin:pa55word@crm.example",
    )
    assert result.returncode == 0, result.stderr
    shown = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert shown["SYNCD_DATABASE_URL"] == "postgresql+asyncpg://syncd:***@db:5432/syncd"
    assert shown["SYNCD_CRM_DATABASE_URL"] == (
        "postgresql+asyncpg://crm@crmdb/crm?password=***&ssl=require"
    )
    assert shown["SYNCD_CRM_URL"] == "https://admin:***@crm.example"
    for password in ("hunter2", "qwerty123", "pa55word"):
        assert password not in result.stdout + result.stderr


def test_keys_generate_prints_a_usable_key(tmp_path: Path) -> None:
    """The printed key is a valid Fernet key."""
    result = run(["keys", "generate"], tmp_path)
    key = result.stdout.strip()
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"


def test_keys_rotate_reports_counts(tmp_path: Path) -> None:
    """On an empty database rotation succeeds and reports zero rows."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    run(["migrate"], tmp_path, SYNCD_DATABASE_URL=url)
    result = run(
        ["keys", "rotate"],
        tmp_path,
        SYNCD_DATABASE_URL=url,
        SYNCD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 0 secrets in 0 rows" in result.stdout


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited early: {process.communicate()}")
        try:
            response = httpx.get(url, timeout=1)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout}s")


def test_serve_becomes_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`syncd serve` answers /readyz with 200 on a migrated database and exits 0 on SIGTERM."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    run(["migrate"], tmp_path, SYNCD_DATABASE_URL=url)
    port = free_port()
    process = subprocess.Popen(
        [*SYNCD, "serve"],
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(
            {
                "SYNCD_DATABASE_URL": url,
                "SYNCD_PORT": str(port),
                "SYNCD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            }
        ),
    )
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        assert ready.json()["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    # uvicorn finishes the graceful shutdown, then re-raises SIGTERM (a clean stop for systemd).
    assert process.returncode in (0, -signal.SIGTERM)
    assert "scheduler.started" in err  # embedded default runs the scheduler in-process
    assert "scheduler.stopped" in err
    assert "web.stopped" in err


def test_worker_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    """The worker says what to do instead of failing later."""
    result = run(
        ["worker"],
        tmp_path,
        SYNCD_DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}",
        SYNCD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    assert result.returncode == 1
    assert "syncd migrate" in result.stderr


def test_worker_runs_until_sigterm(tmp_path: Path) -> None:
    """`syncd worker` starts the scheduler and stops cleanly on SIGTERM."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    run(["migrate"], tmp_path, SYNCD_DATABASE_URL=url)
    process = subprocess.Popen(
        [*SYNCD, "worker"],
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(
            {"SYNCD_DATABASE_URL": url, "SYNCD_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
        ),
    )
    try:
        deadline = time.monotonic() + 20
        seen = ""
        assert process.stderr is not None
        while "worker.started" not in seen and time.monotonic() < deadline:
            seen += process.stderr.readline()
        assert "worker.started" in seen
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "scheduler.stopped" in err


def test_sync_job_names_an_unknown_request(tmp_path: Path) -> None:
    """`syncd sync-job` for a request the practice does not have says so, exit code 1."""
    crm = f"sqlite:///{tmp_path / 'crm.db'}"
    created = run(["sample-crm", "--database", crm, "--practices", "1"], tmp_path)
    assert created.returncode == 0, created.stderr
    url = f"sqlite:///{tmp_path / 's.db'}"
    run(["migrate"], tmp_path, SYNCD_DATABASE_URL=url)
    result = run(
        ["sync-job", "no-such-request", "--company", "acme"],
        tmp_path,
        SYNCD_DATABASE_URL=url,
        SYNCD_CRM_DATABASE_URL=crm,
        XERO_CLIENT_ID="x",
        SYNCD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    assert result.returncode == 1
    assert "not in practice acme" in result.stderr
