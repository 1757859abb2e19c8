"""The shared rate budget: the Xero calls admitted per tenant (minute, day and in-flight counts
for every process on one PostgreSQL database) and what Xero said about each tenant's budget.

Expand-only: two new tables. Created on SQLite too (one schema), where the in-process governor
leaves them empty. Processes still on the old code do not write them, so during a rolling deploy
their calls are not counted by the new ones (Xero's remaining headers still are).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "xero_rate_calls",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=36), nullable=True),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xero_rate_calls")),
    )
    with op.batch_alter_table("xero_rate_calls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_xero_rate_calls_tenant_id_admitted_at"),
            ["tenant_id", "admitted_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_xero_rate_calls_admitted_at"), ["admitted_at"], unique=False
        )
        batch_op.create_index(
            "ix_xero_rate_calls_in_flight",
            ["tenant_id"],
            unique=False,
            sqlite_where=sa.text("finished_at IS NULL"),
            postgresql_where=sa.text("finished_at IS NULL"),
        )

    op.create_table(
        "xero_rate_tenants",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("closed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("minute_remaining", sa.Integer(), nullable=True),
        sa.Column("day_remaining", sa.Integer(), nullable=True),
        sa.Column("app_remaining", sa.Integer(), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_xero_rate_tenants")),
    )


def downgrade() -> None:
    op.drop_table("xero_rate_tenants")
    with op.batch_alter_table("xero_rate_calls", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_xero_rate_calls_in_flight",
            sqlite_where=sa.text("finished_at IS NULL"),
            postgresql_where=sa.text("finished_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_xero_rate_calls_admitted_at"))
        batch_op.drop_index(batch_op.f("ix_xero_rate_calls_tenant_id_admitted_at"))
    op.drop_table("xero_rate_calls")
