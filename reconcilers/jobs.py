"""Jobs: requests without a job, links to jobs that are gone, status drift (by class, with which
side moved last), jobs of mapped clients that no request knows, and duplicate jobs.

Only the index's suspects are examined: requests not plainly in step with their job, jobs
linked by no request or by several, and groups of jobs sharing a contact and name.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import compress, count, repeat
from operator import is_
from typing import Any

from reconcilers.findings import Action, Finding, Kind, Severity
from reconcilers.findings import found as make
from reconcilers.index import Index
from reconcilers.snapshots import CrmRequest, Snapshot, XeroJob
from syncd.domain.statuses import ConflictPolicy, StatusClass

OPEN, CLOSED, NO_JOB = StatusClass.OPEN, StatusClass.CLOSED, StatusClass.NO_JOB
UNKNOWN = StatusClass.UNKNOWN
MEDIUM, HIGH = Severity.MEDIUM, Severity.HIGH
ASSIGNED_WITHOUT_JOB, JOB_MISSING_IN_XERO = Kind.ASSIGNED_WITHOUT_JOB, Kind.JOB_MISSING_IN_XERO
UNKNOWN_XERO_STATE, STATUS_DRIFT = Kind.UNKNOWN_XERO_STATE, Kind.STATUS_DRIFT
CREATE_JOB, RECREATE_JOB, REVIEW, MAP = (
    Action.CREATE_JOB,
    Action.RECREATE_JOB,
    Action.REVIEW,
    Action.MAP,
)
PUSH_CRM_STATUS, APPLY_XERO_STATUS = Action.PUSH_CRM_STATUS, Action.APPLY_XERO_STATUS


def check(snapshot: Snapshot, index: Index) -> list[Finding]:
    """From the CRM's side, in request order: the index's suspects only.

    One loop, no Python call per suspect beyond building its finding: status drift in a large
    practice means tens of thousands of findings (docs/reconcile-performance.md)."""
    found: list[Finding] = []
    add = found.append
    busy, links = snapshot.busy_requests, index.links.get
    position, listed = index.jobs.position.get, index.jobs.listed
    crm_classes, xero_classes = index.crm_class, index.xero_class
    lists_closed = snapshot.capabilities.lists_closed_jobs
    policy = snapshot.conflict_policy
    xero_wins = policy is ConflictPolicy.XERO_WINS
    unknown = f"which side changed last is unknown; policy {policy}"
    for request in index.suspects:
        request_id = request.request_id
        if request_id in busy:
            continue  # a task is already on it: not drift, work in progress
        crm_class = crm_classes[request.status]
        link = links(request_id)
        job_id = None if link is None else link.job_id
        if link is None or job_id is None:
            if crm_class is OPEN:
                add(
                    make(
                        (
                            ASSIGNED_WITHOUT_JOB,
                            MEDIUM,
                            "request:" + request_id,
                            CREATE_JOB,
                            request_id,
                            _crm(request),
                            {},
                            None,
                            "the request is being worked on but has no Xero job",
                        )
                    )
                )
            continue
        state: str | None = None
        if not link.deleted:
            n = position(job_id)
            if n is not None:
                state = listed[n].status
            elif (
                not lists_closed
                and link.xero_seen is not None
                and xero_classes[link.xero_seen] is CLOSED
            ):
                state = link.xero_seen  # Practice Manager lists no closed job: it stands
        if state is None:
            add(
                make(
                    (
                        JOB_MISSING_IN_XERO,
                        MEDIUM,
                        "request:" + request_id,
                        RECREATE_JOB if crm_class is OPEN else REVIEW,
                        request_id,
                        _crm(request),
                        {"job_id": job_id, "exists": False},
                        None,
                        "the linked job no longer exists in Xero",
                    )
                )
            )
            continue
        xero_class = xero_classes[state]
        if xero_class is UNKNOWN:
            add(
                make(
                    (
                        UNKNOWN_XERO_STATE,
                        MEDIUM,
                        "request:" + request_id,
                        MAP,
                        request_id,
                        _crm(request),
                        {"job_id": job_id, "status": state},
                        None,
                        f"Xero's state {state!r} is not one the practice has classed as open "
                        "or closed: declare it in the settings (syncd never guesses)",
                    )
                )
            )
            continue
        if crm_class is NO_JOB or crm_class is xero_class:
            continue
        # The two sides in different classes: which moved since the last sync decides. Xero
        # in the class syncd asked for is syncd's write (perhaps one whose answer was lost),
        # made for the CRM: the CRM is then the side that moved since.
        written, crm_seen, xero_seen = link.xero_written, link.crm_seen, link.xero_seen
        echo = written is not None and xero_classes[written] is xero_class
        crm_moved = echo or (crm_seen is not None and crm_classes[crm_seen] is not crm_class)
        xero_moved = (
            not echo and xero_seen is not None and xero_classes[xero_seen] is not xero_class
        )
        if crm_moved is not xero_moved:
            changed = "the CRM changed last" if crm_moved else "Xero changed last"
            apply = xero_moved
        else:
            changed, apply = unknown, xero_wins
        # (StrEnums format as their values.)
        add(
            make(
                (
                    STATUS_DRIFT,
                    HIGH,
                    "request:" + request_id,
                    APPLY_XERO_STATUS if apply else PUSH_CRM_STATUS,
                    request_id,
                    _crm(request),
                    {"job_id": job_id, "status": state},
                    PUSH_CRM_STATUS if apply else APPLY_XERO_STATUS,
                    f"CRM {request.status} ({crm_class}) vs Xero {state} ({xero_class}); {changed}",
                )
            )
        )
    return found


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


def _crm(request: CrmRequest) -> dict[str, Any]:
    return {
        "request_id": request.request_id,
        "status": request.status,
        "client_id": request.client_id,
    }
