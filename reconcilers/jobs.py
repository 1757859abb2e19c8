"""Jobs: requests without a job, links to jobs that are gone, status drift (by class, with which
side moved last), jobs of mapped clients that no request knows, and duplicate jobs."""

from __future__ import annotations

from collections.abc import Iterator

from reconcilers.findings import Action, Finding, Kind, Severity
from reconcilers.index import Index
from reconcilers.snapshots import CrmRequest, Link, Snapshot, XeroJob
from syncd.domain.statuses import ConflictPolicy, StatusClass


def check(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
    busy, classes = snapshot.busy_requests, index.crm_class
    for request in snapshot.requests:
        if request.request_id in busy:
            continue  # a task is already on it: not drift, work in progress
        crm_class = classes[request.status]
        link = index.links.get(request.request_id)
        job_id = link.job_id if link else None
        if job_id is None:
            if crm_class is StatusClass.OPEN:
                yield Finding(
                    kind=Kind.ASSIGNED_WITHOUT_JOB,
                    severity=Severity.MEDIUM,
                    subject=f"request:{request.request_id}",
                    request_id=request.request_id,
                    crm=_request(request),
                    action=Action.CREATE_JOB,
                    detail="the request is being worked on but has no Xero job",
                )
            continue
        job = None if link is None or link.deleted else index.jobs.get(job_id)
        if job is None and link is not None and not link.deleted:
            job = _unlisted(snapshot, index, link)
        if job is None:
            yield Finding(
                kind=Kind.JOB_MISSING_IN_XERO,
                severity=Severity.MEDIUM,
                subject=f"request:{request.request_id}",
                request_id=request.request_id,
                crm=_request(request),
                xero={"job_id": job_id, "exists": False},
                action=Action.RECREATE_JOB if crm_class is StatusClass.OPEN else Action.REVIEW,
                detail="the linked job no longer exists in Xero",
            )
            continue
        drift = _drift(snapshot, request, link, job)
        if drift is not None:
            yield drift


def _unlisted(snapshot: Snapshot, index: Index, link: Link) -> XeroJob | None:
    """A linked job the listing leaves out because it is closed (Practice Manager's current
    list): it stands as the link last saw it."""
    if snapshot.capabilities.lists_closed_jobs or link.job_id is None or link.xero_seen is None:
        return None
    if index.xero_class.get(link.xero_seen) is not StatusClass.CLOSED:
        return None
    return XeroJob(job_id=link.job_id, contact_id=None, name="", status=link.xero_seen)


def _drift(
    snapshot: Snapshot, request: CrmRequest, link: Link | None, job: XeroJob
) -> Finding | None:
    mapping = snapshot.status_mapping
    crm_class = mapping.crm_class(request.status)
    xero_class = mapping.xero_class(job.status)
    if xero_class is StatusClass.UNKNOWN:
        return Finding(
            kind=Kind.UNKNOWN_XERO_STATE,
            severity=Severity.MEDIUM,
            subject=f"request:{request.request_id}",
            request_id=request.request_id,
            crm=_request(request),
            xero={"job_id": job.job_id, "status": job.status},
            action=Action.MAP,
            detail=f"Xero's state {job.status!r} is not one the practice has classed as open or "
            "closed: declare it in the settings (syncd never guesses)",
        )
    if crm_class is StatusClass.NO_JOB or crm_class is xero_class:
        return None
    # Xero in the class syncd asked for is syncd's write (perhaps one whose answer was lost),
    # made for the CRM: the CRM is then the side that moved since.
    echo = (
        link is not None
        and link.xero_written is not None
        and mapping.xero_class(link.xero_written) is xero_class
    )
    crm_moved = echo or (
        link is not None
        and link.crm_seen is not None
        and (mapping.crm_class(link.crm_seen) is not crm_class)
    )
    xero_moved = (
        not echo
        and link is not None
        and link.xero_seen is not None
        and (mapping.xero_class(link.xero_seen) is not xero_class)
    )
    if crm_moved and not xero_moved:
        action, alternative, why = Action.PUSH_CRM_STATUS, Action.APPLY_XERO_STATUS, "CRM"
    elif xero_moved and not crm_moved:
        action, alternative, why = Action.APPLY_XERO_STATUS, Action.PUSH_CRM_STATUS, "Xero"
    elif snapshot.conflict_policy is ConflictPolicy.XERO_WINS:
        action, alternative, why = Action.APPLY_XERO_STATUS, Action.PUSH_CRM_STATUS, "unknown"
    else:
        action, alternative, why = Action.PUSH_CRM_STATUS, Action.APPLY_XERO_STATUS, "unknown"
    changed = {"CRM": "the CRM changed last", "Xero": "Xero changed last"}.get(
        why, f"which side changed last is unknown; policy {snapshot.conflict_policy.value}"
    )
    return Finding(
        kind=Kind.STATUS_DRIFT,
        severity=Severity.HIGH,
        subject=f"request:{request.request_id}",
        request_id=request.request_id,
        crm=_request(request),
        xero={"job_id": job.job_id, "status": job.status},
        action=action,
        alternative=alternative,
        detail=f"CRM {request.status} ({crm_class.value}) vs Xero {job.status} "
        f"({xero_class.value}); {changed}",
    )


def check_jobs(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
    """From Xero's side: unknown jobs of mapped clients, and duplicates."""
    first: dict[tuple[str | None, str], XeroJob] = {}
    groups: dict[tuple[str | None, str], list[XeroJob]] = {}
    mapped_contacts = index.client_by_contact
    for job in snapshot.jobs:
        key = (job.contact_id, job.name)
        seen = first.setdefault(key, job)
        if seen is not job:
            groups.setdefault(key, [seen]).append(job)
        linked = index.linked_jobs.get(job.job_id, ())
        if len(linked) > 1:
            yield Finding(
                kind=Kind.DUPLICATE_JOBS,
                severity=Severity.MEDIUM,
                subject=f"job:{job.job_id}",
                request_id=sorted(linked)[0],
                crm={"request_ids": sorted(linked)},
                xero={"job_id": job.job_id, "name": job.name},
                action=Action.REVIEW,
                detail="one Xero job is linked to several requests",
            )
        if not linked and job.contact_id in mapped_contacts:
            client = mapped_contacts[job.contact_id]
            yield Finding(
                kind=Kind.JOB_FOR_UNKNOWN_REQUEST,
                severity=Severity.MEDIUM,
                subject=f"job:{job.job_id}",
                crm={"client_id": client},
                xero={
                    "job_id": job.job_id,
                    "name": job.name,
                    "status": job.status,
                    "contact_id": job.contact_id,
                },
                action=Action.REVIEW,
                detail="a job of a mapped client that no CRM request is linked to",
            )
    for (_, name), jobs in groups.items():
        linked_requests = sorted(r for job in jobs for r in index.linked_jobs.get(job.job_id, []))
        if not linked_requests:
            continue
        yield Finding(
            kind=Kind.DUPLICATE_JOBS,
            severity=Severity.MEDIUM,
            subject=f"job:{sorted(j.job_id for j in jobs)[0]}",
            request_id=linked_requests[0],
            crm={"request_ids": linked_requests},
            xero={"job_ids": sorted(j.job_id for j in jobs), "name": name},
            action=Action.REVIEW,
            detail=f"{len(jobs)} Xero jobs with the same contact and name",
        )


def _request(request: CrmRequest) -> dict[str, object]:
    return {
        "request_id": request.request_id,
        "status": request.status,
        "client_id": request.client_id,
    }
