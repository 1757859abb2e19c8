"""What reconciliation finds: a kind, both sides' values, a severity and a proposed action."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import partial
from typing import Any, NamedTuple, cast


class Kind(StrEnum):
    ASSIGNED_WITHOUT_JOB = "assigned_without_job"
    JOB_MISSING_IN_XERO = "job_missing_in_xero"
    STATUS_DRIFT = "status_drift"
    JOB_FOR_UNKNOWN_REQUEST = "job_for_unknown_request"
    CLIENT_NOT_MAPPED = "client_not_mapped"
    STAFF_NOT_MAPPED = "staff_not_mapped"
    SERVICE_NOT_MAPPED = "service_not_mapped"
    DUPLICATE_JOBS = "duplicate_jobs"
    CONTACT_ARCHIVED = "contact_archived"
    UNKNOWN_XERO_STATE = "unknown_xero_state"


class Severity(StrEnum):
    HIGH = "high"  # the two systems disagree about work: someone will act on wrong data
    MEDIUM = "medium"  # work is missing or doubled on one side
    LOW = "low"  # set-up gaps: syncd works around them, but less well


class Action(StrEnum):
    CREATE_JOB = "create_job"  # enqueue the ordinary job creation
    RECREATE_JOB = "recreate_job"  # forget the dead link, then create the job again
    PUSH_CRM_STATUS = "push_crm_status"  # set the Xero job to the CRM's status
    APPLY_XERO_STATUS = "apply_xero_status"  # set the CRM request to the Xero job's status
    MAP_STAFF_BY_EMAIL = "map_staff_by_email"  # the one Xero user with the same email
    REMAP_CONTACT = "remap_contact"  # drop the mapping; the next job finds or creates one
    REVIEW = "review"  # a person decides (link it, close a duplicate, ...)
    MAP = "map"  # a person maps it in the admin console


class _Fields(NamedTuple):
    kind: Kind
    severity: Severity
    subject: str  # what it is about: "request:…", "job:…", "client:…", "accountant:…"
    action: Action
    request_id: str | None
    crm: dict[str, Any]
    xero: dict[str, Any]
    # What "accept the other side" does instead of `action`, where there is such a thing.
    alternative: Action | None
    detail: str


class Finding(_Fields):
    """An immutable finding. A tuple rather than a frozen dataclass: a run can find tens of
    thousands (status drift in a large practice), and a frozen dataclass costs three times as
    much to build (docs/reconcile-performance.md). The reconcilers build them with `found`."""

    __slots__ = ()

    def __new__(
        cls,
        *,
        kind: Kind,
        severity: Severity,
        subject: str,
        action: Action,
        request_id: str | None = None,
        crm: dict[str, Any] | None = None,
        xero: dict[str, Any] | None = None,
        alternative: Action | None = None,
        detail: str = "",
    ) -> Finding:
        return tuple.__new__(
            cls,
            (
                kind,
                severity,
                subject,
                action,
                request_id,
                {} if crm is None else crm,
                {} if xero is None else xero,
                alternative,
                detail,
            ),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "subject": self.subject,
            "request_id": self.request_id,
            "crm": self.crm,
            "xero": self.xero,
            "action": self.action.value,
            "alternative": self.alternative.value if self.alternative else None,
            "detail": self.detail,
        }


Fields = tuple[
    Kind, Severity, str, Action, str | None, dict[str, Any], dict[str, Any], Action | None, str
]
# A finding from its fields in order (kind, severity, subject, action, request_id, crm, xero,
# alternative, detail): what the hot loops call, without parsing keywords (a C-level call).
found = cast(Callable[[Fields], Finding], partial(tuple.__new__, Finding))
