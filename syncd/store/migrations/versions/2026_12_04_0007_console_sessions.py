"""Console sessions live in the database: each sign-in link is remembered until it expires (so
it works once), and each session is a row the cookie is checked against (so sign-out revokes it).

Expand-only: two new tables. Sessions signed before the upgrade (stateless cookies) no longer
verify, so admins come through the CRM once more.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_handoffs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("nonce_hash", sa.String(length=64), nullable=True),
        sa.Column("browser_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_handoffs")),
    )
    with op.batch_alter_table("console_handoffs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_handoffs_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_sessions_company_id_user_id"),
            ["company_id", "user_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_console_sessions_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_console_sessions_company_id_user_id"))
    op.drop_table("console_sessions")
    with op.batch_alter_table("console_handoffs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_handoffs_expires_at"))
    op.drop_table("console_handoffs")
