"""Outbound: receipts of the events the CRM pushes (duplicate ids are ignored).

Expand-only: one new table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crm_event_receipts",
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("webhook_id", sa.String(length=120), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("company_id", "webhook_id", name=op.f("pk_crm_event_receipts")),
    )


def downgrade() -> None:
    op.drop_table("crm_event_receipts")
