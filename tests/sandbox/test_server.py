"""The sandbox served by uvicorn on a real socket (what `syncd sandbox` runs)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from syncd.sandbox.models import Faults
from syncd.sandbox.server import DEFAULT_REDIRECT_URI, build_server, build_state
from syncd.sandbox.state import SandboxState
from tests.sandbox.flow import PROJECTS, pkce_pair, query_of


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
