"""Real syncd processes on one database, for the drain and multi-replica tests: the Xero sandbox
(`syncd sandbox`), `syncd serve` and `syncd worker` processes started as a deployment starts them
(environment only; tests/chaos/processes.py), practices connected through syncd's connect flow
(tests/chaos/world.py), and signed Xero webhooks posted to a web process.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from syncd.sandbox.events import sign
from syncd.settings import Settings, load_settings
from syncd.store.db import Database
from tests.chaos.processes import Child, process_env, run_to_end, spawn
from tests.chaos.sandbox import (
    REDIRECT_URI,
    WEBHOOK_KEY,
    Sandbox,
    start_sandbox,
    syncd_env,
)
from tests.chaos.world import Practice, connect_all, leave_findings_to_admins, seed_crm
from tests.conftest import free_port

WEBHOOK = "/api/integrations/xero/webhook"
READY_WITHIN = 90  # seconds for a `syncd serve` to answer /readyz (10 s seen on a busy machine)
# Xero's own limits per tenant (the app's: 10,000 a minute), for the sandbox to enforce.
XERO_LIMITS = {"per_minute": 60, "per_day": 5000, "concurrent": 5, "app_per_minute": 10_000}


@dataclass(slots=True, kw_only=True)
class Deployment:
    """A migrated syncd database, the sandbox, and the environment every syncd process gets."""

    env: dict[str, str]
    settings: Settings
    sandbox: Sandbox
    workdir: Path
    syncd_url: str
    crm_url: str
    practices: list[Practice]

    async def worker(self, name: str) -> Child:
        return await spawn(name, ["worker"], env=self.env, workdir=self.workdir)

    async def serve(self, name: str) -> tuple[Child, str]:
        """A `syncd serve` on a free port, once it answers /readyz; (process, base URL)."""
        return await start_serve(name, env=self.env, workdir=self.workdir)


async def deploy(
    stack: AsyncExitStack,
    *,
    syncd_url: str,
    crm_url: str,
    workdir: Path,
    practices: int,
    requests_per_practice: int,
    rng: random.Random,
    tuning: Mapping[str, str],
) -> Deployment:
    """Start the sandbox, migrate syncd's database, seed the CRM and connect each practice to a
    Xero Projects organisation of its own (automatic healing off: whatever reaches Xero got there
    through the pipeline under test)."""
    sandbox = await start_sandbox(
        process_env({"SYNCD_LOG_FORMAT": "json"}), workdir, redirect_uri=REDIRECT_URI
    )
    stack.push_async_callback(sandbox.close)
    env = syncd_env(
        sandbox,
        syncd_url=syncd_url,
        crm_url=crm_url,
        extra={"XERO_WEBHOOK_KEY": WEBHOOK_KEY, **tuning},
    )
    settings = load_settings(env, env_file=None)
    await run_to_end("migrate", ["migrate"], env=env, workdir=workdir)
    seeded = await seed_crm(
        crm_url, practices=practices, requests_per_practice=requests_per_practice, rng=rng
    )
    connected = await connect_all(settings, sandbox, seeded)
    admin = Database(syncd_url)
    try:
        await leave_findings_to_admins(admin, connected)
    finally:
        await admin.dispose()
    return Deployment(
        env=env,
        settings=settings,
        sandbox=sandbox,
        workdir=workdir,
        syncd_url=syncd_url,
        crm_url=crm_url,
        practices=connected,
    )


async def start_serve(name: str, *, env: Mapping[str, str], workdir: Path) -> tuple[Child, str]:
    port = free_port()
    child = await spawn(name, ["serve", "--port", str(port)], env=env, workdir=workdir)
    url = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_WITHIN
    async with httpx.AsyncClient(timeout=5) as client:
        while loop.time() < deadline:
            if child.exited:
                raise AssertionError(f"{name} exited early:\n{child.tail()}")
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return child, url
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    await child.kill()
    raise AssertionError(f"{name} not ready within {READY_WITHIN} s:\n{child.tail()}")


def contact_event(tenant_id: str, contact_id: str, *, at: datetime | None = None) -> dict[str, Any]:
    """A Xero CONTACT UPDATE event (its date makes it a distinct event: Xero names no id)."""
    moment = at or datetime.now(UTC)
    return {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{contact_id}",
        "resourceId": contact_id,
        "tenantId": tenant_id,
        "tenantType": "ORGANISATION",
        "eventCategory": "CONTACT",
        "eventType": "UPDATE",
        "eventDateUtc": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
    }


def delivery(events: list[dict[str, Any]], sequence: int) -> bytes:
    body = {
        "events": events,
        "firstEventSequence": sequence,
        "lastEventSequence": sequence,
        "entropy": uuid.uuid4().hex[:20].upper(),
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def post_webhook(client: httpx.AsyncClient, base: str, body: bytes) -> httpx.Response:
    """POST a delivery signed with the webhook key the processes were given."""
    return await client.post(
        f"{base}{WEBHOOK}",
        content=body,
        headers={"x-xero-signature": sign(WEBHOOK_KEY, body), "content-type": "application/json"},
    )


def dedupe_key(event: Mapping[str, Any]) -> str:
    """The inbox's key for an event posted by `contact_event` (syncd.xero.webhooks)."""
    at = datetime.fromisoformat(str(event["eventDateUtc"])).replace(tzinfo=UTC)
    return (
        f"{event['eventCategory']}:{event['eventType']}:{event['resourceId']}:"
        f"{at.isoformat(timespec='milliseconds')}"
    )


def logged(child: Child, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of `child` naming `event`."""
    found = []
    for line in child.log.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


async def wait_for(
    condition: Any, *, within: float, what: str, poll: float = 0.1, context: Any = None
) -> Any:
    """Poll the async `condition` until it returns something truthy; fail after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await condition()
        if value:
            return value
        if loop.time() > deadline:
            extra = context() if callable(context) else ""
            raise AssertionError(f"not within {within:.0f} s: {what}\n{extra}")
        await asyncio.sleep(poll)


async def set_sandbox(sandbox: Sandbox, path: str, body: Mapping[str, Any]) -> None:
    answer = await sandbox.control.put(f"/_sandbox{path}", json=dict(body))
    assert answer.is_success, f"PUT /_sandbox{path}: {answer.status_code} {answer.text}"
