"""Jobs: requests without a job, links to jobs that are gone, status drift (by class, with which
side moved last), jobs of mapped clients that no request knows, and duplicate jobs.

Only the index's suspects are examined: requests not plainly in step with their job, jobs
linked by no request or by several, and groups of jobs sharing a contact and name.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import compress, count, repeat
from operator import is_

from reconcilers.findings import Action, Finding, Kind, Severity
from reconcilers.index import Index
from reconcilers.snapshots import CrmRequest, Link, Snapshot, XeroJob
from syncd.domain.statuses import ConflictPolicy, StatusClass

OPEN, CLOSED, UNKNOWN = StatusClass.OPEN, StatusClass.CLOSED, StatusClass.UNKNOWN


def check(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
    """From the CRM's side, in request order: the index's suspects only."""
    busy = snapshot.busy_requests
    for request in index.suspects:
        if request.request_id in busy:
            continue  # a task is already on it: not drift, work in progress
        finding = _request(snapshot, index, request, index.links.get(request.request_id))
        if finding is not None:
            yield finding


def _request(
    snapshot: Snapshot, index: Index, request: CrmRequest, link: Link | None
) -> Finding | None:
    crm_class = index.crm_class[request.status]
    job_id = None if link is None else link.job_id
    if link is None or job_id is None:
        if crm_class is not OPEN:
            return None
        return Finding(
            kind=Kind.ASSIGNED_WITHOUT_JOB,
            severity=Severity.MEDIUM,
            subject=f"request:{request.request_id}",
            request_id=request.request_id,
            crm=_crm(request),
            action=Action.CREATE_JOB,
            detail="the request is being worked on but has no Xero job",
        )
    n = None if link.deleted else index.jobs.position.get(job_id)
    if n is not None:
        state: str | None = index.jobs.listed[n].status
    elif link.deleted or snapshot.capabilities.lists_closed_jobs or link.xero_seen is None:
        state = None
    else:  # Practice Manager lists no closed job: one last seen closed stands as seen
        state = link.xero_seen if index.xero_class[link.xero_seen] is CLOSED else None
    if state is None:
        return Finding(
            kind=Kind.JOB_MISSING_IN_XERO,
            severity=Severity.MEDIUM,
            subject=f"request:{request.request_id}",
            request_id=request.request_id,
            crm=_crm(request),
            xero={"job_id": job_id, "exists": False},
            action=Action.RECREATE_JOB if crm_class is OPEN else Action.REVIEW,
            detail="the linked job no longer exists in Xero",
        )
    xero_class = index.xero_class[state]
    if xero_class is UNKNOWN:
        return Finding(
            kind=Kind.UNKNOWN_XERO_STATE,
            severity=Severity.MEDIUM,
            subject=f"request:{request.request_id}",
            request_id=request.request_id,
            crm=_crm(request),
            xero={"job_id": job_id, "status": state},
            action=Action.MAP,
            detail=f"Xero's state {state!r} is not one the practice has classed as open or "
            "closed: declare it in the settings (syncd never guesses)",
        )
    if crm_class is StatusClass.NO_JOB or crm_class is xero_class:
        return None
    return _drift(snapshot, index, request, link, crm_class, xero_class, state)


def _drift(
    snapshot: Snapshot,
    index: Index,
    request: CrmRequest,
    link: Link,
    crm_class: StatusClass,
    xero_class: StatusClass,
    state: str,
) -> Finding:
    """The two sides in different classes: which moved since the last sync decides."""
    # Xero in the class syncd asked for is syncd's write (perhaps one whose answer was lost),
    # made for the CRM: the CRM is then the side that moved since.
    echo = link.xero_written is not None and index.xero_class[link.xero_written] is xero_class
    crm_moved = echo or (
        link.crm_seen is not None and index.crm_class[link.crm_seen] is not crm_class
    )
    xero_moved = (
        not echo
        and link.xero_seen is not None
        and index.xero_class[link.xero_seen] is not xero_class
    )
    policy = snapshot.conflict_policy
    if crm_moved and not xero_moved:
        changed = "the CRM changed last"
    elif xero_moved and not crm_moved:
        changed = "Xero changed last"
    else:
        changed = f"which side changed last is unknown; policy {policy}"
    xero_wins = (xero_moved and not crm_moved) or (
        crm_moved == xero_moved and policy is ConflictPolicy.XERO_WINS
    )
    # (StrEnums format as their values.)
    return Finding(
        kind=Kind.STATUS_DRIFT,
        severity=Severity.HIGH,
        subject=f"request:{request.request_id}",
        request_id=request.request_id,
        crm=_crm(request),
        xero={"job_id": link.job_id, "status": state},
        action=Action.APPLY_XERO_STATUS if xero_wins else Action.PUSH_CRM_STATUS,
        alternative=Action.PUSH_CRM_STATUS if xero_wins else Action.APPLY_XERO_STATUS,
        detail=f"CRM {request.status} ({crm_class}) vs Xero {state} ({xero_class}); {changed}",
    )


def check_jobs(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
    """From Xero's side, in listing order: jobs linked more than once, and jobs of mapped
    clients that no request links; then each group of jobs with one contact and name."""
    jobs = index.jobs
    mapped = {contact: client for client, contact in snapshot.mappings.contacts.items()}
    distinct = len(jobs.position) == len(jobs.listed)  # no job id listed twice
    # Positions no link was recorded at (never linked, or an earlier listing of a job id
    # listed twice), and those linked several times.
    unlinked = compress(count(), map(is_, jobs.first_link, repeat(None)))
    for n in sorted({*unlinked, *jobs.more_links}):
        job = jobs.listed[n]
        linking = jobs.linking_at(n) if distinct else jobs.linking(job.job_id)
        if len(linking) > 1:
            yield _linked_twice(job, sorted(linking))
        elif not linking and job.contact_id in mapped:
            yield _unknown(job, mapped[job.contact_id])
    for (_, name), group in jobs.groups.items():
        linked = sorted(r for job in group for r in jobs.linking(job.job_id))
        if not linked:
            continue
        job_ids = sorted(job.job_id for job in group)
        yield Finding(
            kind=Kind.DUPLICATE_JOBS,
            severity=Severity.MEDIUM,
            subject=f"job:{job_ids[0]}",
            request_id=linked[0],
            crm={"request_ids": linked},
            xero={"job_ids": job_ids, "name": name},
            action=Action.REVIEW,
            detail=f"{len(group)} Xero jobs with the same contact and name",
        )


def _linked_twice(job: XeroJob, linking: list[str]) -> Finding:
    return Finding(
        kind=Kind.DUPLICATE_JOBS,
        severity=Severity.MEDIUM,
        subject=f"job:{job.job_id}",
        request_id=linking[0],
        crm={"request_ids": linking},
        xero={"job_id": job.job_id, "name": job.name},
        action=Action.REVIEW,
        detail="one Xero job is linked to several requests",
    )


def _unknown(job: XeroJob, client_id: str) -> Finding:
    return Finding(
        kind=Kind.JOB_FOR_UNKNOWN_REQUEST,
        severity=Severity.MEDIUM,
        subject=f"job:{job.job_id}",
        crm={"client_id": client_id},
        xero={
            "job_id": job.job_id,
            "name": job.name,
            "status": job.status,
            "contact_id": job.contact_id,
        },
        action=Action.REVIEW,
        detail="a job of a mapped client that no CRM request is linked to",
    )


def _crm(request: CrmRequest) -> dict[str, object]:
    return {
        "request_id": request.request_id,
        "status": request.status,
        "client_id": request.client_id,
    }
