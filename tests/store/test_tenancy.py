"""Tenant scoping: a repository asked for company A never returns a row of company B."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import syncd.store.connections
import syncd.store.cursors
import syncd.store.links
import syncd.store.mappings
import syncd.store.oauth_states
import syncd.store.reports
import syncd.store.sync_log
from syncd.domain.ids import CompanyId
from syncd.store.connections import ConnectionRepository, GrantRepository
from syncd.store.cursors import CursorRepository
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from syncd.store.mappings import (
    ContactMappingRepository,
    ServiceMappingRepository,
    StaffMappingRepository,
)
from syncd.store.models import (
    OAuthGrant,
    OAuthState,
    ReconciliationFinding,
    ReconciliationRun,
    SyncLogEntry,
    XeroConnection,
)
from syncd.store.oauth_states import OAuthStateRepository
from syncd.store.reports import FindingRepository, RunRepository
from syncd.store.scoping import TenantRepository
from syncd.store.sync_log import SyncLogRepository

A = CompanyId("aaaaaaaa-0000-0000-0000-000000000001")
B = CompanyId("bbbbbbbb-0000-0000-0000-000000000002")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

REPOSITORY_MODULES = [
    syncd.store.connections,
    syncd.store.cursors,
    syncd.store.links,
    syncd.store.mappings,
    syncd.store.oauth_states,
    syncd.store.reports,
    syncd.store.sync_log,
]
# Methods that legitimately take no company, and why.
UNSCOPED = {
    ("GrantRepository", "add"): "a new grant has no company until a connection links it",
    (
        "GrantRepository",
        "get_unlinked",
    ): "a grant awaiting the admin's tenant choice has no tenant data",
}


def repository_classes() -> list[type[Any]]:
    found = []
    for module in REPOSITORY_MODULES:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and cls.__name__.endswith("Repository"):
                found.append(cls)
    return found


def test_every_repository_method_takes_the_company_as_a_keyword() -> None:
    """Structural rule: each public method has a keyword-only `company`, or says it crosses
    practices in its name (`..._across_companies`), or is one of the listed exceptions."""
    offenders = []
    for cls in repository_classes():
        for name, member in inspect.getmembers(cls, inspect.iscoroutinefunction):
            if name.startswith("_") or name in {"first", "all"}:
                continue
            if name.endswith("_across_companies") or (cls.__name__, name) in UNSCOPED:
                continue
            parameter = inspect.signature(member).parameters.get("company")
            if parameter is None or parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
                offenders.append(f"{cls.__name__}.{name}")
    assert offenders == []
    assert len(repository_classes()) >= 10


def test_scoped_query_refuses_an_empty_company() -> None:
    """No query starts without a company."""
    with pytest.raises(ValueError, match="company is required"):
        JobLinkRepository(session=None).scoped(CompanyId(""))  # type: ignore[arg-type]


async def populate(db: Database, company: CompanyId, tag: str) -> None:
    """One row in every tenant table for `company`, with the same natural keys as the other."""
    async with db.transaction() as s:
        grant = await GrantRepository(s).add(
            OAuthGrant(
                access_token_enc="a",
                refresh_token_enc="r",
                access_expires_at=NOW,
                scopes="projects",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        await ConnectionRepository(s).save(
            company=company,
            connection=XeroConnection(
                company_id=company,
                grant_id=grant.id,
                tenant_id=f"tenant-{tag}",
                tenant_name=f"Org {tag}",
                connected_at=NOW,
                updated_at=NOW,
            ),
        )
        await ContactMappingRepository(s).save(
            company=company,
            client_id="client-1",
            contact_id=f"contact-{tag}",
            contact_name=tag,
            auto_created=False,
            now=NOW,
        )
        await StaffMappingRepository(s).save(
            company=company, user_id="acct-1", staff_id=f"staff-{tag}", staff_name=tag, now=NOW
        )
        await ServiceMappingRepository(s).save(
            company=company, service_id=1, template_id=f"tpl-{tag}", template_name=tag, now=NOW
        )
        link = await JobLinkRepository(s).create_pending(
            company=company, request_id="req-1", now=NOW
        )
        link.xero_job_id = "job-shared"
        await CursorRepository(s).set(company=company, name="crm", value=tag, now=NOW)
        await SyncLogRepository(s).add(
            company=company,
            entry=SyncLogEntry(
                company_id=company, task_id=1, method="GET", path="/x", status=200, created_at=NOW
            ),
        )
        await OAuthStateRepository(s).add(
            company=company,
            state=OAuthState(
                id=f"state-{tag}",
                company_id=company,
                user_id="u",
                code_verifier_enc="v",
                created_at=NOW,
                expires_at=NOW + timedelta(minutes=10),
            ),
        )
        run = await RunRepository(s).add(
            company=company,
            run=ReconciliationRun(company_id=company, trigger="manual", started_at=NOW),
        )
        await FindingRepository(s).add_all(
            company=company,
            findings=[
                ReconciliationFinding(
                    company_id=company,
                    run_id=run.id,
                    kind="x",
                    severity="low",
                    action="report",
                    created_at=NOW,
                )
            ],
        )


def companies_of(result: Any) -> set[str]:
    rows = result if isinstance(result, list) else [result]
    return {row.company_id for row in rows if row is not None}


async def test_reads_for_company_a_never_return_company_b_rows(db: Database) -> None:
    """Every read path, given A, returns A's rows only, even where B has identical keys."""
    await populate(db, A, "a")
    await populate(db, B, "b")
    async with db.transaction() as s:
        b_run = (await RunRepository(s).list(company=B))[0]
        b_finding = (await FindingRepository(s).for_run(company=B, run_id=b_run.id))[0]
        a_run = (await RunRepository(s).list(company=A))[0]
        results: dict[str, Any] = {
            "connection.get": await ConnectionRepository(s).get(company=A),
            "connection.get_active": await ConnectionRepository(s).get_active(company=A),
            "contacts.for_client": await ContactMappingRepository(s).for_client(
                company=A, client_id="client-1"
            ),
            "contacts.for_contact": await ContactMappingRepository(s).for_contact(
                company=A, contact_id="contact-b"
            ),
            "contacts.list": await ContactMappingRepository(s).list(company=A),
            "staff.for_user": await StaffMappingRepository(s).for_user(company=A, user_id="acct-1"),
            "staff.list": await StaffMappingRepository(s).list(company=A),
            "services.for_service": await ServiceMappingRepository(s).for_service(
                company=A, service_id=1
            ),
            "services.list": await ServiceMappingRepository(s).list(company=A),
            "links.for_request": await JobLinkRepository(s).for_request(
                company=A, request_id="req-1"
            ),
            "links.for_job": await JobLinkRepository(s).for_job(company=A, job_id="job-shared"),
            "links.for_requests": await JobLinkRepository(s).for_requests(
                company=A, request_ids=["req-1"]
            ),
            "links.list": await JobLinkRepository(s).list(company=A),
            "log.for_task": await SyncLogRepository(s).for_task(company=A, task_id=1),
            "log.recent": await SyncLogRepository(s).recent(company=A),
            "states.get_b": await OAuthStateRepository(s).get(company=A, state_id="state-b"),
            "runs.list": await RunRepository(s).list(company=A),
            "runs.get_b": await RunRepository(s).get(company=A, run_id=b_run.id),
            "findings.get_b": await FindingRepository(s).get(company=A, finding_id=b_finding.id),
            "findings.for_run_b": await FindingRepository(s).for_run(company=A, run_id=b_run.id),
            "findings.for_run_a": await FindingRepository(s).for_run(company=A, run_id=a_run.id),
            "findings.open": await FindingRepository(s).open(company=A),
        }
        grant_a = await GrantRepository(s).for_company(company=A)
        connection_a = await ConnectionRepository(s).get(company=A)
        cursor = await CursorRepository(s).get(company=A, name="crm")
        log_count = await SyncLogRepository(s).count_since(company=A, since=NOW)
        consumed_b = await OAuthStateRepository(s).consume(company=A, state_id="state-b", now=NOW)

    for name, result in results.items():
        assert companies_of(result) <= {A}, name
    # Lookups aimed at B's ids come back empty rather than leaking.
    for name in (
        "states.get_b",
        "runs.get_b",
        "findings.get_b",
        "findings.for_run_b",
        "contacts.for_contact",
    ):
        assert not results[name], name
    assert connection_a is not None and grant_a is not None
    assert grant_a.id == connection_a.grant_id
    assert cursor == "a"
    assert log_count == 1
    assert consumed_b is False


