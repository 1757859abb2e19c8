"""Snapshots of both sides, as plain frozen values (syncd's runner builds them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from syncd.domain.statuses import ConflictPolicy, StatusMapping


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmRequest:
    request_id: str
    client_id: str
    service_id: int
    accountant_id: str | None
    status: str
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmPerson:
    person_id: str
    name: str
    email: str | None
    active: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmService:
    service_id: int
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class XeroJob:
    job_id: str
    contact_id: str | None
    name: str
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class XeroContact:
    contact_id: str
    name: str
    email: str | None
    archived: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class XeroStaff:
    staff_id: str
    name: str
    email: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    request_id: str
    job_id: str | None
    crm_seen: str | None = None
    xero_seen: str | None = None
    xero_written: str | None = None  # what syncd last asked Xero for (see syncd.domain.statuses)
    deleted: bool = False  # the poller (or the snapshot) found the job deleted in Xero


@dataclass(frozen=True, slots=True, kw_only=True)
class Mappings:
    contacts: dict[str, str] = field(default_factory=dict)  # CRM client id -> Xero contact id
    staff: dict[str, str] = field(default_factory=dict)  # CRM accountant id -> Xero staff id
    services: dict[int, str] = field(default_factory=dict)  # CRM service id -> template id


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What the practice's Xero backend has (Projects: no templates; users stand in for staff;
    Practice Manager lists only current jobs, so a linked job last seen closed is not in the
    snapshot and stands as the link last saw it)."""

    templates: bool = False
    staff: bool = True
    lists_closed_jobs: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    requests: list[CrmRequest]
    clients: list[CrmPerson]
    accountants: list[CrmPerson]
    services: list[CrmService]
    jobs: list[XeroJob]
    contacts: list[XeroContact]
    staff: list[XeroStaff]
    links: list[Link]
    mappings: Mappings = field(default_factory=Mappings)
    # Requests with unfinished outbox tasks: in motion, so not drift.
    busy_requests: frozenset[str] = frozenset()
    capabilities: Capabilities = field(default_factory=Capabilities)
    status_mapping: StatusMapping = field(default_factory=StatusMapping)
    conflict_policy: ConflictPolicy = ConflictPolicy.CRM_WINS
