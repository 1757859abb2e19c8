"""`syncd serve`'s HTTP limits, with real sockets against a real process: a client slow to send
its headers or its body is cut off within the timeout while others are served, idle keep-alive
connections are closed, and past the concurrency limit a new request gets 503 at once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import free_port
from tests.e2e.test_cli import SYNCD, _env, run

# Short limits, set through the settings as an operator would.
TIMEOUT = 1
# How long a test waits for the server to act before it fails: a bound on a hang, not a speed.
PATIENCE = 15


@dataclass
class Server:
    port: int
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logged(self, event: str) -> list[str]:
        return [line for line in self.lines if f'"{event}"' in line]


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("limits")
    result = run(["migrate"], folder, SYNCD_DATABASE_URL=f"sqlite:///{folder / 'syncd.db'}")
    assert result.returncode == 0, result.stderr
    return folder


def serve(folder: Path, **settings: str) -> Iterator[Server]:
    port = free_port()
    process = subprocess.Popen(
        [*SYNCD, "serve"],
        cwd=folder,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(
            {
                "SYNCD_DATABASE_URL": f"sqlite:///{folder / 'syncd.db'}",
                "SYNCD_PORT": str(port),
                "SYNCD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                "XERO_WEBHOOK_KEY": "test-only-webhook-key-not-a-real-secret",
                # So that /api/crm/events reads bodies (the CRM itself is never reached).
                "SYNCD_CRM_WEBHOOK_SECRET": "whsec_c3luY2QtY3JtLXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3",
                "SYNCD_CRM_DATABASE_URL": f"sqlite:///{folder / 'crm.db'}",
                **settings,
            }
        ),
    )
    server = Server(port, process)
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: server.lines.extend(iter(process.stderr.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        wait_until(lambda: _status(server, "/readyz") == 200)
        yield server
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        process.kill()
        reader.join(timeout=10)
        process.stderr.close()


@pytest.fixture(scope="module")
def server(migrated: Path) -> Iterator[Server]:
    """Every timeout at one second; room for plenty of connections."""
    yield from serve(
        migrated,
        SYNCD_HTTP_HEADER_TIMEOUT_SECONDS=str(TIMEOUT),
        SYNCD_HTTP_BODY_TIMEOUT_SECONDS=str(TIMEOUT),
        SYNCD_HTTP_KEEPALIVE_SECONDS=str(TIMEOUT),
    )


@pytest.fixture
def crowded(migrated: Path) -> Iterator[Server]:
    """Room for three connections; slow senders are not cut off during the test."""
    yield from serve(
        migrated,
        SYNCD_HTTP_MAX_CONCURRENCY="3",
        SYNCD_HTTP_HEADER_TIMEOUT_SECONDS="60",
        SYNCD_HTTP_KEEPALIVE_SECONDS="60",
    )


def _status(server: Server, path: str) -> int | None:
    try:
        return httpx.get(server.url + path, timeout=2).status_code
    except httpx.TransportError:
        return None


def wait_until(condition: object, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(0.05)


async def eventually(probe: Callable[[], Awaitable[int]], wanted: int) -> None:
    """Ask again until the answer is `wanted` (fails after PATIENCE)."""
    async with asyncio.timeout(PATIENCE):
        while True:
            if await probe() == wanted:
                return
            await asyncio.sleep(0.05)


async def trickle(writer: asyncio.StreamWriter, piece: bytes, stop: asyncio.Event) -> None:
    """Send `piece` five times a second until told to stop or the server hangs up."""
    try:
        while not stop.is_set():
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.2)
    except (ConnectionError, OSError):
        pass


async def cut_off(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (or PATIENCE runs out)."""
    async with asyncio.timeout(PATIENCE):
        try:
            return await reader.read()
        except ConnectionResetError:
            return b""


async def test_a_slow_header_sender_is_cut_off_while_others_are_served(server: Server) -> None:
    """Headers trickled a line at a time: 408 and the connection closed after the header
    timeout; meanwhile normal requests are answered at once."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: syncd\r\n")
    stop = asyncio.Event()
    sending = asyncio.create_task(trickle(writer, b"X-Slow: yes\r\n", stop))
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=server.url) as client:
        for _ in range(3):
            assert (await client.get("/healthz")).status_code == 200
    assert not reader.at_eof()  # the slow one is still being listened to
    answer = await cut_off(reader)
    elapsed = time.monotonic() - started
    stop.set()
    await sending
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert elapsed >= TIMEOUT * 0.9  # not before the timeout...
    assert elapsed < PATIENCE  # ...and not never (the trickle alone would go on for ever)
    wait_until(lambda: server.logged("http.header_timeout"))


async def test_a_connection_that_sends_nothing_is_closed_silently(server: Server) -> None:
    """An idle new connection holds a slot only until the header timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await cut_off(reader) == b""
    writer.close()


@pytest.mark.parametrize(
    "path",
    ["/api/integrations/xero/webhook", "/api/crm/events"],
    ids=["plain-asgi-endpoint", "starlette-endpoint"],
)
async def test_a_slow_body_sender_gets_408_while_others_are_served(
    server: Server, path: str
) -> None:
    """Headers at once, then the body a byte at a time: 408 after the body timeout, however
    steadily the bytes keep coming; the endpoint that was reading sees a disconnect, logged in
    one line, not a traceback."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: syncd\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    stop = asyncio.Event()
    sending = asyncio.create_task(trickle(writer, b" ", stop))
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/healthz")).status_code == 200
        normal = await client.post(path, content=b"{}")
        assert normal.status_code == 401  # read in full and judged, not timed out
    answer = await cut_off(reader)
    stop.set()
    await sending
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()
    assert answer.endswith(b"the request body took too long to arrive")
    wait_until(lambda: server.logged("http.body_timeout"))
    if path == "/api/crm/events":  # Starlette's reader raises ClientDisconnect: one line
        wait_until(lambda: server.logged("web.client_disconnected"))
    assert not server.logged("web.unhandled_error")
    assert not [line for line in server.lines if "Traceback" in line]


async def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    """After a response, a kept-alive connection that stays quiet is closed by the server."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: syncd\r\n\r\n")
    await writer.drain()
    answer = await cut_off(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")  # answered, then closed when idle


async def test_past_the_concurrency_limit_new_requests_get_503(crowded: Server) -> None:
    """With every slot held, a new request is refused with 503 at once rather than queued;
    once the slots are free it is served again."""
    held = []
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", crowded.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: syncd\r\n")  # headers never finished
        await writer.drain()
        held.append((reader, writer))
    async with httpx.AsyncClient(base_url=crowded.url) as client:

        async def answered() -> int:
            status = (await client.get("/healthz", headers={"connection": "close"})).status_code
            assert status in (200, 503)
            return status

        await eventually(answered, 503)
        for _, writer in held:
            writer.close()
            await writer.wait_closed()
        await eventually(answered, 200)
    wait_until(lambda: any("Exceeded concurrency limit" in line for line in crowded.lines))
