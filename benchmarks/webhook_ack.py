"""Signed-webhook acknowledgement: throughput and p99 under 32 concurrent senders.

Runs, in one go and on this machine, `wrk` (1 thread, 32 connections) against:
  1. a bare Starlette endpoint that only reads the body (the baseline),
  2. syncd's webhook endpoint on SQLite,
  3. syncd's webhook endpoint on PostgreSQL,
each served by one uvicorn worker, and prints requests/s, p50/p99 latency and the ratio to the
baseline. Bodies are distinct, correctly signed CONTACT deliveries, so every request verifies,
parses and durably stores an event. Usage: `make benchmarks` or
`.venv/bin/python benchmarks/webhook_ack.py [--seconds 10] [--skip-postgres]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from syncd.xero.webhooks import sign

KEY = "benchmark-webhook-key-0123456789"
BODIES = 2000
PG_ADMIN = os.environ.get("SYNCD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

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


def bodies() -> list[tuple[str, str]]:
    tenant = str(uuid.uuid4())
    out = []
    for _ in range(BODIES):
        resource = str(uuid.uuid4())
        body = json.dumps(
            {
                "events": [
                    {
                        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{resource}",
                        "resourceId": resource,
                        "eventDateUtc": "2026-11-25T01:15:39.902",
                        "eventType": "UPDATE",
                        "eventCategory": "CONTACT",
                        "tenantId": tenant,
                        "tenantType": "ORGANISATION",
                    }
                ],
                "firstEventSequence": 1,
                "lastEventSequence": 1,
                "entropy": "BENCHMARKENTROPYXYZ",
            },
            separators=(",", ":"),
        )
        out.append((body, sign(body.encode(), KEY)))
    return out


def lua_script(pairs: list[tuple[str, str]], path: Path) -> None:
    def quote(text: str) -> str:
        return "[==[" + text + "]==]"

    lines = ["local bodies = {", *(f"  {{{quote(b)}, {quote(s)}}}," for b, s in pairs), "}"]
    lines += [
        "local i = 0",
        "request = function()",
        "  i = i % #bodies + 1",
        "  local pair = bodies[i]",
        '  return wrk.format("POST", "/api/integrations/xero/webhook", '
        '{["Content-Type"] = "application/json; charset=utf-8", '
        '["x-xero-signature"] = pair[2]}, pair[1])',
        "end",
    ]
    path.write_text("\n".join(lines))


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {url} did not start")


def run_wrk(port: int, script: Path, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c32",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(name: str) -> float:
        match = re.search(rf"{name}%\s+([\d.]+)(us|ms|s)", out)
        if match is None:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": percentile("50"),
        "p99": percentile("99"),
        "errors": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def serve(argv: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


async def _create_pg(name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN.replace("+asyncpg", ""))
    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median kept)")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (make benchmarks does it)")
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    script = work / "deliveries.lua"
    lua_script(bodies(), script)
    (work / "bare_app.py").write_text(BARE_APP)
    python = sys.executable
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "XERO_"))}
    uvicorn_flags = ["--no-access-log", "--log-level", "warning", "--workers", "1"]

    targets: list[tuple[str, str | None]] = [("bare Starlette (baseline)", None)]
    targets.append(("syncd on SQLite", f"sqlite:///{work / 'bench.db'}"))
    if not args.skip_postgres:
        name = f"syncd_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(_create_pg(name))
        targets.append(("syncd on PostgreSQL", PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"))

    servers: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    try:
        for label, url in targets:
            port = free_port()
            if url is None:
                process = subprocess.Popen(
                    [python, "-m", "uvicorn", "bare_app:app", "--port", str(port), *uvicorn_flags],
                    cwd=work,
                    env=base_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                wait_for(f"http://127.0.0.1:{port}/api/integrations/xero/webhook")
            else:
                env = {
                    **base_env,
                    "SYNCD_DATABASE_URL": url,
                    "SYNCD_PORT": str(port),
                    "SYNCD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                    "XERO_WEBHOOK_KEY": KEY,
                    "SYNCD_EMBEDDED_SCHEDULER": "off",
                    "SYNCD_LOG_LEVEL": "warning",
                    "SYNCD_LOG_FORMAT": "json",
                }
                subprocess.run(
                    [python, "-m", "syncd", "migrate"],
                    env=env,
                    check=True,
                    capture_output=True,
                    cwd=work,
                )
                process = serve([python, "-m", "syncd", "serve"], env, port)
            servers[label] = (port, process)
            run_wrk(port, script, 2)  # warm-up
        # Interleave the targets round by round, so that a noisy neighbour or a CPU-frequency
        # change affects all of them alike; report each target's median round.
        rounds: dict[str, list[dict[str, float]]] = {label: [] for label, _ in targets}
        for number in range(args.rounds):
            for label, _ in targets:
                rounds[label].append(run_wrk(servers[label][0], script, args.seconds))
            print(
                f"round {number + 1}/{args.rounds}: "
                + ", ".join(
                    f"{label.split(' (')[0]} {rounds[label][-1]['rps']:.0f}/s"
                    for label, _ in targets
                ),
                flush=True,
            )
    finally:
        for _, process in servers.values():
            stop(process)
    results = {
        label: sorted(rows, key=lambda row: row["rps"])[len(rows) // 2]
        for label, rows in rounds.items()
    }

    baseline = results["bare Starlette (baseline)"]["rps"]
    print(
        f"\nSigned webhook acknowledgement, wrk -t1 -c32 -d{args.seconds}s, one uvicorn worker,"
        f" median of {args.rounds} interleaved rounds"
    )
    print(f"{'target':<28}{'req/s':>10}{'ratio':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for label, row in results.items():
        print(
            f"{label:<28}{row['rps']:>10.0f}{row['rps'] / baseline:>9.0%}"
            f"{row['p50']:>9.2f}{row['p99']:>9.2f}{row['errors']:>9.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
