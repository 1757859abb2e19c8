"""Bad input before and after authentication: implausible webhook timestamps, JSON nested too
deeply, non-numeric, negative or huge ids and offsets. Each is a clear 4xx (one line naming what
is wrong), logged as one line without a traceback, and nothing is written."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from syncd.crm.events import secret_key, sign
from syncd.crm.memory import MemoryCrm
from syncd.domain.ids import CompanyId
from syncd.settings import Secret
from syncd.store.db import Database
from syncd.store.models import Base
from syncd.web.auth import Role
from tests.harness import Harness, harness

A = CompanyId("company-a")
API = "/api/integrations/xero"
CRM_SECRET = "whsec_" + "c3luY2QtY3JtLXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3"
DEEP = b"[" * 100_000 + b"]" * 100_000  # past Python's recursion limit
DEEPISH = json.dumps({"a": json.loads("[" * 40 + "]" * 40)}).encode()  # parses; too deep for us


@pytest.fixture
async def h(db: Database, fernet_key: str) -> AsyncIterator[Harness]:
    async with harness(
        db, fernet_key, crm=MemoryCrm(), crm_webhook_secret=Secret(CRM_SECRET)
    ) as ready:
        yield ready


async def row_counts(db: Database) -> dict[str, int]:
    """Rows in every table of syncd's schema (to show that nothing was written)."""
    counts = {}
    async with db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            counts[table.name] = (
                await session.execute(select(func.count()).select_from(table))
            ).scalar_one()
    return counts


def one_rejection(logs: list[dict[str, Any]], status: int) -> dict[str, Any]:
    """The request was logged as exactly one line, a rejection, with no traceback."""
    assert not [e for e in logs if "exc_info" in e or e["log_level"] in {"error", "critical"}]
    [rejected] = [e for e in logs if e["event"] == "web.rejected"]
    assert rejected["status"] == status
    return rejected


def crm_headers(body: bytes, *, timestamp: str, webhook_id: str = "msg_1") -> dict[str, bytes]:
    """Headers signed for now; `timestamp` is sent as given (latin-1, as HTTP carries it)."""
    signature = sign(secret_key(CRM_SECRET), webhook_id, int(time.time()), body)
    return {
        "webhook-id": webhook_id.encode(),
        "webhook-timestamp": timestamp.encode("latin-1"),
        "webhook-signature": signature.encode(),
    }


@pytest.mark.parametrize(
    "timestamp",
    [
        "99999999999999999999",
        "9" * 5000,
        "-1",
        "+1700000000",
        "1_700_000_000",
        " 1700000000",
        "1.7e9",
        "\u00b9\u00b2",  # latin-1 superscripts: isdigit() says yes, int() says no
        "abc",
    ],
)
async def test_a_crm_webhook_timestamp_that_is_no_unix_time_is_a_401(
    h: Harness, timestamp: str
) -> None:
    """Refused like a bad signature: 401 naming the header, one log line, nothing stored."""
    body = json.dumps({"type": "client.updated", "data": {"company_id": A, "client_id": "c"}})
    before = await row_counts(h.services.db)
    with capture_logs() as logs:
        answer = await h.syncd.post(
            "/api/crm/events",
            content=body.encode(),
            headers=crm_headers(body.encode(), timestamp=timestamp),
        )
    assert answer.status_code == 401
    assert "webhook-timestamp" in answer.json()["error"]
    one_rejection(logs, 401)
    assert await row_counts(h.services.db) == before


async def test_a_signed_crm_event_nested_too_deeply_is_a_422(h: Harness) -> None:
    """Genuine but unusable: 422 saying so (not a RecursionError and a 500)."""
    body = b'{"type": "client.updated", "data": ' + DEEP + b"}"
    before = await row_counts(h.services.db)
    with capture_logs() as logs:
        answer = await h.syncd.post(
            "/api/crm/events",
            content=body,
            headers=crm_headers(body, timestamp=str(int(time.time()))),
        )
    assert answer.status_code == 422
    assert "nested too deeply" in answer.json()["error"]
    one_rejection(logs, 422)
    assert await row_counts(h.services.db) == before


