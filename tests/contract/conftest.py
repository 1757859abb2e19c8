"""Fixtures for contract tests: a sandbox behind a recording transport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from syncd.sandbox.app import create_sandbox_app
from syncd.sandbox.state import SandboxState
from tests.contract.openapi import RecordingTransport, load_document, load_spec
from tests.fakes import ManualClock
from tests.sandbox.flow import client_for, seeded_state


@pytest.fixture(autouse=True)
def specs() -> None:
    """Skip (with instructions) when the specs are absent; parse them once per session."""
    for name in ("projects", "accounting", "identity"):
        load_spec(name)
    load_document("webhooks")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def state(clock: ManualClock) -> SandboxState:
    world = seeded_state(SandboxState(clock, seed=11))
    world.add_tenant("Demo Practice")
    return world


@pytest.fixture
def recorder(state: SandboxState) -> RecordingTransport:
    return RecordingTransport(httpx.ASGITransport(app=create_sandbox_app(state)))


@pytest.fixture
async def client(
    state: SandboxState, recorder: RecordingTransport
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(state, recorder) as http:
        yield http
