"""syncd's own tables (DESIGN.md §4). Every table but `oauth_grants` carries `company_id`.

Unique keys of tenant tables lead with `company_id`. Times are aware UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from syncd.domain.ids import new_id
from syncd.store.types import BigIntId, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

COMPANY = String(36)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class OAuthGrant(Base):
    """One Xero authorisation: the only copy of its token pair (refreshing a copy breaks others)."""

    __tablename__ = "oauth_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    access_token_enc: Mapped[str] = mapped_column(Text)
    refresh_token_enc: Mapped[str] = mapped_column(Text)
    # The refresh token this pair replaced, kept while Xero's 30-minute grace lets it be reused.
    previous_refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    previous_refresh_valid_until: Mapped[datetime | None]
    access_expires_at: Mapped[datetime]
    scopes: Mapped[str] = mapped_column(Text, default="")
    auth_event_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="active")  # active|invalid|revoked
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    refreshed_at: Mapped[datetime | None]


class XeroConnection(Base):
    """A company's link to one Xero tenant through a grant."""

    __tablename__ = "xero_connections"
    __table_args__ = (
        UniqueConstraint("company_id"),
        # A tenant belongs to at most one company at a time.
        Index(
            "uq_xero_connections_active_tenant",
            "tenant_id",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    company_id: Mapped[str] = mapped_column(COMPANY)
    grant_id: Mapped[str | None] = mapped_column(ForeignKey("oauth_grants.id", ondelete="SET NULL"))
    tenant_id: Mapped[str] = mapped_column(String(36))
    tenant_name: Mapped[str | None] = mapped_column(String(255))
    tenant_type: Mapped[str] = mapped_column(String(32), default="ORGANISATION")
    xero_connection_id: Mapped[str | None] = mapped_column(String(36))
    backend: Mapped[str] = mapped_column(String(20), default="projects")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    needs_reconnect: Mapped[bool] = mapped_column(Boolean, default=False)
    reconnect_reason: Mapped[str | None] = mapped_column(Text)
    connected_by: Mapped[str | None] = mapped_column(String(36))
    connected_at: Mapped[datetime]
    disconnected_by: Mapped[str | None] = mapped_column(String(36))
    disconnected_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class ContactMapping(Base):
    __tablename__ = "contact_mappings"
    __table_args__ = (
        UniqueConstraint("company_id", "crm_client_id"),
        Index(None, "company_id", "xero_contact_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    crm_client_id: Mapped[str] = mapped_column(String(36))
    xero_contact_id: Mapped[str] = mapped_column(String(36))
    xero_contact_name: Mapped[str | None] = mapped_column(String(255))
    auto_created: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StaffMapping(Base):
    __tablename__ = "staff_mappings"
    __table_args__ = (UniqueConstraint("company_id", "crm_user_id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    crm_user_id: Mapped[str] = mapped_column(String(36))
    xero_staff_id: Mapped[str] = mapped_column(String(36))
    xero_staff_name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ServiceTemplateMapping(Base):
    __tablename__ = "service_template_mappings"
    __table_args__ = (UniqueConstraint("company_id", "crm_service_id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    crm_service_id: Mapped[int] = mapped_column(Integer)
    xero_template_id: Mapped[str] = mapped_column(String(36))
    xero_template_name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class JobLink(Base):
    """A CRM request and its Xero job, with what syncd last saw and wrote on each side."""

    __tablename__ = "job_links"
    __table_args__ = (
        UniqueConstraint("company_id", "request_id"),
        Index(None, "company_id", "xero_job_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    request_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|linked|missing
    xero_job_id: Mapped[str | None] = mapped_column(String(36))
    xero_job_number: Mapped[str | None] = mapped_column(String(50))
    xero_contact_id: Mapped[str | None] = mapped_column(String(36))
    crm_status_seen: Mapped[str | None] = mapped_column(String(20))
    crm_status_written: Mapped[str | None] = mapped_column(String(20))
    crm_seen_at: Mapped[datetime | None]
    xero_status_seen: Mapped[str | None] = mapped_column(String(40))
    xero_status_written: Mapped[str | None] = mapped_column(String(40))
    xero_seen_at: Mapped[datetime | None]
    # The CRM accountant whose staff member syncd last made the job's manager.
    manager_written: Mapped[str | None] = mapped_column(String(36))
    # Practice Manager: the manager (staff UUID) syncd last saw and last asked for, and the
    # job's due date as last seen in Xero.
    xero_manager_seen: Mapped[str | None] = mapped_column(String(36))
    xero_manager_written: Mapped[str | None] = mapped_column(String(36))
    xero_due_seen: Mapped[date | None] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=1)
    synced_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OutboxTask(Base):
    """A durable unit of outbound (or internal) work; see DESIGN.md §2b for its states."""

    __tablename__ = "outbox_tasks"
    __table_args__ = (
        UniqueConstraint("company_id", "idempotency_key"),
        Index(None, "state", "run_after"),
        Index(None, "company_id", "order_key", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    # Tasks sharing an order key (e.g. one request) run strictly in id order.
    order_key: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|running|done|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # None: the worker's configured policy decides (SYNCD_OUTBOX_MAX_ATTEMPTS).
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    run_after: Mapped[datetime]
    leased_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class InboxEvent(Base):
    """An inbound event (webhook or poller) kept until handled; quarantined payloads too.

    The company is resolved from the tenant by the worker, so it is empty until then.
    """

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "dedupe_key"),
        Index(None, "state", "id"),
        Index(None, "company_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str | None] = mapped_column(COMPANY)
    tenant_id: Mapped[str | None] = mapped_column(String(36))
    source: Mapped[str] = mapped_column(String(16), default="webhook")  # webhook|poller
    dedupe_key: Mapped[str] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(32))
    event_type: Mapped[str | None] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    event_date: Mapped[datetime | None]
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    raw_body: Mapped[str | None] = mapped_column(Text)  # quarantined payloads only
    # pending|processing|done|ignored|failed|quarantined
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    # The lease, as on outbox tasks: the worker holding the event and until when (renewed
    # while it works; see syncd.pipeline.leases).
    leased_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class SyncConflict(Base):
    """Both sides changed a request's status since the last sync; how the policy settled it."""

    __tablename__ = "sync_conflicts"
    __table_args__ = (Index(None, "company_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    request_id: Mapped[str] = mapped_column(String(36))
    crm_status: Mapped[str] = mapped_column(String(20))
    xero_state: Mapped[str] = mapped_column(String(40))
    policy: Mapped[str] = mapped_column(String(20))
    resolution: Mapped[str] = mapped_column(String(200))  # what was kept, or "manual: open"
    created_at: Mapped[datetime]


class SyncSettingsVersion(Base):
    """A practice's sync settings; every change is a new version (who, when, what)."""

    __tablename__ = "sync_settings"

    company_id: Mapped[str] = mapped_column(COMPANY, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    changed_by: Mapped[str | None] = mapped_column(String(36))
    changed_at: Mapped[datetime]


class JobInvoice(Base):
    """An invoice raised in Xero that syncd could tie to a request's job."""

    __tablename__ = "job_invoices"
    __table_args__ = (
        UniqueConstraint("company_id", "invoice_id"),
        Index(None, "company_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    request_id: Mapped[str] = mapped_column(String(36))
    invoice_id: Mapped[str] = mapped_column(String(36))
    invoice_number: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str | None] = mapped_column(String(20))
    total: Mapped[str | None] = mapped_column(String(40))  # Decimal as text: exact everywhere
    currency: Mapped[str | None] = mapped_column(String(3))
    linked_by: Mapped[str] = mapped_column(String(20))  # reference|contact
    updated_at: Mapped[datetime]


class CrmEventReceipt(Base):
    """A CRM-pushed event already taken in (Standard Webhooks ids repeat on redelivery)."""

    __tablename__ = "crm_event_receipts"

    company_id: Mapped[str] = mapped_column(COMPANY, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(60))
    received_at: Mapped[datetime]


class SyncLogEntry(Base):
    """One Xero call: never a token, only what an admin needs to follow the trail."""

    __tablename__ = "sync_log"
    __table_args__ = (
        Index(None, "company_id", "created_at"),
        Index(None, "company_id", "task_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    task_id: Mapped[int | None] = mapped_column(BigIntId)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    min_remaining: Mapped[int | None] = mapped_column(Integer)
    day_remaining: Mapped[int | None] = mapped_column(Integer)
    app_min_remaining: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class ReconciliationRun(Base):
    __tablename__ = "reconciliation_runs"
    __table_args__ = (Index(None, "company_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    company_id: Mapped[str] = mapped_column(COMPANY)
    trigger: Mapped[str] = mapped_column(String(16))  # schedule|manual|cli
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    # queued|running|finished|failed
    state: Mapped[str] = mapped_column(String(16), default="queued")
    requested_by: Mapped[str | None] = mapped_column(String(36))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    xero_calls: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class ReconciliationFinding(Base):
    __tablename__ = "reconciliation_findings"
    __table_args__ = (
        Index(None, "company_id", "run_id"),
        Index(None, "company_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    run_id: Mapped[str] = mapped_column(ForeignKey("reconciliation_runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(36))
    subject: Mapped[str | None] = mapped_column(String(200))
    crm: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    xero: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    action: Mapped[str] = mapped_column(String(40))
    # What "accept the other side" does instead, where there is such a thing.
    alternative: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="open")  # open|healed|accepted|ignored
    resolved_by: Mapped[str | None] = mapped_column(String(36))
    resolved_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class SyncCursor(Base):
    """Where a company's change feed or poller got to."""

    __tablename__ = "sync_cursors"

    company_id: Mapped[str] = mapped_column(COMPANY, primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class OAuthState(Base):
    """A pending connect: single use, short-lived, bound to company and user."""

    __tablename__ = "oauth_states"
    __table_args__ = (Index(None, "company_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    user_id: Mapped[str] = mapped_column(String(36))
    # SHA-256 of the HttpOnly cookie `/connect` set in the admin's browser: the callback (and
    # the tenant choice) must come from that browser.
    browser_hash: Mapped[str | None] = mapped_column(String(64))
    code_verifier_enc: Mapped[str] = mapped_column(Text)
    return_to: Mapped[str | None] = mapped_column(String(500))
    # Set when the consent covered several tenants and the admin still has to pick one.
    grant_id: Mapped[str | None] = mapped_column(ForeignKey("oauth_grants.id", ondelete="CASCADE"))
    tenants: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ConsoleHandoff(Base):
    """A console sign-in link (the CRM's short-lived JWT) as syncd saw it: used once, then
    remembered until the token expires, so the same link cannot sign anyone in again. The id is
    a SHA-256 over the token's `jti` (with its subject), or over the whole token without one;
    it is unique across practices, so a super admin's link cannot open a second practice."""

    __tablename__ = "console_handoffs"
    __table_args__ = (Index(None, "expires_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    user_id: Mapped[str] = mapped_column(String(200))
    # When the browser came without the CRM's Referer: SHA-256 of the one-time nonce in the
    # confirmation form, and of the HttpOnly cookie set with it (the form must come back from
    # the same browser).
    nonce_hash: Mapped[str | None] = mapped_column(String(64))
    browser_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in admin's console session. The cookie carries a random secret; only its
    SHA-256 is stored, checked on every request, and revoked at sign-out."""

    __tablename__ = "console_sessions"
    __table_args__ = (
        Index(None, "company_id", "user_id"),
        Index(None, "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    company_id: Mapped[str] = mapped_column(COMPANY)
    user_id: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class XeroRateCall(Base):
    """One Xero call admitted by the shared rate budget (several processes on PostgreSQL; see
    docs/rate-budget.md). Keyed by Xero tenant, not company: Xero's limits are per tenant.

    In flight while `finished_at` is empty and `lease_until` is ahead (a killed holder's calls
    stop counting as in flight when their lease runs out); counted in the minute and day windows
    by `admitted_at`, on the governor's clock. Rows with an empty `tenant_id` only stand for app
    calls Xero reported that syncd did not make. Older than a day, a row is in no window any
    more and housekeeping deletes it.
    """

    __tablename__ = "xero_rate_calls"
    __table_args__ = (
        Index(None, "tenant_id", "admitted_at"),
        Index(None, "admitted_at"),
        Index(
            "ix_xero_rate_calls_in_flight",
            "tenant_id",
            sqlite_where=text("finished_at IS NULL"),
            postgresql_where=text("finished_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    company_id: Mapped[str | None] = mapped_column(COMPANY)
    holder: Mapped[str] = mapped_column(String(100))  # host:pid of the admitting process
    admitted_at: Mapped[datetime]
    lease_until: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class XeroRateTenant(Base):
    """What Xero itself said about a tenant's budget, shared by every process: a 429's
    Retry-After closes the tenant until `closed_until`; the last remaining counts it reported."""

    __tablename__ = "xero_rate_tenants"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    closed_until: Mapped[datetime | None]
    minute_remaining: Mapped[int | None]
    day_remaining: Mapped[int | None]
    app_remaining: Mapped[int | None]
    observed_at: Mapped[datetime]
