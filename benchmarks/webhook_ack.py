"""Signed-webhook acknowledgement under 32 concurrent senders, every request a new event.

Runs `wrk` (1 thread, 32 connections, `--latency`) in interleaved rounds against:
  1. a bare Starlette endpoint that only reads the body (the baseline),
  2. syncd's webhook endpoint on SQLite (WAL, `synchronous=NORMAL`),
  3. syncd's webhook endpoint on PostgreSQL,
each one uvicorn worker (`syncd serve` for 2 and 3), sharing the machine's cores with `wrk`.
It prints, per target, requests/s and p50/p99 of the median round, the median over rounds of
the ratio to the baseline's requests/s in the same round, the server's CPU time per request
(all its threads) and the load average: figures from one run compare, figures from different
runs on a shared machine do not.

Every request is a new event: before each wrk run the script writes that run's correctly signed
CONTACT deliveries to a file (each with its own random resourceId and, from a counter, its own
eventDateUtc, so every dedupe key is new; 1.5 times as many as the fastest target could send),
and wrk's Lua script loads the file in `init`, before wrk's clock starts, and sends each one
once: no Python in the request loop. After each run the inbox rows the target stored are
counted, and the benchmark stops unless every 200 was a new row (rows added ≥ 200 answers, and
at most the requests still in flight more) — it measures stored events, not duplicates dropped.

`--web-processes 1,2` adds, per count N, a target of N `syncd serve` processes (each one uvicorn
worker, on a port of its own) sharing one PostgreSQL database, as N web replicas behind a load
balancer would; SQLite stays one process (one writer). The load is then sent by two `wrk`
processes of 16 connections each (together the same 32), each to one of the servers in turn,
for *every* target alike, so the figures compare; req/s is their sum and p99 the larger of
their two p99s. It prints the N-vs-1 throughput ratio (median over rounds of the ratio in the
same round) and each target's p99.

`--breakdown` adds two diagnostic targets: a plain ASGI endpoint that reads the body and checks
the signature with syncd's `verify` (signature checking alone), and `syncd serve` with the
inbox write replaced by a no-op (syncd's request path without the write). Figures and profiles:
docs/webhook-performance.md. Usage: `make benchmarks`, or `.venv/bin/python
benchmarks/webhook_ack.py [--seconds 6] [--rounds 5] [--skip-postgres] [--breakdown]
[--web-processes 1,2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from syncd.xero.webhooks import sign

KEY = "benchmark-webhook-key-0123456789"
CONNECTIONS = 32
SENDERS = 2  # wrk processes sharing the connections when targets have several servers
PATH = "/api/integrations/xero/webhook"
PG_ADMIN = os.environ.get("SYNCD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Bodies for one run: 1.5 times what the fastest target seen so far (the baseline) could use,
# so a syncd target never runs out, however much faster a run goes than the ones before it.
FIRST_GUESS_RPS = 30_000

BARE_APP = """
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

async def receive(request: Request) -> Response:
    await request.body()
    return Response(status_code=200)

app = Starlette(routes=[Route("/api/integrations/xero/webhook", receive, methods=["POST"])])
"""

VERIFY_APP = """
from starlette.applications import Starlette
from starlette.routing import Route
from syncd.xero.webhooks import verify

KEYS = [{key!r}]

class Receive:
    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        signatures = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-xero-signature"]
        status = 200 if verify(body, signatures, KEYS) else 401
        await send({{"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", b"0")]}})
        await send({{"type": "http.response.body", "body": b""}})

app = Starlette(routes=[Route("/api/integrations/xero/webhook", Receive())])
"""

# syncd serve with the inbox write skipped: what the rest of the request path costs.
NO_WRITE_APP = """
import sys
from syncd.cli import main
from syncd.pipeline.inbox import InboxWriter

async def skip(self, rows):
    return None

InboxWriter.write = skip
sys.exit(main(["serve"]))
"""

# Loads one run's prepared requests in `init` (before wrk starts its clock) and sends each
# once. Past the end it starts over, which only a too-short file causes; the row check then
# fails the run, since repeated bodies are duplicates.
LUA = """
local requests = {}
local count = 0
local i = 0
init = function(args)
  for line in io.lines(args[1]) do
    local space = string.find(line, " ", 1, true)
    count = count + 1
    requests[count] = wrk.format("POST", "PATH", {
      ["Content-Type"] = "application/json; charset=utf-8",
      ["x-xero-signature"] = string.sub(line, 1, space - 1),
    }, string.sub(line, space + 1))
  end
end
request = function()
  i = i + 1
  if i > count then i = 1 end
  return requests[i]
