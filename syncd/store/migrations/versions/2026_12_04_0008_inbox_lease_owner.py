"""Inbox events record which worker holds their lease, as outbox tasks do, so that only the
holder settles an event and a worker whose lease was taken over cannot overwrite the result.

Expand-only: one nullable column. During a rolling deploy an old worker's claim leaves the column
as it was, but a claim always adds an attempt, and settling checks the attempt too, so a new
worker still cannot settle a claim that is no longer its own.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.drop_column("lease_owner")