async def test_writes_for_company_a_never_touch_company_b(db: Database) -> None:
    """Removing, consuming or flagging for A leaves B's rows as they were."""
    await populate(db, A, "a")
    await populate(db, B, "b")
    async with db.transaction() as s:
        assert await ContactMappingRepository(s).remove(company=A, client_id="client-1")
        assert await StaffMappingRepository(s).remove(company=A, user_id="acct-1")
        assert await ServiceMappingRepository(s).remove(company=A, service_id=1)
        await ConnectionRepository(s).mark_needs_reconnect(company=A, reason="test", now=NOW)
        assert await OAuthStateRepository(s).consume(company=A, state_id="state-a", now=NOW)
    async with db.transaction() as s:
        assert await ContactMappingRepository(s).for_client(company=B, client_id="client-1")
        assert await StaffMappingRepository(s).for_user(company=B, user_id="acct-1")
        assert await ServiceMappingRepository(s).for_service(company=B, service_id=1)
        connection_b = await ConnectionRepository(s).get(company=B)
        assert connection_b is not None and connection_b.needs_reconnect is False
        assert await OAuthStateRepository(s).consume(company=B, state_id="state-b", now=NOW)


async def test_saving_a_row_for_another_company_is_refused(db: Database) -> None:
    """A repository call for A cannot be used to write a row stamped with B."""
    async with db.transaction() as s:
        with pytest.raises(ValueError, match="another company"):
            await SyncLogRepository(s).add(
                company=A,
                entry=SyncLogEntry(company_id=B, method="GET", path="/", created_at=NOW),
            )


def test_tenant_repositories_share_the_one_scoping_helper() -> None:
    """Every scoped repository derives from TenantRepository (one filter, one place)."""
    scoped = [c for c in repository_classes() if c is not GrantRepository]
    assert all(issubclass(c, TenantRepository) for c in scoped)