end
""".replace("PATH", PATH)

TEMPLATE = (
    '{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/Contacts/%(r)s",'
    '"resourceId":"%(r)s","eventDateUtc":"%(d)s","eventType":"UPDATE","eventCategory":"CONTACT",'
    '"tenantId":"%(t)s","tenantType":"ORGANISATION"}],"firstEventSequence":%(n)d,'
    '"lastEventSequence":%(n)d,"entropy":"BENCHMARKENTROPYXYZ"}'
)


class Deliveries:
    """New signed deliveries, each with its own resourceId (random, as Xero's are, so the
    dedupe index is written all over rather than appended to) and eventDateUtc."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tenant = str(uuid.uuid4())
        self.start = datetime(2026, 11, 25, 1, 15, 39, 902000, tzinfo=UTC)
        self.issued = 0
        self._key = KEY.encode()

    def write(self, count: int) -> Path:
        path = self.folder / f"deliveries-{self.issued}.txt"
        lines = []
        for n in range(self.issued, self.issued + count):
            when = self.start + timedelta(milliseconds=n)
            body = TEMPLATE % {
                "r": str(uuid.uuid4()),
                "d": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}",
                "t": self.tenant,
                "n": n + 1,
            }
            digest = hmac.digest(self._key, body.encode(), hashlib.sha256)
            lines.append(f"{base64.b64encode(digest).decode()} {body}\n")
        self.issued += count
        path.write_text("".join(lines))
        return path


def check_signing(folder: Path) -> None:
    """The file's signatures are what syncd's own `sign` computes (they are real)."""
    sample = Deliveries(folder)
    path = sample.write(3)
    for line in path.read_text().splitlines():
        signature, body = line.split(" ", 1)
        assert sign(body.encode(), KEY) == signature
    path.unlink()


@dataclass
class Target:
    label: str
    ports: list[int]  # one per server process
    processes: list[subprocess.Popen[bytes]]
    count_rows: Callable[[], int] | None = None  # None: stores nothing (the references)
    rounds: list[dict[str, float]] = field(default_factory=list)


