"""The `syncd` command as a user runs it: real processes, real databases, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.fernet import Fernet

from syncd.settings import load_settings
from syncd.web.auth import JwtVerifier
from syncd.web.pages.handoff import HANDOFF_MAX_SECONDS, Link, read_link
from tests.conftest import free_port

SYNCD = [sys.executable, "-m", "syncd"]
ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYNCD, *args],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=180,  # a bound for a loaded machine, not a speed check
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
        ["reconcile"],
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


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 120) -> httpx.Response:
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
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
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


# -- the first hour (issue 14) ----------------------------------------------------------------

JWT_SECRET = "cli-test-jwt-secret-0123456789abcdefghij"


def _claims(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    return claims


def test_token_sign_in_prints_a_console_link_of_ten_minutes(tmp_path: Path) -> None:
    """`syncd token --sign-in` prints /admin's hand-off URL on SYNCD_HOST:SYNCD_PORT with a
    practice admin's token that lives 10 minutes, which the console's link check accepts."""
    result = run(
        ["token", "--sign-in", "--company", "acme", "--user", "ann"],
        tmp_path,
        SYNCD_JWT_SECRET=JWT_SECRET,
        SYNCD_PORT="8123",
    )
    assert result.returncode == 0, result.stderr
    url = urlsplit(result.stdout.strip())
    assert (url.scheme, url.netloc, url.path) == ("http", "127.0.0.1:8123", "/admin/login")
    [token] = parse_qs(url.query)["token"]
    claims = _claims(token)
    assert (claims["role"], claims["company_id"], claims["sub"]) == (
        "practice_admin",
        "acme",
        "ann",
    )
    assert int(str(claims["exp"])) - int(str(claims["iat"])) == HANDOFF_MAX_SECONDS
    settings = load_settings({"SYNCD_JWT_SECRET": JWT_SECRET}, env_file=None)
    link = read_link(JwtVerifier(settings), token, None, now=time.time())
    assert isinstance(link, Link), link
    assert link.company == "acme"


def test_a_super_admins_sign_in_link_names_the_practice(tmp_path: Path) -> None:
    """A super admin's link carries company_id (the console needs it) and another address with
    --url."""
    result = run(
        [
            *("token", "--sign-in", "--role", "super_admin", "--company", "acme"),
            *("--user", "root", "--url", "https://syncd.example/"),
        ],
        tmp_path,
        SYNCD_JWT_SECRET=JWT_SECRET,
    )
    assert result.returncode == 0, result.stderr
    url = urlsplit(result.stdout.strip())
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://syncd.example/admin/login"
    assert parse_qs(url.query)["company_id"] == ["acme"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--sign-in", "--ttl", "3600"], "at most 600 seconds"),
        (["--sign-in", "--role", "accountant"], "cannot sign in to the console"),
        (["--sign-in", "--role", "super_admin", "--company", ""], "opens one practice"),
        ([], "--role is required"),
    ],
)
def test_token_refuses_what_would_not_work(tmp_path: Path, args: list[str], said: str) -> None:
    """A sign-in link that would be refused is not printed: one line says why, exit code 1."""
    result = run(
        ["token", "--company", "acme", "--user", "ann", *args],
        tmp_path,
        SYNCD_JWT_SECRET=JWT_SECRET,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert said in result.stderr


def test_a_plain_token_lives_an_hour_and_is_no_sign_in_link(tmp_path: Path) -> None:
    """Without --sign-in the token is for the API (one hour), and the console refuses it as a
    link, which is why --sign-in exists."""
    result = run(
        ["token", "--role", "practice_admin", "--company", "acme", "--user", "ann"],
        tmp_path,
        SYNCD_JWT_SECRET=JWT_SECRET,
    )
    token = result.stdout.strip()
    claims = _claims(token)
    assert int(str(claims["exp"])) - int(str(claims["iat"])) == 3600
    settings = load_settings({"SYNCD_JWT_SECRET": JWT_SECRET}, env_file=None)
    refused = read_link(JwtVerifier(settings), token, None, now=time.time())
    assert not isinstance(refused, Link)
    assert "10 minutes at most" in refused.reason


def test_sandbox_says_where_it_listens_and_logs_each_request(tmp_path: Path) -> None:
    """`syncd sandbox` prints its address when it starts and one log line per request
    (method, path, status) on stderr."""
    port = free_port()
    process = subprocess.Popen(
        [*SYNCD, "sandbox", "--port", str(port)],
        cwd=tmp_path,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env({}),
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert f"sandbox serving on http://127.0.0.1:{port}" in first
        answered = httpx.get(f"http://127.0.0.1:{port}/_sandbox/tenants", timeout=30)
        assert answered.status_code == 200
        missing = httpx.get(f"http://127.0.0.1:{port}/no/such/path", timeout=30)
        assert missing.status_code == 404
        logged = [json.loads(process.stderr.readline()) for _ in range(2)]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert [(e["event"], e["method"], e["path"], e["status"]) for e in logged] == [
        ("sandbox.request", "GET", "/_sandbox/tenants", 200),
        ("sandbox.request", "GET", "/no/such/path", 404),
    ]


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["sandbox", "--port", "{busy}"], "--port"),
        (["demo", "--serve", "--port", "{busy}", "--sandbox-port", "{free}"], "--port"),
        (["demo", "--serve", "--port", "{free}", "--sandbox-port", "{busy}"], "--sandbox-port"),
    ],
)
def test_a_busy_port_is_one_line_naming_the_option(
    tmp_path: Path, command: list[str], option: str
) -> None:
    """A port another process listens on stops the command at once with one line (which port,
    which option), exit code 1, no traceback; the demo has not touched its folder."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        free = free_port()
        args = [part.format(busy=busy, free=free) for part in command]
        result = run(args, tmp_path, SYNCD_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    assert result.returncode == 1
    assert result.stderr == f"syncd: port {busy} is in use; pass {option} to use another\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "shown", "why"),
    [
        (
            "postgresql://syncd:hunter2@127.0.0.1:1/x",
            "postgresql+asyncpg://syncd:***@127.0.0.1:1/x",
            "connection refused",
        ),
        ("sqlite:///{tmp}/gone/s.db", "sqlite+aiosqlite:///{tmp}/gone/s.db", "does not exist"),
    ],
)
def test_serve_on_a_database_it_cannot_reach_stops_with_one_line(
    tmp_path: Path, url: str, shown: str, why: str
) -> None:
    """`syncd serve` checks its database before it listens: one line naming it (password
    hidden) and exit code 1, instead of a healthy-looking process answering 500s."""
    result = run(
        ["serve"],
        tmp_path,
        SYNCD_DATABASE_URL=url.format(tmp=tmp_path),
        SYNCD_PORT=str(free_port()),
        SYNCD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    [line] = lines
    assert line.startswith(f"syncd: cannot use the database {shown.format(tmp=tmp_path)}: ")
    assert why in line
    assert "hunter2" not in result.stderr


def test_reconcile_and_sync_job_explain_themselves(tmp_path: Path) -> None:
    """The two commands a new user runs in the demo folder document --json and the report."""
    for command in (["reconcile"], ["sync-job"]):
        result = run([*command, "--help"], tmp_path)
        assert result.returncode == 0
        assert "--json" in result.stdout or "--format" in result.stdout


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "syncd").is_file(), reason="no .venv here")
def test_make_shell_puts_syncd_on_path() -> None:
    """`make shell` opens a shell in which plain `syncd` is the venv's."""
    result = subprocess.run(
        ["make", "-s", "shell"],
        cwd=ROOT,
        input="command -v syncd\n",
        env={**_env({}), "SHELL": "/bin/sh"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"{ROOT}/.venv/bin/syncd" in result.stdout.splitlines()


def test_the_demo_leaves_a_folder_with_its_own_configuration_alone(tmp_path: Path) -> None:
    """A .env that sets Xero or database settings and was not written by a demo (say, the
    repository's own) is not rewritten: one line says so, and nothing in the folder changes."""
    mine = "SYNCD_JWT_SECRET=mine-0123456789abcdef0123456789\nXERO_CLIENT_ID=my-real-app\n"
    (tmp_path / ".env").write_text(mine)
    result = run(["demo"], tmp_path, SYNCD_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"syncd: {tmp_path / '.env'} has settings of its own (XERO_CLIENT_ID); run the demo in "
        "a folder of its own (make demo uses .demo/)"
    ]
    assert (tmp_path / ".env").read_text() == mine
    assert [p.name for p in tmp_path.iterdir()] == [".env"]


def test_serve_starts_on_a_reachable_database_not_yet_migrated(empty_db_url: str) -> None:
    """The start-up check asks only whether the database answers: on an empty one `serve`
    starts and /readyz says to migrate (a web process may start before the migrate job)."""
    port = free_port()
    process = subprocess.Popen(
        [*SYNCD, "serve"],
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(
            {
                "SYNCD_DATABASE_URL": empty_db_url,
                "SYNCD_PORT": str(port),
                "SYNCD_EMBEDDED_SCHEDULER": "off",
                "SYNCD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            }
        ),
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", process)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            process.kill()
            process.wait()
    assert ready.status_code == 503
    assert "syncd migrate" in ready.text
