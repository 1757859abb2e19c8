"""The process's resources, built once in the web lifespan or the worker entry (never at import).

Imports settings, store, vault and clock; later layers add their adapters here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from syncd.clock import Clock, SystemClock
from syncd.settings import Settings
from syncd.store.db import Database
from syncd.vault import Vault


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    clock: Clock
    vault: Vault | None


@asynccontextmanager
async def open_services(
    settings: Settings, *, clock: Clock | None = None
) -> AsyncIterator[Services]:
    db = Database(settings.database_url)
    vault = Vault(settings.encryption_keys) if settings.encryption_keys else None
    try:
        yield Services(settings=settings, db=db, clock=clock or SystemClock(), vault=vault)
    finally:
        await db.dispose()