def wait_for(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {url} did not start")


def wrk_argv(port: int, script: Path, data: Path, seconds: int, connections: int) -> list[str]:
    return [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
        "--",
        str(data),
    ]


def run_wrk(port: int, script: Path, data: Path, seconds: int) -> dict[str, float]:
    argv = wrk_argv(port, script, data, seconds, CONNECTIONS)
    return parse_wrk(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def run_wrks(ports: list[int], script: Path, data: list[Path], seconds: int) -> dict[str, float]:
    """SENDERS wrk processes at once, CONNECTIONS between them, sender i to ports[i % n]:
    requests/s and answers summed, p50 the mean and p99 the larger of theirs."""
    senders = [
        subprocess.Popen(
            wrk_argv(ports[i % len(ports)], script, data[i], seconds, CONNECTIONS // SENDERS),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(SENDERS)
    ]
    rows = []
    for sender in senders:
        out, err = sender.communicate()
        if sender.returncode != 0:
            raise SystemExit(f"wrk failed ({sender.returncode}): {err}")
        rows.append(parse_wrk(out))
    return {
        "rps": sum(r["rps"] for r in rows),
        "ok": sum(r["ok"] for r in rows),
        "p50": statistics.fmean(r["p50"] for r in rows),
        "p99": max(r["p99"] for r in rows),
        "errors": sum(r["errors"] for r in rows),
        "socket_errors": sum(r["socket_errors"] for r in rows),
        "load": os.getloadavg()[0],
    }


def parse_wrk(out: str) -> dict[str, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def percentile(name: str) -> float:
        match = re.search(rf"{name}%\s+([\d.]+)(us|ms|s)", out)
        if match is None:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "ok": float(total - (int(non_2xx.group(1)) if non_2xx else 0)),
        "p50": percentile("50"),
        "p99": percentile("99"),
        "errors": float(int(non_2xx.group(1)) if non_2xx else 0),
        "socket_errors": float(sum(int(g) for g in errors.groups()) if errors else 0),
        "load": os.getloadavg()[0],
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    target: Target,
    script: Path,
    deliveries: Deliveries,
    seconds: int,
    fastest: float,
    *,
    split: bool = False,
) -> dict[str, float]:
    """One wrk run on new deliveries (`split`: SENDERS wrk processes, see run_wrks); for a
    storing target, check every 200 was a new row."""
    senders = SENDERS if split else 1
    files = [deliveries.write(int(fastest * seconds * 1.5 / senders)) for _ in range(senders)]
    before = target.count_rows() if target.count_rows else 0
    cpu = sum(cpu_seconds(process.pid) for process in target.processes)
    if split:
        row = run_wrks(target.ports, script, files, seconds)
    else:
        row = run_wrk(target.ports[0], script, files[0], seconds)
    used = sum(cpu_seconds(process.pid) for process in target.processes) - cpu
    row["cpu_us"] = used / max(row["ok"], 1) * 1e6
    for data in files:
        data.unlink()
    if target.count_rows is not None:
        time.sleep(0.5)  # requests wrk gave up on at its deadline may still be committing
        added = target.count_rows() - before
        row["stored"] = float(added)
        ok = int(row["ok"])
        if not ok <= added <= ok + CONNECTIONS + int(row["socket_errors"]):
            raise SystemExit(
                f"{target.label}: {ok} answers 200 but {added} new rows — the run did not "
                "measure new events (too few prepared bodies, or acknowledged events not stored)"
            )
    return row


def serve(argv: list[str], env: dict[str, str], ready: str, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a server (its stderr in `cwd/server-<port>.log`) and wait until `ready` answers."""
    log = (cwd / f"server-{ready.split(':')[2].split('/')[0]}.log").open("wb")
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for(ready)
    except BaseException:
        stop(process)
        sys.stderr.write(Path(log.name).read_text()[-4000:])
        raise
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


async def _pg(dsn: str, sql: str) -> int:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval(sql) or 0)
    finally:
        await connection.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def syncd_env(url: str, port: int, base_env: dict[str, str]) -> dict[str, str]:
    return {
        **base_env,
        "SYNCD_DATABASE_URL": url,
        "SYNCD_PORT": str(port),
        "SYNCD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "XERO_WEBHOOK_KEY": KEY,
        "SYNCD_EMBEDDED_SCHEDULER": "off",
        "SYNCD_LOG_LEVEL": "warning",
        "SYNCD_LOG_FORMAT": "json",
    }


def row_counter(url: str, work: Path) -> Callable[[], int]:
    """How many inbox rows the target's database holds."""
    if url.startswith("sqlite"):
        path = work / url.rsplit("/", 1)[1]

        def count_sqlite() -> int:
            with contextlib.closing(sqlite3.connect(path)) as connection:
                return int(connection.execute("SELECT count(*) FROM inbox_events").fetchone()[0])

        return count_sqlite

    def count_pg() -> int:
        return asyncio.run(_pg(url, "SELECT count(*) FROM inbox_events"))

    return count_pg


def report(targets: list[Target], seconds: int, *, split: bool) -> None:
    baseline = targets[0]
    senders = (
        f"{SENDERS} x wrk -t1 -c{CONNECTIONS // SENDERS}" if split else f"wrk -t1 -c{CONNECTIONS}"
    )
    print(
        f"\nSigned webhook acknowledgement, new events only: {senders} -d{seconds}s,"
        f" one uvicorn worker per server process, {len(baseline.rounds)} interleaved rounds"
        f" ({os.cpu_count()} CPUs)"
    )
    print(
        f"{'target':<26}{'req/s':>8}{'ratio':>7}{'p50 ms':>8}{'p99 ms':>8}{'cpu µs':>8}"
        f"{'non-2xx':>8}{'stored':>9}{'load':>6}"
    )
    for target in targets:
        rows = target.rounds
        median = sorted(rows, key=lambda row: row["rps"])[len(rows) // 2]
        ratio = statistics.median(
            row["rps"] / base["rps"] for row, base in zip(rows, baseline.rounds, strict=True)
        )
        stored = sum(row.get("stored", 0) for row in rows)
        print(
            f"{target.label:<26}{median['rps']:>8.0f}{ratio:>7.0%}{median['p50']:>8.2f}"
            f"{median['p99']:>8.2f}{statistics.median(r['cpu_us'] for r in rows):>8.1f}"
            f"{sum(r['errors'] for r in rows):>8.0f}"
            f"{stored if target.count_rows else '':>9}"
            f"{statistics.mean(row['load'] for row in rows):>6.2f}"
        )
    print(
        "req/s, p50, p99: the median round's; ratio: median over rounds of req/s over the\n"
        "baseline's in the same round; cpu µs: the server's CPU time per answered request\n"
        "(median round); non-2xx: over all rounds; stored: new inbox rows over all rounds, each\n"
        "run checked to be ≥ its 200s; load: mean 1-minute load average after each run.\n"
        "Aims (issue 12): SQLite ≥ 50%, PostgreSQL ≥ 45% of the baseline, p99 ≤ 25 ms."
    )
    scaled = [t for t in targets if len(t.processes) > 1]
    single = next((t for t in targets if t.label == pg_label(1)), None)
    for target in scaled if single is not None else []:
        assert single is not None
        ratio = statistics.median(
            row["rps"] / one["rps"] for row, one in zip(target.rounds, single.rounds, strict=True)
        )
        print(
            f"{len(target.processes)} web processes vs 1 (PostgreSQL): throughput x{ratio:.2f}"
            f" (median over rounds, same round); p99 {median_of(target, 'p99'):.2f} ms vs"
            f" {median_of(single, 'p99'):.2f} ms (medians over rounds)"
        )


def median_of(target: Target, key: str) -> float:
    return statistics.median(row[key] for row in target.rounds)


def pg_label(processes: int) -> str:
    return "syncd on PostgreSQL" + (f" x{processes}" if processes > 1 else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="add signature checking alone, and syncd without the inbox write",
    )
    parser.add_argument(
        "--web-processes",
        default="",
        help="syncd serve processes on PostgreSQL to compare, e.g. 1,2 (load from 2 wrk each)",
    )
    args = parser.parse_args()
    web_processes = sorted({int(n) for n in args.web_processes.split(",") if n.strip()})
    split = bool(web_processes)
    if split and args.skip_postgres:
        raise SystemExit("--web-processes needs PostgreSQL (SQLite is one writer, one process)")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (make benchmarks does it)")
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    check_signing(work)
    deliveries = Deliveries(work)
    script = work / "deliveries.lua"
    script.write_text(LUA)
    (work / "bare_app.py").write_text(BARE_APP)
    (work / "verify_app.py").write_text(VERIFY_APP.format(key=KEY))
    (work / "no_write.py").write_text(NO_WRITE_APP)
    python = sys.executable
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "XERO_"))}
    uvicorn_flags = ["--no-access-log", "--log-level", "warning", "--workers", "1"]
    pg_name = f"syncd_bench_{uuid.uuid4().hex[:8]}"
    pg_admin = PG_ADMIN.replace("+asyncpg", "")
    pg_url = pg_admin.rsplit("/", 1)[0] + f"/{pg_name}"

    # (label, command or app module, database URL for syncd, stores rows, server processes)
    plan: list[tuple[str, list[str] | str, str | None, bool, int]] = [
        ("bare Starlette (baseline)", "bare_app:app", None, False, 1)
    ]
    if args.breakdown:
        plan.append(("verify only, no write", "verify_app:app", None, False, 1))
        no_write = [python, str(work / "no_write.py")]
        plan.append(("syncd, write skipped", no_write, f"sqlite:///{work / 'skip.db'}", False, 1))
    serve_cmd = [python, "-m", "syncd", "serve"]
    plan.append(("syncd on SQLite", serve_cmd, f"sqlite:///{work / 'bench.db'}", True, 1))
    if not args.skip_postgres:
        for processes in web_processes or [1]:
            plan.append((pg_label(processes), serve_cmd, pg_url, True, processes))

    targets: list[Target] = []
    try:
        if not args.skip_postgres:
            asyncio.run(_pg(pg_admin, f'CREATE DATABASE "{pg_name}"'))
        migrated: set[str] = set()
        for label, command, url, stores, processes in plan:
            if url is None:
                port = free_port()
                argv = [python, "-m", "uvicorn", str(command), "--port", str(port), *uvicorn_flags]
                process = serve(argv, base_env, f"http://127.0.0.1:{port}{PATH}", work)
                targets.append(Target(label, [port], [process]))
                continue
            target = Target(label, [], [], row_counter(url, work) if stores else None)
            targets.append(target)
            for _ in range(processes):
                port = free_port()
                env = syncd_env(url, port, base_env)
                if url not in migrated:
                    migrate = [python, "-m", "syncd", "migrate"]
                    subprocess.run(migrate, env=env, check=True, capture_output=True, cwd=work)
                    migrated.add(url)
                assert isinstance(command, list)
                target.processes.append(
                    serve(command, env, f"http://127.0.0.1:{port}/healthz", work)
                )
                target.ports.append(port)
        fastest = float(FIRST_GUESS_RPS)
        for target in targets:  # warm-up
            warm = measure(target, script, deliveries, 2, fastest, split=split)
            fastest = max(fastest, warm["rps"])
        # Interleave the targets round by round, so that a noisy neighbour or a CPU-frequency
        # change affects all of them alike.
        for number in range(args.rounds):
            for target in targets:
                target.rounds.append(
                    measure(target, script, deliveries, args.seconds, fastest, split=split)
                )
                fastest = max(fastest, target.rounds[-1]["rps"])
            print(
                f"round {number + 1}/{args.rounds}: "
                + ", ".join(
                    f"{t.label.split(' (')[0]} {t.rounds[-1]['rps']:.0f}/s" for t in targets
                )
                + f"; load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    finally:
        for target in targets:
            for process in target.processes:
                stop(process)
        if not args.skip_postgres:
            with contextlib.suppress(OSError):
                asyncio.run(_pg(pg_admin, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        shutil.rmtree(work, ignore_errors=True)
    report(targets, args.seconds, split=split)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
