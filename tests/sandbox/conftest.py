"""Fixtures: a sandbox on a hand-moved clock with two apps and two organisations, an in-process
client, and a connected API session; a Practice Manager practice and a session on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from syncd.sandbox.models import Contact, Tenant
from syncd.sandbox.state import SandboxState
from tests.fakes import ManualClock
from tests.sandbox.flow import Session, client_for, connect, seeded_state


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def state(clock: ManualClock) -> SandboxState:
    world = seeded_state(SandboxState(clock, seed=7))
    world.add_tenant("Demo Practice")
    world.add_tenant("Other Org")
    return world


@pytest.fixture
def tenant(state: SandboxState) -> Tenant:
    return next(iter(state.tenants.values()))


@pytest.fixture
def contact(state: SandboxState, tenant: Tenant) -> Contact:
    return state.add_contact(tenant.tenant_id, "Acme Ltd", "jo@acme.example")


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(state) as http:
        yield http


@pytest.fixture
async def session(client: httpx.AsyncClient, state: SandboxState, tenant: Tenant) -> Session:
    state.consent_tenant_ids = [tenant.tenant_id]
    return await connect(client)


@pytest.fixture
def practice(state: SandboxState) -> Tenant:
    """A Practice Manager practice next to the two organisations of the shared state."""
    return state.add_tenant("Demo XPM", tenant_type="PRACTICEMANAGER")


@pytest.fixture
def organisation(state: SandboxState) -> Tenant:
    return next(t for t in state.tenants.values() if t.tenant_type == "ORGANISATION")


@pytest.fixture
async def xpm(client: httpx.AsyncClient, state: SandboxState, practice: Tenant) -> Session:
    """A session on the practice with the broad `practicemanager` scope."""
    state.consent_tenant_ids = [practice.tenant_id]
    return await connect(client, scope="offline_access practicemanager")
