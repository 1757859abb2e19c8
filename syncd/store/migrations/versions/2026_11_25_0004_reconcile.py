"""Reconcile: each finding says why (detail) and what accepting the other side would do.

Expand-only: two nullable columns.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reconciliation_findings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alternative", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("detail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_findings", schema=None) as batch_op:
        batch_op.drop_column("detail")
        batch_op.drop_column("alternative")
