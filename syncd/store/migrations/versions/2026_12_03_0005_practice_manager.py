"""Practice Manager: a job link remembers the manager and due date syncd saw (and the manager it
wrote) in Xero, so the poller can tell a change made in XPM from syncd's own write.

Expand-only: three nullable columns.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("xero_manager_seen", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("xero_manager_written", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("xero_due_seen", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_links", schema=None) as batch_op:
        batch_op.drop_column("xero_due_seen")
        batch_op.drop_column("xero_manager_written")
        batch_op.drop_column("xero_manager_seen")