@pytest.mark.parametrize("body", [DEEP, DEEPISH], ids=["past-recursion-limit", "41-levels"])
@pytest.mark.parametrize(
    ("method", "path", "admin"),
    [
        ("POST", f"{API}/connect/select", False),
        ("PUT", f"{API}/settings", True),
        ("PUT", f"{API}/mappings/staff", True),
        ("POST", f"{API}/findings/1/resolve", True),
    ],
)
async def test_json_nested_too_deeply_is_a_400(
    h: Harness, method: str, path: str, admin: bool, body: bytes
) -> None:
    """Every JSON body goes through one reader that refuses deep nesting with a 400."""
    headers = {"content-type": "application/json"}
    if admin:
        headers.update(h.auth(Role.PRACTICE_ADMIN, A))
    before = await row_counts(h.services.db)
    with capture_logs() as logs:
        answer = await h.syncd.request(method, path, content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith("JSON nested too deeply")
    one_rejection(logs, 400)
    assert await row_counts(h.services.db) == before


HUGE = str(10**23)


@pytest.mark.parametrize(
    ("method", "path", "named"),
    [
        ("GET", f"{API}/sync-logs?offset=abc", "offset"),
        ("GET", f"{API}/sync-logs?offset=-1", "offset"),
        ("GET", f"{API}/sync-logs?offset={HUGE}", "offset"),
        ("GET", f"{API}/sync-logs?limit=1e3", "limit"),
        ("GET", f"{API}/sync-logs?limit=0", "limit"),
        ("GET", f"{API}/sync-logs?offset={'9' * 5000}", "offset"),
        ("GET", f"{API}/sync-logs/abc", "task id"),
        ("GET", f"{API}/sync-logs/-3", "task id"),
        ("GET", f"{API}/sync-logs/{HUGE}", "task id"),
        ("POST", f"{API}/sync-logs/{HUGE}/retry", "task id"),
        ("GET", f"{API}/reconciliations?offset=abc", "offset"),
        ("GET", f"{API}/reconciliations?limit={HUGE}", "limit"),
        ("POST", f"{API}/findings/{HUGE}/resolve", "finding id"),
        ("POST", f"{API}/findings/x1/resolve", "finding id"),
    ],
)
async def test_bad_ids_and_offsets_are_a_400_naming_the_parameter(
    h: Harness, method: str, path: str, named: str
) -> None:
    """Non-numeric, negative or beyond-64-bit numbers never reach the database."""
    before = await row_counts(h.services.db)
    with capture_logs() as logs:
        answer = await h.syncd.request(
            method, path, json={"resolution": "ignore"}, headers=h.auth(Role.PRACTICE_ADMIN, A)
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(f"{named} must be")
    one_rejection(logs, 400)
    assert await row_counts(h.services.db) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{API}/sync-logs/{2**63 - 1}"),
        ("POST", f"{API}/sync-logs/{2**63 - 1}/retry"),
        ("POST", f"{API}/findings/{2**63 - 1}/resolve"),
    ],
)
async def test_the_largest_64_bit_id_is_simply_not_found(
    h: Harness, method: str, path: str
) -> None:
    """At the edge of the column's range the database is asked, and answers "no such"."""
    answer = await h.syncd.request(
        method, path, json={"resolution": "ignore"}, headers=h.auth(Role.PRACTICE_ADMIN, A)
    )
    assert answer.status_code == 404, answer.text


async def test_good_numbers_still_page(h: Harness) -> None:
    """Leading zeros and an empty value (the default) are fine."""
    headers = h.auth(Role.PRACTICE_ADMIN, A)
    listed = await h.syncd.get(f"{API}/sync-logs?offset=007&limit=", headers=headers)
    assert listed.status_code == 200
    assert (listed.json()["offset"], listed.json()["limit"]) == (7, 50)
