"""The Xero sandbox as a separate process (`syncd sandbox`), steered and read through its control
API under /_sandbox/: limits, faults, tenants (organisations or practices), consent, projects and
contacts (Xero Projects), jobs and clients (Practice Manager), checks, the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.chaos.processes import Child, process_env, spawn
from tests.conftest import free_port

CLIENT_ID = "syncd-chaos-app"
CLIENT_SECRET = "chaos-client-secret-0123456789abcdef"
WEBHOOK_KEY = "chaos-webhook-key-not-a-real-secret"
# Far above anything the burst needs: this test is about crashes, not rate limits.
UNLIMITED = {"per_minute": 1_000_000, "per_day": 10_000_000, "concurrent": 1_000}


@dataclass(slots=True)
class Sandbox:
    child: Child
    url: str
    control: httpx.AsyncClient

    async def close(self) -> None:
        await self.control.aclose()
        await self.child.kill()

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        answer = await self.control.request(method, f"/_sandbox{path}", json=body)
        assert answer.is_success, f"{method} /_sandbox{path}: {answer.status_code} {answer.text}"
        return answer.json()

    async def set_limits(self, **limits: int) -> None:
        await self._json("PUT", "/limits", {**limits, "app_per_minute": limits["per_minute"]})

    async def disable_webhooks(self) -> None:
        await self._json("PUT", "/faults", {"webhooks_enabled": False})

    async def add_tenant(self, name: str, *, tenant_type: str = "ORGANISATION") -> str:
        """A new organisation (ORGANISATION) or practice (PRACTICEMANAGER)."""
        body = {"name": name, "tenant_type": tenant_type}
        tenant: dict[str, Any] = await self._json("POST", "/tenants", body)
        return str(tenant["tenant_id"])

    async def consent_to(self, tenant_id: str) -> None:
        """The next authorize consents to this tenant only."""
        await self._json("PUT", "/consent", {"tenant_ids": [tenant_id]})

    async def projects(self, tenant_id: str) -> list[dict[str, Any]]:
        return list(await self._json("GET", f"/tenants/{tenant_id}/projects"))

    async def contacts(self, tenant_id: str) -> list[dict[str, Any]]:
        return list(await self._json("GET", f"/tenants/{tenant_id}/contacts"))

    async def jobs(self, tenant_id: str) -> list[dict[str, Any]]:
        """A practice's Practice Manager jobs (XPM's element names: ID, UUID, ClientUUID, …)."""
        return list(await self._json("GET", f"/tenants/{tenant_id}/jobs"))

    async def clients(self, tenant_id: str) -> list[dict[str, Any]]:
        """A practice's Practice Manager clients."""
        return list(await self._json("GET", f"/tenants/{tenant_id}/clients"))

    async def checks(self, tenant_id: str) -> dict[str, Any]:
        return dict(await self._json("GET", f"/tenants/{tenant_id}/checks"))

    async def ledger(self) -> list[dict[str, Any]]:
        return list((await self._json("GET", "/ledger"))["entries"])


async def start_sandbox(env: Mapping[str, str], workdir: Path, *, redirect_uri: str) -> Sandbox:
    """`syncd sandbox` on a free port, answering its control API; webhooks go nowhere."""
    port = free_port()
    child = await spawn(
        "sandbox",
        [
            "sandbox",
            "--port",
            str(port),
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--redirect-uri",
            redirect_uri,
            "--webhook-key",
            WEBHOOK_KEY,
            # A port nothing listens on; webhooks are switched off below as well.
            "--webhook-url",
            f"http://127.0.0.1:{free_port()}/webhook",
        ],
        env=env,
        workdir=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    control = httpx.AsyncClient(base_url=url, timeout=30)
    sandbox = Sandbox(child=child, url=url, control=control)
    try:
        await _wait_ready(sandbox)
        await sandbox.set_limits(**UNLIMITED)
        await sandbox.disable_webhooks()
    except BaseException:
        await sandbox.close()
        raise
    return sandbox


async def _wait_ready(sandbox: Sandbox, within: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if sandbox.child.exited:
            raise AssertionError(f"the sandbox exited early:\n{sandbox.child.tail()}")
        try:
            if (await sandbox.control.get("/_sandbox/limits")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"the sandbox did not answer within {within}s:\n{sandbox.child.tail()}")


REDIRECT_URI = "http://syncd.invalid/api/integrations/xero/callback"  # never followed


def syncd_env(
    sandbox: Sandbox, *, syncd_url: str, crm_url: str, extra: Mapping[str, str]
) -> dict[str, str]:
    """The environment of syncd processes pointed at `sandbox` and the two databases, with a
    fresh encryption key and JSON logs; `extra` adds or overrides settings."""
    from cryptography.fernet import Fernet

    return process_env(
        {
            "SYNCD_DATABASE_URL": syncd_url,
            "SYNCD_CRM_DATABASE_URL": crm_url,
            "SYNCD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "XERO_CLIENT_ID": CLIENT_ID,
            "XERO_CLIENT_SECRET": CLIENT_SECRET,
            "XERO_REDIRECT_URI": REDIRECT_URI,
            "XERO_API_URL": sandbox.url,
            "XERO_IDENTITY_URL": sandbox.url,
            "XERO_LOGIN_URL": sandbox.url,
            "SYNCD_LOG_FORMAT": "json",
            "SYNCD_LOG_LEVEL": "info",
            **extra,
        }
    )
