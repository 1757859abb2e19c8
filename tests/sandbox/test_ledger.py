"""The sandbox's request ledger and the pure checkers over it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from syncd.sandbox import checks
from syncd.sandbox.models import Contact, LedgerEntry
from syncd.sandbox.state import SandboxState
from tests.sandbox.flow import PROJECTS, Session

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _entry(
    seq: int, at: float, *, tenant: str = "t", counted: bool = True, **extra: object
) -> LedgerEntry:
    fields: dict[str, object] = {
        "seq": seq,
        "at": T0 + timedelta(seconds=at),
        "method": "GET",
        "path": "/projects.xro/2.0/Projects",
        "query": "",
        "tenant_id": tenant,
        "status": 200,
        "idempotency_key": None,
        "concurrent_in_flight": 1,
        "rate_limited": False,
        "fault": None,
        "counted": counted,
    }
    fields.update(extra)
    return LedgerEntry(**fields)


async def test_every_request_is_recorded(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """Each request gets a numbered entry with method, path, query, tenant, status and key."""
    headers = session.headers(**{"Idempotency-Key": "abc"})
    await client.post(
        f"{PROJECTS}/Projects", headers=headers, json={"contactId": contact.contact_id, "name": "J"}
    )
    await client.get(f"{PROJECTS}/Projects", params={"states": "CLOSED"}, headers=session.headers())
    paths = [e.path for e in state.ledger]
    assert paths[:3] == ["/identity/connect/authorize", "/connect/token", "/connections"]
    assert [e.seq for e in state.ledger] == list(range(1, len(state.ledger) + 1))
    post, get = state.ledger[-2:]
    assert (post.method, post.status, post.tenant_id, post.idempotency_key) == (
        "POST",
        201,
        session.tenant_id,
        "abc",
    )
    assert (get.query, get.concurrent_in_flight, get.counted) == ("states=CLOSED", 1, True)
    assert state.ledger_since(post.seq) == [get]


async def test_control_calls_are_not_recorded(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    """Requests to /_sandbox/ do not appear in the ledger."""
    await client.get("/_sandbox/tenants")
    assert state.ledger == []


def test_max_concurrency_ignores_refused_calls() -> None:
    """max_concurrency is the highest in-flight count among accepted calls of the tenant."""
    ledger = [
        _entry(1, 0, concurrent_in_flight=3),
        _entry(2, 0, concurrent_in_flight=6, counted=False, status=429, rate_limited=True),
        _entry(3, 0, tenant="u", concurrent_in_flight=9),
    ]
    assert checks.max_concurrency(ledger, "t") == 3
    assert checks.max_concurrency([], "t") == 0


def test_max_calls_in_any_window_slides() -> None:
    """Counts accepted calls in the busiest window of the given length."""
    ledger = [_entry(i, t) for i, t in enumerate([0, 10, 59.9, 60, 61, 119.95])]
    ledger.append(_entry(99, 60.5, counted=False))
    assert checks.max_calls_in_any_window(ledger, "t") == 4
    assert checks.max_calls_in_any_window(ledger, "t", seconds=1) == 2
    assert checks.max_calls_in_any_window(ledger, "other") == 0


def test_count_429() -> None:
    """count_429 counts 429 answers for one tenant or all."""
    ledger = [_entry(1, 0, status=429), _entry(2, 0, tenant="u", status=429), _entry(3, 0)]
    assert checks.count_429(ledger) == 2
    assert checks.count_429(ledger, "u") == 1


def test_duplicate_projects_groups_by_contact_and_name(
    state: SandboxState, contact: Contact
) -> None:
    """Projects with the same contact and (case-insensitive) name are duplicates."""
    tenant_id = next(iter(state.tenants))
    other = state.add_contact(tenant_id, "Other")
    a = state.add_project(tenant_id, contact_id=contact.contact_id, name="Tax 2025")
    b = state.add_project(tenant_id, contact_id=contact.contact_id, name="tax 2025 ")
    state.add_project(tenant_id, contact_id=other.contact_id, name="Tax 2025")
    assert checks.duplicate_projects(state, tenant_id) == [[a, b]]
