"""Inbound: inbox retry times, sync conflicts, versioned sync settings, job invoices, and
outbox tasks whose attempt limit follows the worker's policy unless set.

Expand-only: new tables, a new nullable column and a column made nullable; safe during a
rolling deploy.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_invoices",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("invoice_id", sa.String(length=36), nullable=False),
        sa.Column("invoice_number", sa.String(length=50), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("total", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("linked_by", sa.String(length=20), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_invoices")),
        sa.UniqueConstraint(
            "company_id", "invoice_id", name=op.f("uq_job_invoices_company_id_invoice_id")
        ),
    )
    with op.batch_alter_table("job_invoices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_job_invoices_company_id_request_id"),
            ["company_id", "request_id"],
            unique=False,
        )

    op.create_table(
        "sync_conflicts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("crm_status", sa.String(length=20), nullable=False),
        sa.Column("xero_state", sa.String(length=40), nullable=False),
        sa.Column("policy", sa.String(length=20), nullable=False),
        sa.Column("resolution", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_conflicts")),
    )
    with op.batch_alter_table("sync_conflicts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_conflicts_company_id_created_at"),
            ["company_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "sync_settings",
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("changed_by", sa.String(length=36), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("company_id", "version", name=op.f("pk_sync_settings")),
    )
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("outbox_tasks", schema=None) as batch_op:
        batch_op.alter_column("max_attempts", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE outbox_tasks SET max_attempts = 8 WHERE max_attempts IS NULL")
    with op.batch_alter_table("outbox_tasks", schema=None) as batch_op:
        batch_op.alter_column("max_attempts", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.drop_column("next_attempt_at")

    op.drop_table("sync_settings")
    with op.batch_alter_table("sync_conflicts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_conflicts_company_id_created_at"))

    op.drop_table("sync_conflicts")
    with op.batch_alter_table("job_invoices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_invoices_company_id_request_id"))

    op.drop_table("job_invoices")
