"""Outbound planning, pure: what a CRM request's current state means for Xero, as outbox task
specs with idempotency keys. The change feed, the CRM's pushed events and manual syncs all plan
through here, so the same fact always yields the same key (and so one task).

    kind            key                                        order
    create_job      create:{request}                           request:{request}
    set_job_state   state:{request}:{state}:{crm version}      request:{request}
    set_job_manager manager:{request}:{accountant}:{version}   request:{request}
    sync_contact    contact:{client}:{details hash}            client:{client}
    sync_request    sync:{request}:{at}                        request:{request}
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from syncd.domain.statuses import CreateJob, LinkView, SetXeroState, StatusMapping, decide_outbound

CREATE_JOB = "create_job"
SET_JOB_STATE = "set_job_state"
SET_JOB_MANAGER = "set_job_manager"
SYNC_CONTACT = "sync_contact"
SYNC_REQUEST = "sync_request"
POLL_COMPANY = "poll_company"


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpec:
    kind: str
    key: str
    order_key: str | None
    payload: dict[str, Any] = field(default_factory=dict)


def request_order(request_id: str) -> str:
    return f"request:{request_id}"


def create_job(request_id: str) -> TaskSpec:
    """One creation per request, ever: retries and repeats of the fact share the key."""
    return TaskSpec(
        kind=CREATE_JOB,
        key=f"create:{request_id}",
        order_key=request_order(request_id),
        payload={"request_id": request_id},
    )


def set_job_state(request_id: str, state: str, version: str) -> TaskSpec:
    return TaskSpec(
        kind=SET_JOB_STATE,
        key=f"state:{request_id}:{state}:{version}",
        order_key=request_order(request_id),
        payload={"request_id": request_id, "state": state},
    )


def set_job_manager(request_id: str, accountant_id: str, version: str) -> TaskSpec:
    """Make the accountant's staff member the job's manager (Practice Manager): after creation
    and after each reassignment. Running it again when the manager is already right is free."""
    return TaskSpec(
        kind=SET_JOB_MANAGER,
        key=f"manager:{request_id}:{accountant_id}:{version}",
        order_key=request_order(request_id),
        payload={"request_id": request_id},
    )


def contact_fingerprint(name: str, email: str | None) -> str:
    text = f"{' '.join(name.split())}\n{(email or '').strip().lower()}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def sync_contact(client_id: str, name: str, email: str | None) -> TaskSpec:
    return TaskSpec(
        kind=SYNC_CONTACT,
        key=f"contact:{client_id}:{contact_fingerprint(name, email)}",
        order_key=f"client:{client_id}",
        payload={"client_id": client_id},
    )


def sync_request(request_id: str, at: datetime) -> TaskSpec:
    """A manual "sync now": each press is its own task (same second: the same press)."""
    return TaskSpec(
        kind=SYNC_REQUEST,
        key=f"sync:{request_id}:{int(at.timestamp())}",
        order_key=request_order(request_id),
        payload={"request_id": request_id},
    )


def plan_request(
    *,
    mapping: StatusMapping,
    request_id: str,
    status: str,
    version: str,
    link: LinkView | None,
    has_job: bool,
    accountant_id: str | None = None,
    managed: bool = False,
) -> list[TaskSpec]:
    """The tasks a request's current status (and, where jobs have managers, its accountant)
    calls for: none when Xero is already there."""
    decision = decide_outbound(mapping=mapping, link=link, crm_status=status, has_job=has_job)
    specs = []
    if isinstance(decision, CreateJob):
        specs.append(create_job(request_id))
    if isinstance(decision, SetXeroState):
        specs.append(set_job_state(request_id, decision.state, version))
    reassigned = link is not None and accountant_id != link.manager_written
    if managed and has_job and accountant_id is not None and reassigned:
        specs.append(set_job_manager(request_id, accountant_id, version))
    return specs
