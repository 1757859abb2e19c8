"""The two job backends a practice's Xero connection can have, and what each one offers. Pure.

The connection's `tenantType` decides: `PRACTICEMANAGER` is Xero Practice Manager (v3.1 XML:
templates, managers, practice-defined job states, no listing of closed jobs), anything else is
Xero Projects (two fixed states, no templates, users stand in for staff).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from syncd.domain.statuses import CrmStatus, StatusClass, StatusMapping, state_key


class Backend(StrEnum):
    PROJECTS = "projects"
    PRACTICE_MANAGER = "practicemanager"

    @classmethod
    def for_tenant_type(cls, tenant_type: str | None) -> Backend:
        if (tenant_type or "").upper() == "PRACTICEMANAGER":
            return cls.PRACTICE_MANAGER
        return cls.PROJECTS

    @property
    def label(self) -> str:
        return "Xero Practice Manager" if self is Backend.PRACTICE_MANAGER else "Xero Projects"


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    templates: bool  # jobs are made from job templates (service → template mapping)
    managers: bool  # jobs have a manager (accountant → staff, assigned after creation)
    categories: bool  # jobs have a category (the practice's default job category)
    fixed_states: bool  # the states are Xero's own, not the practice's
    lists_closed_jobs: bool  # the job listing includes completed and cancelled jobs
    follows_details: bool  # due date and manager changes in Xero are carried to the CRM
    # A job keeps syncd's request reference (XPM's client order number): a retried creation
    # finds its job by it, instead of relying on Idempotency-Key (which XPM does not honour).
    references: bool


CAPABILITIES = {
    Backend.PROJECTS: Capabilities(
        templates=False,
        managers=False,
        categories=False,
        fixed_states=True,
        lists_closed_jobs=True,
        follows_details=False,
        references=False,
    ),
    Backend.PRACTICE_MANAGER: Capabilities(
        templates=True,
        managers=True,
        categories=True,
        fixed_states=False,
        lists_closed_jobs=False,
        follows_details=True,
        references=True,
    ),
}

PROJECTS_STATES = ("INPROGRESS", "CLOSED")

# XPM's job states are interface codes each practice defines; these are the common defaults
# (xero-facts §5.3), which a practice changes in its settings.
PRACTICE_MANAGER_OUTBOUND = {
    CrmStatus.ASSIGNED: "Planned",
    CrmStatus.PROCESSING: "In Progress",
    CrmStatus.COMPLETED: "Completed",
    CrmStatus.CANCELLED: "Cancelled",
}


def default_mapping(backend: Backend) -> StatusMapping:
    if backend is Backend.PROJECTS:
        return StatusMapping()
    return StatusMapping(
        xero_classes={
            state_key(code): (
                StatusClass.CLOSED
                if status in (CrmStatus.COMPLETED, CrmStatus.CANCELLED)
                else StatusClass.OPEN
            )
            for status, code in PRACTICE_MANAGER_OUTBOUND.items()
        },
        outbound=dict(PRACTICE_MANAGER_OUTBOUND),
    )


# The scopes each backend's calls need: one of each group (the broad scope, or the granular one
# that replaces it; xero-facts §2.4).
NEEDED_SCOPES = {
    Backend.PROJECTS: (("projects",), ("accounting.contacts",)),
    Backend.PRACTICE_MANAGER: tuple(
        ("practicemanager", f"practicemanager.{area}") for area in ("job", "client", "staff")
    ),
}


def missing_scopes(backend: Backend, granted: str) -> list[str]:
    """The scopes (one per group) a consent lacks for this backend's calls."""
    have = set(granted.split())
    return [group[-1] for group in NEEDED_SCOPES[backend] if not have & set(group)]
