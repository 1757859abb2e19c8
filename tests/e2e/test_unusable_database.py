"""A database syncd cannot use (read-only, its folder gone, unreachable): /readyz says so with
the reason, the scheduler logs the first failure once and then backs off, and `syncd migrate` /
`syncd worker` stop with one line naming the database (password hidden)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from syncd.domain.ids import CompanyId
from syncd.pipeline.outbox import enqueue
from syncd.pipeline.poller import poll_task
from syncd.scheduler import SchedulerRunner, after_failure, drain_outbox
from syncd.services import open_services
from syncd.settings import Settings
from syncd.store.db import Database
from syncd.store.migrate import upgrade
from syncd.xero.webhooks import sign
from tests.conftest import (
    DATABASES,
    _pg_admin,
    create_pg_database,
    drop_pg_database,
    free_port,
    make_settings,
)
from tests.e2e.test_cli import SYNCD, _env, run
from tests.e2e.test_health import client_for
from tests.e2e.test_webhook_ingress import BODY, KEY, URL
from tests.fakes import InstantClock

A = CompanyId("company-a")
T = TypeVar("T")


async def _migrate_with_a_due_task(url: str) -> None:
    """Migrated, with one task due now (so the worker's claim must write)."""
    db = Database(url)
    try:
        await upgrade(db)
        async with db.transaction() as session:
            now = datetime.now(UTC)
            await enqueue(session, poll_task(A, now=now, interval_minutes=5), now=now)
    finally:
        await db.dispose()


@pytest.fixture(params=DATABASES)
def readonly_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database holding a due task, that answers reads and refuses every write: a
    SQLite file opened read-only, a PostgreSQL database whose transactions are read-only."""
    if request.param == "sqlite":
        path = tmp_path / "readonly.db"
        asyncio.run(_migrate_with_a_due_task(f"sqlite+aiosqlite:///{path}"))
        yield f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"
        return
    url = create_pg_database()
    try:
        asyncio.run(_migrate_with_a_due_task(url))
        name = url.rsplit("/", 1)[1]
        asyncio.run(_pg_admin(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
        yield url
    finally:
        drop_pg_database(url)


# -- readiness ---------------------------------------------------------------------------------


async def test_readyz_is_503_when_the_database_refuses_writes(readonly_url: str) -> None:
    """Reads work and the schema is at head, but a write fails: not ready, with the reason,
    logged once however often the probe asks."""
    db = Database(readonly_url)
    try:
        async with client_for(make_settings(database_url=readonly_url), db) as client:
            with capture_logs() as logs:
                first = await client.get("/readyz")
                second = await client.get("/readyz")
    finally:
        await db.dispose()
    assert (first.status_code, second.status_code) == (503, 503)
    reason = first.json()["database"]
    assert reason.startswith("not writable: ")
    assert "read-only" in reason or "readonly" in reason
    assert [e["event"] for e in logs if e["event"].startswith("web.")] == ["web.not_ready"]


async def test_a_refused_webhook_write_is_503_and_logged_without_traceback(
    readonly_url: str,
) -> None:
    """A signed delivery that cannot be stored is not acknowledged: 503 (Xero delivers again
    later); the writer logs its batch's failure as one error line, the request one warning,
    neither with a traceback. (On SQLite the inbox's own connection opens the file as the
    engine does, read-only here: it once dropped the URL's mode=ro and stored anyway.)"""
    db = Database(readonly_url)
    headers = {"x-xero-signature": sign(BODY, KEY), "content-type": "application/json"}
    try:
        async with client_for(make_settings(database_url=readonly_url), db) as client:
            with capture_logs() as logs:
                answer = await client.post(URL, content=BODY, headers=headers)
    finally:
        await db.dispose()
    assert (answer.status_code, answer.content) == (503, b"")
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("inbox.write_failed", "error"),
        ("webhook.not_stored", "warning"),
    ]
    assert all("exc_info" not in e and "read" in e["error"].lower() for e in logs)


async def test_readyz_is_503_when_the_sqlite_folder_disappears(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """An open SQLite connection goes on writing into a deleted file; readiness notices, and
    says when the file is back."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copyfile(sqlite_template, folder / "syncd.db")
    url = f"sqlite+aiosqlite:///{folder / 'syncd.db'}"
    db = Database(url)
    try:
        async with client_for(make_settings(database_url=url), db) as client:
            assert (await client.get("/readyz")).status_code == 200
            shutil.move(folder, tmp_path / "moved")
            gone = await client.get("/readyz")
            shutil.move(tmp_path / "moved", folder)
            with capture_logs() as logs:
                back = await client.get("/readyz")
    finally:
        await db.dispose()
    assert gone.status_code == 503
    assert gone.json()["database"] == "not writable: the database file is gone (syncd.db)"
    assert back.status_code == 200
    assert [e["event"] for e in logs] == ["web.ready_again"]


async def test_readyz_writes_nothing(settings: Settings, db: Database) -> None:
    """The write probe is rolled back: a ready database is left exactly as it was."""
    from tests.e2e.test_bad_input import row_counts

    before = await row_counts(db)
    async with client_for(settings, db) as client:
        assert (await client.get("/readyz")).status_code == 200
    assert await row_counts(db) == before


# -- the scheduler -----------------------------------------------------------------------------


async def test_a_failing_tick_is_logged_once_in_one_line(readonly_url: str) -> None:
    """Two minutes of one-second ticks on a read-only database: the first failure is one line
    naming the error (no traceback), then a line per backed-off retry, not one per tick."""
    clock = InstantClock(start=datetime.now(UTC))
    settings = make_settings(database_url=readonly_url)
    db = Database(readonly_url)
    try:
        async with open_services(settings, db=db, clock=clock) as services:
            tick = SchedulerRunner(services).guarded("drain_outbox", drain_outbox, seconds=1)
            with capture_logs() as logs:
                for _ in range(120):
                    await tick()
                    clock.advance(1)
    finally:
        await db.dispose()
    ours = [e for e in logs if e["event"].startswith("scheduler.")]
    [first, *later] = ours
    assert first["event"] == "scheduler.job_failed"
    assert "exc_info" not in first
    assert "read-only" in first["error"] or "readonly" in first["error"]
    assert {e["event"] for e in later} == {"scheduler.job_still_failing"}
    assert len(later) == 5  # retried at 2, 6, 14, 30 and 62 seconds, each wait doubling
    assert not [e for e in logs if "exc_info" in e]


async def test_a_failing_job_backs_off_and_says_when_it_recovers(
    settings: Settings, db: Database
) -> None:
    """Tried again after 2, 4, 8 ... seconds, capped at a minute; the recovery is logged."""
    clock = InstantClock()
    calls: list[float] = []

    async def flaky(_services: object) -> None:
        calls.append(clock.monotonic())
        if len(calls) <= 7:
            raise OSError("unable to open database file")

    async with open_services(settings, db=db, clock=clock) as services:
        tick = SchedulerRunner(services).guarded("flaky", flaky, seconds=1)
        with capture_logs() as logs:
            for _ in range(400):
                if len(calls) == 8:
                    break
                await tick()
                clock.advance(1)
    assert calls == [0, 2, 6, 14, 30, 62, 122, 182]
    assert [e["event"] for e in logs] == [
        "scheduler.job_failed",
        *["scheduler.job_still_failing"] * 6,
        "scheduler.job_recovered",
    ]
    assert (logs[-1]["failures"], logs[-1]["failed_for"]) == (7, 182)


def test_the_backoff_doubles_up_to_a_minute() -> None:
    """The pure schedule: twice the interval, doubling, capped at a minute (or the job's own
    interval when that is longer)."""
    state = after_failure(None, now=0, interval=1)
    assert (state.failures, state.retry_at) == (1, 2)
    for _ in range(10):
        state = after_failure(state, now=state.retry_at, interval=1)
    assert state.retry_at - state.since > 60 * 5
    assert after_failure(state, now=1000, interval=1).retry_at == 1060
    assert after_failure(None, now=0, interval=300).retry_at == 300  # never sooner than usual


async def test_a_bug_in_a_job_is_logged_with_its_traceback_once(
    settings: Settings, db: Database
) -> None:
    """Not a database error: the first failure carries the traceback, the retries do not."""
    clock = InstantClock()

    async def broken(_services: object) -> None:
        raise KeyError("a bug")

    async with open_services(settings, db=db, clock=clock) as services:
        tick = SchedulerRunner(services).guarded("broken", broken, seconds=1)
        with capture_logs() as logs:
            for _ in range(10):
                await tick()
                clock.advance(1)
    assert [("exc_info" in e) for e in logs] == [True, False, False]


# -- the commands ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["migrate"], ["worker"], ["keys", "rotate"]])
@pytest.mark.parametrize("where", ["unreachable", "missing-folder"])
def test_commands_name_the_database_they_cannot_use(
    tmp_path: Path, command: list[str], where: str
) -> None:
    """One line naming the database (password hidden) and what is wrong, exit code 1; no
    traceback and no "Event loop is closed" after it."""
    url, shown, problem = {
        "unreachable": (
            "postgresql://syncd:hunter2@127.0.0.1:1/syncd",
            "postgresql+asyncpg://syncd:***@127.0.0.1:1/syncd",
            "connection refused",
        ),
        "missing-folder": (
            f"sqlite:///{tmp_path}/gone/syncd.db",
            f"sqlite+aiosqlite:///{tmp_path}/gone/syncd.db",
            f"the folder {tmp_path}/gone does not exist",
        ),
    }[where]
    result = run(
        command,
        tmp_path,
        SYNCD_DATABASE_URL=url,
        SYNCD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"syncd: cannot use the database {shown}: ")
    assert problem in line
    assert "hunter2" not in result.stderr + result.stdout


def test_serve_on_a_read_only_database_is_unready_and_quiet(tmp_path: Path) -> None:
    """A real `syncd serve` on a read-only SQLite file with work waiting: /readyz is 503 with
    the reason, and the failing drain is logged once, then only per backed-off retry."""
    path = tmp_path / "syncd.db"
    asyncio.run(_migrate_with_a_due_task(f"sqlite+aiosqlite:///{path}"))
    port = free_port()
    process = subprocess.Popen(
        [*SYNCD, "serve"],
        cwd=tmp_path,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(
            {
                "SYNCD_DATABASE_URL": f"sqlite:///file:{path}?mode=ro&uri=true",
                "SYNCD_PORT": str(port),
                "SYNCD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                "XERO_CLIENT_ID": "syncd-test",  # so the worker has a handler and claims
            }
        ),
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        ready = _wait_for(lambda: _readyz(port), lambda r: r is not None and r.status_code == 503)
        assert ready is not None
        assert ready.json()["database"] == "not writable: attempt to write a readonly database"
        _wait_for(
            lambda: [line for line in lines if "scheduler.job_still_failing" in line],
            bool,
        )
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        process.kill()
        reader.join(timeout=10)
        process.stderr.close()  # type: ignore[union-attr]
    output = "".join(lines)
    assert "Traceback" not in output
    failed = [line for line in lines if "scheduler.job_failed" in line]
    assert len(failed) == 1 and "drain_outbox" in failed[0]
    assert len(output) < 10_000, output


def _readyz(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except httpx.TransportError:
        return None


def _wait_for(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 30) -> T:
    """Poll `probe` until `done` says yes (a condition, not a guess at how long it takes)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        time.sleep(0.05)
