"""The sandbox served by uvicorn on a real socket (what `syncd sandbox` runs)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from syncd.sandbox.models import Faults
from syncd.sandbox.server import (
    DEFAULT_REDIRECT_URI,
    DEFAULT_WEBHOOK_URL,
    build_server,
    build_state,
    serve,
)
from syncd.sandbox.state import SandboxState
from syncd.sandbox.webhooks import WebhookDispatcher
from tests.sandbox.flow import PROJECTS, pkce_pair, query_of
from tests.sandbox.receiver import URL, Receiver


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, SandboxState]]:
    state = build_state(client_id="cli-app", tenant_names=["Demo Practice"], drop_hang_seconds=0.05)
    # Listening before uvicorn starts: early requests wait in the backlog, no polling needed.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = int(listener.getsockname()[1])
    server = build_server(state, port=port)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    yield f"http://127.0.0.1:{port}", state
    server.should_exit = True
    await task
    listener.close()


def test_build_state_registers_the_seed_app_and_tenants() -> None:
    """The CLI's seed app defaults to syncd's callback; drops hang instead of raising."""
    state = build_state(client_id="cli-app", client_secret="s3cret", tenant_names=["A", "B"])
    assert state.apps["cli-app"].redirect_uris == (DEFAULT_REDIRECT_URI,)
    assert [t.name for t in state.tenants.values()] == ["A", "B"]
    assert state.faults.drop_mode == "hang"


async def test_oauth_and_a_dropped_answer_over_a_socket(served: tuple[str, SandboxState]) -> None:
    """Over uvicorn the flow works, and a dropped answer arrives as 504 after the hang."""
    base, state = served
    async with httpx.AsyncClient(base_url=base) as client:
        verifier, challenge = pkce_pair()
        answer = await client.get(
            "/identity/connect/authorize",
            params={
                "response_type": "code",
                "client_id": "cli-app",
                "redirect_uri": DEFAULT_REDIRECT_URI,
                "scope": "offline_access projects",
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        code = query_of(answer.headers["location"])["code"]
        tokens = await client.post(
            "/connect/token",
            data={
                "grant_type": "authorization_code",
                "client_id": "cli-app",
                "code": code,
                "redirect_uri": DEFAULT_REDIRECT_URI,
                "code_verifier": verifier,
            },
        )
        headers = {
            "Authorization": f"Bearer {tokens.json()['access_token']}",
            "Xero-Tenant-Id": next(iter(state.tenants)),
        }
        assert (await client.get(f"{PROJECTS}/Projects", headers=headers)).status_code == 200
        await client.put("/_sandbox/faults", json={"drop_next": 1})
        assert state.faults == Faults(drop_next=1, drop_mode="hang", drop_hang_seconds=0.05)
        dropped = await client.get(f"{PROJECTS}/Projects", headers=headers)
        assert dropped.status_code == 504
        assert state.ledger[-1].fault == "drop"


def test_a_webhook_key_points_the_seed_apps_webhook_at_syncd() -> None:
    """With --webhook-key the seed app's webhook goes to syncd's own ingress by default."""
    state = build_state(client_id="cli-app", webhook_key="k")
    assert state.webhook_subscription("cli-app").url == DEFAULT_WEBHOOK_URL
    assert build_state(client_id="cli-app").webhooks.subscriptions == {}


async def test_the_served_sandbox_sends_webhooks_in_the_background() -> None:
    """`serve` flushes queued webhooks on its own: nobody calls flush."""
    state = build_state(client_id="cli-app", webhook_key="k", webhook_url=URL)
    tenant = state.add_tenant("Demo Practice")
    state.authority.consent(
        app=state.apps["cli-app"],
        redirect_uri=DEFAULT_REDIRECT_URI,
        scopes=("accounting.contacts",),
        code_challenge=None,
        user_id=None,
        tenant_ids=[tenant.tenant_id],
    )
    receiver = Receiver("k")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = build_server(state, port=int(listener.getsockname()[1]))
    dispatcher = WebhookDispatcher(state, transport=receiver.transport())
    task = asyncio.create_task(
        serve(state, server, sockets=[listener], flush_seconds=0.01, dispatcher=dispatcher)
    )
    state.add_contact(tenant.tenant_id, "Acme")
    async with asyncio.timeout(5):
        await receiver.arrived.wait()
    server.should_exit = True
    await task
    listener.close()
    assert [e["eventType"] for e in receiver.events] == ["CREATE"]
