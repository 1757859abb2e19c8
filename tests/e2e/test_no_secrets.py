"""No token, code, secret or signature appears in the logs or the database in plaintext, across
a whole connect → use → refresh → disconnect flow."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog
from sqlalchemy import text

from syncd.domain.ids import CompanyId
from syncd.logs import configure_logging
from syncd.store.db import Database
from syncd.store.models import Base
from syncd.web.auth import Role
from tests.e2e.test_connect import expire_locally
from tests.harness import CLIENT_SECRET, harness


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


async def dump_database(db: Database) -> str:
    parts: list[str] = []
    async with db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = (await connection.execute(text(f'SELECT * FROM "{table.name}"'))).all()  # noqa: S608
            parts.extend(str(value) for row in rows for value in row)
    return "\n".join(parts)


async def test_secrets_stay_out_of_logs_and_database(
    db: Database, fernet_key: str, log_output: io.StringIO
) -> None:
    """Every code and token the sandbox issued is absent from log lines and table rows."""
    company = CompanyId("company-a")
    async with harness(db, fernet_key) as h:
        tenant = await h.connect(company)
        h.sandbox.add_contact(tenant, "C", email="c@example.com")
        contacts = h.services.require_xero().contacts
        await contacts.find_by_email(company, "c@example.com")
        await expire_locally(h, company)
        await contacts.find_by_email(company, "c@example.com")  # refresh happened here
        database = await dump_database(db)
        await h.syncd.post(
            "/api/integrations/xero/disconnect",
            headers=h.auth(Role.PRACTICE_ADMIN, company),
        )
        authority = h.sandbox.authority
        secrets = [
            *authority.codes,
            *authority.refresh_tokens,
            *authority.access_tokens,
            CLIENT_SECRET,
            fernet_key,
        ]
    logs = log_output.getvalue()
    assert len(authority.refresh_tokens) >= 2  # a rotation did happen
    assert "token.refreshed" in logs  # the logs did capture the flow
    for secret in secrets:
        assert secret not in logs
        assert secret not in database
