"""Value types of the simulated Xero world: tenants, contacts, projects, invoices, Practice
Manager clients, jobs, job states and categories, apps, limits, faults, the ledger.

Plain frozen dataclasses and Xero's date formats; no IO. Imports nothing from syncd.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

ProjectStatus = Literal["INPROGRESS", "CLOSED"]
PROJECT_STATUSES: tuple[ProjectStatus, ...] = ("INPROGRESS", "CLOSED")
ContactStatus = Literal["ACTIVE", "ARCHIVED", "GDPRREQUEST"]
CONTACT_STATUSES: tuple[ContactStatus, ...] = ("ACTIVE", "ARCHIVED", "GDPRREQUEST")
InvoiceStatus = Literal["DRAFT", "SUBMITTED", "DELETED", "AUTHORISED", "PAID", "VOIDED"]
INVOICE_STATUSES: tuple[InvoiceStatus, ...] = (
    "DRAFT",
    "SUBMITTED",
    "DELETED",
    "AUTHORISED",
    "PAID",
    "VOIDED",
)
DropMode = Literal["raise", "hang"]
RateProblem = Literal["minute", "day", "concurrent", "appminute"]


class SandboxError(ValueError):
    """A control call the sandbox refuses (unknown tenant, bad value); the message says why."""


class UnknownEntity(SandboxError, LookupError):
    """The tenant, contact, project, invoice, Practice Manager client or job named does not
    exist."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuthApp:
    """A registered Xero app; PKCE-only when `client_secret` is None."""

    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]
    webhook_key: str | None = None
    name: str = "syncd sandbox app"


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """An Accounting API contact (the fields syncd reads and writes, plus raw lists)."""

    contact_id: str
    name: str
    status: ContactStatus = "ACTIVE"
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    contact_number: str | None = None
    account_number: str | None = None
    company_number: str | None = None
    tax_number: str | None = None
    phones: tuple[dict[str, Any], ...] = ()
    addresses: tuple[dict[str, Any], ...] = ()
    contact_persons: tuple[dict[str, Any], ...] = ()
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    """A Projects API project (job). Amounts but the estimate stay zero: no time is logged."""

    project_id: str
    contact_id: str
    name: str
    currency: str
    status: ProjectStatus = "INPROGRESS"
    deadline: datetime | None = None
    estimate: Decimal | None = None
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoice:
    """An Accounting API sales invoice (ACCREC): one total, no line items, no tax simulated."""

    invoice_id: str
    invoice_number: str
    contact_id: str
    total: Decimal
    currency: str
    status: InvoiceStatus = "AUTHORISED"
    reference: str | None = None
    issued_on: date
    due_on: date
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientContact:
    """A person on a Practice Manager client (`<Contacts><Contact>`)."""

    contact_uuid: str
    name: str
    email: str | None = None
    phone: str | None = None
    is_primary: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PracticeClient:
    """A Practice Manager client. A deleted one stays stored (its jobs still name it) but no
    client call finds it any more."""

    uuid: str
    name: str
    email: str | None = None
    phone: str | None = None
    archived: bool = False
    deleted: bool = False
    contacts: tuple[ClientContact, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class JobState:
    """A practice-defined job state: its interface `code` and whether it counts as completed
    (a job in such a state leaves `job.api/current` and carries a CompletedDate)."""

    code: str
    completed: bool = False


# What a new practice starts with (xero-facts 5.3): new jobs take the first.
DEFAULT_JOB_STATES: tuple[JobState, ...] = (
    JobState(code="Planned"),
    JobState(code="In Progress"),
    JobState(code="On Hold"),
    JobState(code="Completed", completed=True),
    JobState(code="Cancelled", completed=True),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Category:
    """A Practice Manager job category (answered as the job's `Type`)."""

    uuid: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A Practice Manager job, addressed by its `number` (`ID`, e.g. J000001) and with a UUID.
    `completed_date` is set while the job is in a completed state."""

    number: str
    uuid: str
    name: str
    description: str
    client_uuid: str
    client_order_number: str | None = None
    state: str
    start_date: date
    due_date: date
    completed_date: date | None = None
    budget: Decimal = Decimal("0.00")
    template_uuid: str | None = None
    category_uuid: str | None = None
    manager_uuid: str | None = None
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    """One connected organisation. The containers are the tenant's live, mutable world; job
    templates and staff (in XPM's element names), clients, jobs (by number), categories and
    job states belong to PRACTICEMANAGER tenants."""

    tenant_id: str
    name: str
    tenant_type: str = "ORGANISATION"
    currency: str = "AUD"
    contacts: dict[str, Contact] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    users: list[dict[str, str]] = field(default_factory=list)
    templates: list[dict[str, str]] = field(default_factory=list)  # Practice Manager only
    staff: list[dict[str, str]] = field(default_factory=list)  # Practice Manager only
    clients: dict[str, PracticeClient] = field(default_factory=dict)  # Practice Manager only
    jobs: dict[str, Job] = field(default_factory=dict)  # Practice Manager only
    categories: list[Category] = field(default_factory=list)  # Practice Manager only
    job_states: list[JobState] = field(  # Practice Manager only
        default_factory=lambda: list(DEFAULT_JOB_STATES)
    )


def _whole(name: str, value: object, *, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SandboxError(f"{name} must be a whole number, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise SandboxError(f"{name} must be {bound}, not {value}")


def _seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SandboxError(f"{name} must be a number of at least 0, not {value!r}")


@dataclass(slots=True, kw_only=True)
class Limits:
    """Xero's per-tenant limits and the app-wide minute limit (read from the global value only).

    A control knob, so mutable (`state.limits.per_minute = 30`); every assignment is checked.
    """

    per_minute: int = 60
    per_day: int = 5000
    concurrent: int = 5
    app_per_minute: int = 10000

    def __setattr__(self, name: str, value: object) -> None:
        _whole(f"limit {name}", value, low=1)
        object.__setattr__(self, name, value)


@dataclass(slots=True, kw_only=True)
class Faults:
    """Injected misbehaviour, for requests whose path starts with `path_prefix` (None: all).

    `fail_next` answers are replaced by `fail_status` after the call counted and before it is
    applied; `drop_next` answers are lost after the call was applied (`drop_mode` "raise": the
    in-process client sees `httpx.RemoteProtocolError`; "hang": the server waits
    `drop_hang_seconds` of the sandbox clock and answers 504, for clients over a real socket).
    Webhooks: `lose_webhooks_next` events about to be queued are silently lost instead (a Xero
    outage; what reconciliation must heal); with `webhooks_enabled` off the world still changes
    but nothing is queued or sent (syncd must then rely on its poller).
    A control knob, so mutable (`state.faults.fail_next = 2`); every assignment is checked.
    """

    latency_ms: float = 0.0
    fail_next: int = 0
    fail_status: int = 503
    drop_next: int = 0
    path_prefix: str | None = None
    drop_mode: DropMode = "raise"
    drop_hang_seconds: float = 30.0
    lose_webhooks_next: int = 0
    webhooks_enabled: bool = True

    def __setattr__(self, name: str, value: object) -> None:
        if name in ("latency_ms", "drop_hang_seconds"):
            _seconds(name, value)
        elif name in ("fail_next", "drop_next", "lose_webhooks_next"):
            _whole(name, value, low=0)
        elif name == "fail_status":
            _whole(name, value, low=400, high=599)
        elif name == "path_prefix" and value is not None and not isinstance(value, str):
            raise SandboxError(f"path_prefix must be a string or null, not {value!r}")
        elif name == "drop_mode" and value not in ("raise", "hang"):
            raise SandboxError(f"drop_mode must be 'raise' or 'hang', not {value!r}")
        elif name == "webhooks_enabled" and not isinstance(value, bool):
            raise SandboxError(f"webhooks_enabled must be true or false, not {value!r}")
        object.__setattr__(self, name, value)

    def applies_to(self, path: str) -> bool:
        return path.lower().startswith((self.path_prefix or "").lower())


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    """One request the sandbox received. `status` is None while the request is in flight.

    `counted` says whether the call passed the rate limiter (and so counts against the limits);
    `concurrent_in_flight` is the tenant's calls in flight when it arrived, itself included;
    `fault` is "fail" or "drop" when an injected fault hit it.
    """

    seq: int
    at: datetime
    method: str
    path: str
    query: str
    tenant_id: str | None
    status: int | None
    idempotency_key: str | None
    concurrent_in_flight: int
    rate_limited: bool
    fault: str | None
    counted: bool = False
    replayed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "tenant_id": self.tenant_id,
            "status": self.status,
            "idempotency_key": self.idempotency_key,
            "concurrent_in_flight": self.concurrent_in_flight,
            "rate_limited": self.rate_limited,
            "fault": self.fault,
            "counted": self.counted,
            "replayed": self.replayed,
        }


# -- Xero's date formats ----------------------------------------------------------------------


def ms_date(value: datetime, *, offset: bool = True) -> str:
    """The Accounting API's .NET JSON date: `/Date(1503348544227+0000)/`."""
    millis = int(value.astimezone(UTC).timestamp() * 1000)
    return f"/Date({millis}+0000)/" if offset else f"/Date({millis})/"


def ms_day(value: date) -> str:
    """A calendar date in the .NET form, at midnight UTC: `/Date(1539993600000+0000)/`."""
    return ms_date(datetime(value.year, value.month, value.day, tzinfo=UTC))


def utc_iso(value: datetime) -> str:
    """Projects' ISO-8601 UTC form: `2020-03-03T15:00:00Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "Z"


def connection_date(value: datetime) -> str:
    """Identity's connection timestamps: seven fractional digits and no zone designator."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


def parse_iso(value: str) -> datetime:
    """An ISO-8601 timestamp; a value without a zone is read as UTC (Xero's convention)."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredResponse:
    """A complete HTTP answer, as kept for Idempotency-Key replays and dropped answers."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
