"""The demo's folder is a working syncd setup: `syncd demo --serve` writes its whole
configuration to `.env` there, so `reconcile`, `sync-job` and `token --sign-in` run in that folder
with nothing else in their environment (only PATH and HOME) work on the demo while it serves."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from dotenv import dotenv_values

from syncd.settings import SPEC, load_settings
from tests.conftest import free_port
from tests.e2e.test_cli import SYNCD

# Long enough for a slow, shared machine; every wait below ends as soon as its condition holds.
PATIENCE = 180
# What `make demo` puts in .env before the demo runs, plus a line of the user's own and a
# variable set twice (the later value is the one python-dotenv reads).
JWT_SECRET = "demo-env-test-jwt-secret-0123456789abcdef"
BEFORE = f"""# my own notes
FOO=kept
SYNCD_JWT_SECRET=an-older-secret-that-is-read-first-0123
SYNCD_JWT_SECRET={JWT_SECRET}
"""


def bare_env() -> dict[str, str]:
    """Only PATH and HOME: whatever syncd needs must come from the folder's .env."""
    return {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}


class Lines:
    """A process's output read line by line in a thread, so a wait can give up in time."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.stream = stream
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        """After the process ended: the rest is read, then the pipe closed."""
        self.thread.join(timeout=PATIENCE)
        self.stream.close()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, done: Any, timeout: float = PATIENCE) -> list[str]:
        """Lines up to and including the first for which `done(line)` holds."""
        read: list[str] = []
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"the output ended first: {''.join(self.seen)[-2000:]}")
            self.seen.append(line)
            read.append(line)
            if done(line):
                return read


@dataclass
class Served:
    folder: Path
    port: int
    sandbox_port: int
    summary: dict[str, Any]
    stdout: str

    def syncd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SYNCD, *args],
            cwd=self.folder,
            env=bare_env(),
            capture_output=True,
            text=True,
            timeout=PATIENCE,
            check=False,
        )

    @property
    def company(self) -> str:
        return str(self.summary["practices"][0]["company_id"])


def assert_log_lines(stderr: str) -> None:
    """Every line is a JSON log event (the task may as well have run in the demo's worker,
    so which events appear is not for this test to say), apart from one-line notices."""
    for line in stderr.splitlines():
        if line.startswith("{"):
            assert "event" in json.loads(line)
        else:
            assert line.startswith(("reconciliation ", "syncd: ")), line


def two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`syncd demo --serve --json` on free ports, in a folder of its own, until the module ends."""
    folder = tmp_path_factory.mktemp("demo")
    (folder / ".env").write_text(BEFORE)
    port, sandbox_port = two_free_ports()
    with (folder / "demo.err").open("w") as errors:
        process = subprocess.Popen(
            [
                *SYNCD,
                "demo",
                "--serve",
                "--json",
                "--port",
                str(port),
                "--sandbox-port",
                str(sandbox_port),
            ],
            cwd=folder,
            env=bare_env(),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    assert process.stdout is not None
    output = Lines(process.stdout)
    try:
        out = "".join(output.until(lambda line: line == "}\n"))
        yield Served(folder, port, sandbox_port, json.loads(out), out)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        finally:
            process.kill()
            process.wait()
            output.close()


@pytest.mark.slow
def test_the_demo_writes_every_setting_it_uses_to_its_env(served: Served) -> None:
    """.env holds each of the demo's settings once (the user's lines kept, the doubled one
    merged into one line with the value it had), only its owner can read it, and the summary
    names every setting but shows no secret."""
    env_file = served.folder / ".env"
    text = env_file.read_text()
    assert text.startswith("# my own notes\nFOO=kept\n")
    names = [line.split("=", 1)[0] for line in text.splitlines() if "=" in line]
    assert len(names) == len(set(names)), text
    values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    assert values["SYNCD_JWT_SECRET"] == JWT_SECRET
    shown = served.summary["settings"]
    assert set(shown) <= set(values)
    assert served.summary["env_file"] == str(env_file)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    secret = {option.env for option in SPEC if option.secret}
    for name, value in shown.items():
        if name in secret:
            assert value == "(secret, in .env)"
            assert values[name] not in served.stdout
        else:
            assert value == values[name]
    # The settings a command in the folder reads are the demo's own.
    settings = load_settings({}, env_file=env_file)
    sandbox = f"http://127.0.0.1:{served.sandbox_port}"
    assert (settings.xero_api_url, settings.xero_identity_url) == (sandbox, sandbox)
    assert settings.database_url.endswith(str(served.folder / "syncd-demo.db"))
    assert settings.crm_database_url is not None
    assert settings.crm_database_url.endswith(str(served.folder / "crm-demo.db"))
    assert settings.port == served.port
    assert settings.xero_client_id and settings.xero_webhook_key and settings.encryption_keys
    assert settings.xero_redirect_uri.startswith(f"http://127.0.0.1:{served.port}/")


@pytest.mark.slow
def test_reconcile_in_the_demo_folder_uses_only_its_env(served: Served) -> None:
    """`syncd reconcile` with nothing but PATH and HOME, in the folder, reconciles the demo's
    first practice against the demo's sandbox and prints the report."""
    result = served.syncd("reconcile", "--company", served.company)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["kind", "found", "open", "healed"]
    table = lines[1 : lines.index("")]
    found = sum(int(line.split()[1]) for line in table)
    last = re.fullmatch(r"(\d+) (findings?), (\d+) open, (\d+) (Xero calls?)", lines[-1])
    assert last, lines[-1]
    count, word, _open, calls, calls_word = last.groups()
    assert word == ("finding" if int(count) == 1 else "findings")
    assert calls_word == ("Xero call" if int(calls) == 1 else "Xero calls")
    assert int(calls) > 0  # it did ask the sandbox
    assert int(count) == found
    # Progress and logs went to stderr (JSON lines, as it is no terminal), never into the report.
    assert re.search(r"^reconciliation \S+ queued$", result.stderr, re.MULTILINE)
    assert not any(line.startswith("{") for line in lines)
    assert_log_lines(result.stderr)


@pytest.mark.slow
def test_sync_job_prints_sentences_and_json_on_request(served: Served) -> None:
    """`syncd sync-job` says what happened in lines for people on stdout (logs on stderr);
    with --json it prints one JSON document and nothing else."""
    request = served.summary["practices"][0]["jobs"][-1]["request_id"]
    told = served.syncd("sync-job", request, "--company", served.company)
    assert told.returncode == 0, told.stderr[-2000:]
    lines = told.stdout.strip().splitlines()
    assert lines[0].startswith("task ") and f"sync request {request}" in lines[0]
    assert lines[-1].startswith("done: ")
    assert "{" not in told.stdout
    assert_log_lines(told.stderr)

    as_json = served.syncd("sync-job", request, "--company", served.company, "--json")
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    document = json.loads(as_json.stdout)
    assert (document["request_id"], document["company"]) == (request, served.company)
    assert document["state"] == "done"
    assert document["error"] is None
    assert isinstance(document["result"], dict)


@pytest.mark.slow
def test_sign_in_links_from_the_demo_and_syncd_token_reach_the_console(served: Served) -> None:
    """The summary's console link and `syncd token --sign-in` both open the console's sign-in
    page on the demo's port; a plain (one-hour) `syncd token` is refused as a link."""
    base = f"http://127.0.0.1:{served.port}/admin/login?token="
    link = served.summary["console"]
    assert link.startswith(base)
    made = served.syncd("token", "--sign-in", "--company", served.company, "--user", "admin")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(base)
    for url in (link, made.stdout.strip()):
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200, page.text
        assert "Continue to the Xero settings" in page.text

    hour = served.syncd(
        "token", "--role", "practice_admin", "--company", served.company, "--user", "admin"
    )
    refused = httpx.get(base + hour.stdout.strip(), timeout=30)
    assert refused.status_code == 401
    assert "10 minutes at most" in refused.text
