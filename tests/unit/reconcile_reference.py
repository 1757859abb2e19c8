"""The reconcilers as they were before issue 13's speed-up, kept as the reference the optimised
package must agree with finding for finding (tests/unit/test_reconcile_equivalence.py only).

Deliberately straightforward: index everything, then one generator per check, each finding
built from the snapshot's values as the checks read them. Do not optimise this file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from reconcilers.findings import Action, Finding, Kind, Severity
from reconcilers.snapshots import (
    CrmPerson,
    CrmRequest,
    Link,
    Snapshot,
    XeroContact,
    XeroJob,
)
from syncd.domain.statuses import ConflictPolicy, StatusClass


def reconcile(snapshot: Snapshot) -> list[Finding]:
    index = build(snapshot)
    found: list[Finding] = []
    found.extend(check_requests(snapshot, index))
    found.extend(check_jobs(snapshot, index))
    found.extend(check_contacts(snapshot, index))
    found.extend(check_staff(snapshot, index))
    found.extend(check_services(snapshot, index))
    return found


@dataclass(frozen=True, slots=True)
class Index:
    jobs: dict[str, XeroJob]
    contacts: dict[str, XeroContact]
    links: dict[str, Link]  # by request id
    linked_jobs: dict[str, list[str]]  # job id -> request ids linking it
    clients: dict[str, CrmPerson]
    client_by_contact: dict[str, str]  # Xero contact id -> CRM client id (mapped)
    open_by_client: dict[str, list[CrmRequest]]
    open_by_accountant: dict[str, list[CrmRequest]]
    open_by_service: dict[int, list[CrmRequest]]
    # Each status string's class, worked out once per snapshot (a few distinct values).
    crm_class: dict[str, StatusClass]
    xero_class: dict[str, StatusClass]


def build(snapshot: Snapshot) -> Index:
    mapping = snapshot.status_mapping
    crm_class = {s: mapping.crm_class(s) for s in {r.status for r in snapshot.requests}}
    xero_class = {s: mapping.xero_class(s) for s in {j.status for j in snapshot.jobs}}
    for link in snapshot.links:
        if link.crm_seen is not None and link.crm_seen not in crm_class:
            crm_class[link.crm_seen] = mapping.crm_class(link.crm_seen)
        if link.xero_seen is not None and link.xero_seen not in xero_class:
            xero_class[link.xero_seen] = mapping.xero_class(link.xero_seen)
    linked: dict[str, list[str]] = defaultdict(list)
    for link in snapshot.links:
        if link.job_id:
            linked[link.job_id].append(link.request_id)
    by_client: dict[str, list[CrmRequest]] = defaultdict(list)
    by_accountant: dict[str, list[CrmRequest]] = defaultdict(list)
    by_service: dict[int, list[CrmRequest]] = defaultdict(list)
    open_class = StatusClass.OPEN
    for request in snapshot.requests:
        if crm_class[request.status] is open_class:
            by_client[request.client_id].append(request)
            by_service[request.service_id].append(request)
            if request.accountant_id:
                by_accountant[request.accountant_id].append(request)
    return Index(
        jobs={job.job_id: job for job in snapshot.jobs},
        contacts={contact.contact_id: contact for contact in snapshot.contacts},
        links={link.request_id: link for link in snapshot.links},
        linked_jobs=dict(linked),
        clients={client.person_id: client for client in snapshot.clients},
        client_by_contact={
            contact: client for client, contact in snapshot.mappings.contacts.items()
        },
        open_by_client=dict(by_client),
        open_by_accountant=dict(by_accountant),
        open_by_service=dict(by_service),
        crm_class=crm_class,
        xero_class=xero_class,
    )


def check_requests(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
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


def check_contacts(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
    mapped = snapshot.mappings.contacts
    for client_id, requests in index.open_by_client.items():
        if all(r.request_id in snapshot.busy_requests for r in requests):
            continue
        client = index.clients.get(client_id)
        name = client.name if client else client_id
        contact_id = mapped.get(client_id)
        if contact_id is None:
            yield Finding(
                kind=Kind.CLIENT_NOT_MAPPED,
                severity=Severity.LOW,
                subject=f"client:{client_id}",
                crm={"client_id": client_id, "name": name, "open_requests": len(requests)},
                action=Action.MAP,
                detail="a client with open requests has no Xero contact mapped",
            )
            continue
        contact = index.contacts.get(contact_id)
        if contact is None or contact.archived:
            yield Finding(
                kind=Kind.CONTACT_ARCHIVED,
                severity=Severity.MEDIUM,
                subject=f"client:{client_id}",
                crm={"client_id": client_id, "name": name, "open_requests": len(requests)},
                xero={"contact_id": contact_id, "archived": True, "exists": contact is not None},
                action=Action.REMAP_CONTACT,
                detail="the client's Xero contact is archived"
                if contact
                else "the client's Xero contact no longer exists",
            )


def check_staff(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
    if not snapshot.capabilities.staff:
        return
    by_email: dict[str, list[str]] = {}
    for member in snapshot.staff:
        if member.email:
            by_email.setdefault(member.email.strip().lower(), []).append(member.staff_id)
    people = {person.person_id: person for person in snapshot.accountants}
    for accountant_id, requests in index.open_by_accountant.items():
        if accountant_id in snapshot.mappings.staff:
            continue
        person = people.get(accountant_id)
        email = (person.email or "").strip().lower() if person else ""
        matches = by_email.get(email, []) if email else []
        yield Finding(
            kind=Kind.STAFF_NOT_MAPPED,
            severity=Severity.LOW,
            subject=f"accountant:{accountant_id}",
            crm={
                "accountant_id": accountant_id,
                "name": person.name if person else None,
                "email": person.email if person else None,
                "open_requests": len(requests),
            },
            xero={"suggested_staff_id": matches[0]} if len(matches) == 1 else {},
            action=Action.MAP_STAFF_BY_EMAIL if len(matches) == 1 else Action.MAP,
            detail="an accountant with open requests is not mapped to Xero staff",
        )


def check_services(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
    if not snapshot.capabilities.templates:
        return
    names = {service.service_id: service.name for service in snapshot.services}
    for service_id, requests in index.open_by_service.items():
        if service_id in snapshot.mappings.services:
            continue
        yield Finding(
            kind=Kind.SERVICE_NOT_MAPPED,
            severity=Severity.LOW,
            subject=f"service:{service_id}",
            crm={
                "service_id": service_id,
                "name": names.get(service_id),
                "open_requests": len(requests),
            },
            action=Action.MAP,
            detail="a service in use is not mapped to a Xero job template",
        )
