"""Foundation: every table of DESIGN.md section 4.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_mappings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("crm_client_id", sa.String(length=36), nullable=False),
        sa.Column("xero_contact_id", sa.String(length=36), nullable=False),
        sa.Column("xero_contact_name", sa.String(length=255), nullable=True),
        sa.Column("auto_created", sa.Boolean(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_mappings")),
        sa.UniqueConstraint(
            "company_id", "crm_client_id", name=op.f("uq_contact_mappings_company_id_crm_client_id")
        ),
    )
    with op.batch_alter_table("contact_mappings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_mappings_company_id_xero_contact_id"),
            ["company_id", "xero_contact_id"],
            unique=False,
        )

    op.create_table(
        "inbox_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("company_id", sa.String(length=36), nullable=True),
        sa.Column("tenant_id", sa.String(length=36), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("dedupe_key", sa.String(length=300), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("event_type", sa.String(length=32), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("event_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("raw_body", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_events")),
        sa.UniqueConstraint(
            "tenant_id", "dedupe_key", name=op.f("uq_inbox_events_tenant_id_dedupe_key")
        ),
    )
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbox_events_company_id_received_at"),
            ["company_id", "received_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_inbox_events_state_id"), ["state", "id"], unique=False)

    op.create_table(
        "job_links",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("xero_job_id", sa.String(length=36), nullable=True),
        sa.Column("xero_job_number", sa.String(length=50), nullable=True),
        sa.Column("xero_contact_id", sa.String(length=36), nullable=True),
        sa.Column("crm_status_seen", sa.String(length=20), nullable=True),
        sa.Column("crm_status_written", sa.String(length=20), nullable=True),
        sa.Column("crm_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("xero_status_seen", sa.String(length=40), nullable=True),
        sa.Column("xero_status_written", sa.String(length=40), nullable=True),
        sa.Column("xero_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("manager_written", sa.String(length=36), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_links")),
        sa.UniqueConstraint(
            "company_id", "request_id", name=op.f("uq_job_links_company_id_request_id")
        ),
    )
    with op.batch_alter_table("job_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_job_links_company_id_xero_job_id"),
            ["company_id", "xero_job_id"],
            unique=False,
        )

    op.create_table(
        "oauth_grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("access_token_enc", sa.Text(), nullable=False),
        sa.Column("refresh_token_enc", sa.Text(), nullable=False),
        sa.Column("previous_refresh_token_enc", sa.Text(), nullable=True),
        sa.Column("previous_refresh_valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("auth_event_id", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_grants")),
    )
    op.create_table(
        "outbox_tasks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("order_key", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_tasks")),
        sa.UniqueConstraint(
            "company_id", "idempotency_key", name=op.f("uq_outbox_tasks_company_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("outbox_tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_tasks_company_id_order_key_id"),
            ["company_id", "order_key", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_outbox_tasks_state_run_after"), ["state", "run_after"], unique=False
        )

    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=36), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("xero_calls", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )
    with op.batch_alter_table("reconciliation_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_runs_company_id_started_at"),
            ["company_id", "started_at"],
            unique=False,
        )

    op.create_table(
        "service_template_mappings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("crm_service_id", sa.Integer(), nullable=False),
        sa.Column("xero_template_id", sa.String(length=36), nullable=False),
        sa.Column("xero_template_name", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_template_mappings")),
        sa.UniqueConstraint(
            "company_id",
            "crm_service_id",
            name=op.f("uq_service_template_mappings_company_id_crm_service_id"),
        ),
    )
    op.create_table(
        "staff_mappings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("crm_user_id", sa.String(length=36), nullable=False),
        sa.Column("xero_staff_id", sa.String(length=36), nullable=False),
        sa.Column("xero_staff_name", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_mappings")),
        sa.UniqueConstraint(
            "company_id", "crm_user_id", name=op.f("uq_staff_mappings_company_id_crm_user_id")
        ),
    )
    op.create_table(
        "sync_cursors",
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("company_id", "name", name=op.f("pk_sync_cursors")),
    )
    op.create_table(
        "sync_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("min_remaining", sa.Integer(), nullable=True),
        sa.Column("day_remaining", sa.Integer(), nullable=True),
        sa.Column("app_min_remaining", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_log")),
    )
    with op.batch_alter_table("sync_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_log_company_id_created_at"),
            ["company_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_sync_log_company_id_task_id"), ["company_id", "task_id"], unique=False
        )

    op.create_table(
        "oauth_states",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("code_verifier_enc", sa.Text(), nullable=False),
        sa.Column("return_to", sa.String(length=500), nullable=True),
        sa.Column("grant_id", sa.String(length=36), nullable=True),
        sa.Column("tenants", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["oauth_grants.id"],
            name=op.f("fk_oauth_states_grant_id_oauth_grants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_states")),
    )
    with op.batch_alter_table("oauth_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_states_company_id_created_at"),
            ["company_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "reconciliation_findings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("crm", sa.JSON(), nullable=True),
        sa.Column("xero", sa.JSON(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("resolved_by", sa.String(length=36), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name=op.f("fk_reconciliation_findings_run_id_reconciliation_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_findings")),
    )
    with op.batch_alter_table("reconciliation_findings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_findings_company_id_run_id"),
            ["company_id", "run_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_reconciliation_findings_company_id_state"),
            ["company_id", "state"],
            unique=False,
        )

    op.create_table(
        "xero_connections",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("grant_id", sa.String(length=36), nullable=True),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_name", sa.String(length=255), nullable=True),
        sa.Column("tenant_type", sa.String(length=32), nullable=False),
        sa.Column("xero_connection_id", sa.String(length=36), nullable=True),
        sa.Column("backend", sa.String(length=20), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("needs_reconnect", sa.Boolean(), nullable=False),
        sa.Column("reconnect_reason", sa.Text(), nullable=True),
        sa.Column("connected_by", sa.String(length=36), nullable=True),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disconnected_by", sa.String(length=36), nullable=True),
        sa.Column("disconnected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["oauth_grants.id"],
            name=op.f("fk_xero_connections_grant_id_oauth_grants"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xero_connections")),
        sa.UniqueConstraint("company_id", name=op.f("uq_xero_connections_company_id")),
    )
    with op.batch_alter_table("xero_connections", schema=None) as batch_op:
        batch_op.create_index(
            "uq_xero_connections_active_tenant",
            ["tenant_id"],
            unique=True,
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        )


def downgrade() -> None:
    with op.batch_alter_table("xero_connections", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_xero_connections_active_tenant",
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        )

    op.drop_table("xero_connections")
    with op.batch_alter_table("reconciliation_findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_findings_company_id_state"))
        batch_op.drop_index(batch_op.f("ix_reconciliation_findings_company_id_run_id"))

    op.drop_table("reconciliation_findings")
    with op.batch_alter_table("oauth_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_states_company_id_created_at"))

    op.drop_table("oauth_states")
    with op.batch_alter_table("sync_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_log_company_id_task_id"))
        batch_op.drop_index(batch_op.f("ix_sync_log_company_id_created_at"))

    op.drop_table("sync_log")
    op.drop_table("sync_cursors")
    op.drop_table("staff_mappings")
    op.drop_table("service_template_mappings")
    with op.batch_alter_table("reconciliation_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_runs_company_id_started_at"))

    op.drop_table("reconciliation_runs")
    with op.batch_alter_table("outbox_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_tasks_state_run_after"))
        batch_op.drop_index(batch_op.f("ix_outbox_tasks_company_id_order_key_id"))

    op.drop_table("outbox_tasks")
    op.drop_table("oauth_grants")
    with op.batch_alter_table("job_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_links_company_id_xero_job_id"))

    op.drop_table("job_links")
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_events_state_id"))
        batch_op.drop_index(batch_op.f("ix_inbox_events_company_id_received_at"))

    op.drop_table("inbox_events")
    with op.batch_alter_table("contact_mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_mappings_company_id_xero_contact_id"))

    op.drop_table("contact_mappings")
