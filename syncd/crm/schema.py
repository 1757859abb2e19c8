"""The CRM's own tables (shared/crm-reference-schema.sql) as SQLAlchemy Core, for SQLite and
PostgreSQL. syncd never creates them in a real deployment; the sandbox and the tests do.

The CRM stores naive timestamps meaning UTC: `NaiveUTCDateTime` takes aware datetimes in and
gives aware UTC out, and refuses naive ones. Imports `syncd.clock` only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from syncd.clock import ensure_aware

ROLE_NAMES = ("super_admin", "practice_admin", "accountant", "client")


class NaiveUTCDateTime(TypeDecorator[datetime]):
    """`TIMESTAMP` without time zone holding UTC: aware in (naive refused), aware UTC out."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return ensure_aware(value).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class utcnow(FunctionElement[datetime]):
    """The current UTC time as a naive timestamp, whatever the session's time zone."""

    type = NaiveUTCDateTime()
    inherit_cache = True


@compiles(utcnow)
def _utcnow_default(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's clock is UTC; written in the text format SQLAlchemy stores (microseconds), so
    # defaulted rows compare correctly with the ones syncd writes.
    return "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


@compiles(utcnow, "postgresql")
def _utcnow_postgresql(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return "(now() AT TIME ZONE 'utc')"


metadata = MetaData()

companies = Table(
    "companies",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
)

roles = Table(
    "roles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), unique=True, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("company_id", String(36), ForeignKey("companies.id")),
    Column("role_id", Integer, ForeignKey("roles.id"), nullable=False),
    Column("email", String(255), nullable=False),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("phone", String(50)),
    Column("is_active", Boolean, server_default=true()),
)

services = Table(
    "services",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("company_id", String(36), ForeignKey("companies.id")),  # NULL: every practice
    Column("name", String(200), nullable=False),
    Column("base_price", Numeric(12, 2)),
)

service_requests = Table(
    "service_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("company_id", String(36), ForeignKey("companies.id"), nullable=False),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("service_id", Integer, ForeignKey("services.id"), nullable=False),
    Column("assigned_to_id", String(36), ForeignKey("users.id")),
    Column("status", String(20), nullable=False, server_default="pending"),
    Column("description", Text),
    Column("due_date", Date),
    Column("assigned_at", NaiveUTCDateTime()),
    Column("created_at", NaiveUTCDateTime(), nullable=False, server_default=utcnow()),
    Column("updated_at", NaiveUTCDateTime(), nullable=False, server_default=utcnow()),
    # The integration's columns: written by syncd, never bumping updated_at.
    Column("xero_job_id", String(100)),
    Column("xero_job_number", String(50)),
    Column("xero_synced_at", NaiveUTCDateTime()),
    Column("xero_sync_error", Text),
    Index("ix_service_requests_company_updated", "company_id", "updated_at"),
)
