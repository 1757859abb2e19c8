"""The snapshot indexed once: every lookup the checks need is a dict access."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from reconcilers.snapshots import CrmPerson, CrmRequest, Link, Snapshot, XeroContact, XeroJob
from syncd.domain.statuses import StatusClass


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
