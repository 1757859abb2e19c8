"""/healthz and /readyz, in process against real databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from syncd.services import open_services
from syncd.settings import Settings
from syncd.store.db import Database
from syncd.web.app import create_app


@asynccontextmanager
async def client_for(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with open_services(settings, db=db) as services:
        app = create_app(settings, services=services, run_scheduler=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://syncd") as client:
            yield client


async def test_healthz_and_readyz_when_migrated(settings: Settings, db: Database) -> None:
    """A migrated database makes the service ready."""
    async with client_for(settings, db) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["database"] == "ok"


async def test_readyz_is_503_until_migrated(settings: Settings, empty_db_url: str) -> None:
    """A database behind the latest migration is reported, with the fix."""
    db = Database(empty_db_url)
    try:
        async with client_for(settings, db) as client:
            ready = await client.get("/readyz")
    finally:
        await db.dispose()
    assert ready.status_code == 503
    assert ready.json()["migrations"]["current"] is None
    assert "syncd migrate" in ready.json()["hint"]


async def test_readyz_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    """An unreachable database gives 503, not a crash."""
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        async with client_for(settings, db) as client:
            ready = await client.get("/readyz")
    finally:
        await db.dispose()
    assert ready.status_code == 503
    assert ready.json()["database"].startswith("unreachable")


async def test_unknown_route_is_a_json_404(settings: Settings, db: Database) -> None:
    """API errors share one JSON shape."""
    async with client_for(settings, db) as client:
        response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}
