"""Contacts: clients with open work but no Xero contact mapped, and mappings that point at an
archived (or vanished) contact."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from reconcilers.findings import Action, Finding, Kind, Severity
from reconcilers.index import Index
from reconcilers.snapshots import Snapshot


def check(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
    """Per client with open requests, in the order of each client's first open request."""
    mapped, busy = snapshot.mappings.contacts, snapshot.busy_requests
    archived = {contact.contact_id: contact.archived for contact in snapshot.contacts}
    # Clients mapped to a live contact are fine: only the open requests of the others count.
    fine = {client for client, contact in mapped.items() if not archived.get(contact, True)}
    stray = [request for request in index.open_requests if request.client_id not in fine]
    if not stray:
        return
    open_requests = Counter(request.client_id for request in stray)
    idle = {request.client_id for request in stray if request.request_id not in busy}
    names = {client.person_id: client.name for client in snapshot.clients}
    for client_id, count in open_requests.items():
        if client_id not in idle:
            continue  # every open request of the client has a task on it
        crm = {
            "client_id": client_id,
            "name": names.get(client_id, client_id),
            "open_requests": count,
        }
        contact_id = mapped.get(client_id)
        if contact_id is None:
            yield Finding(
                kind=Kind.CLIENT_NOT_MAPPED,
                severity=Severity.LOW,
                subject=f"client:{client_id}",
                crm=crm,
                action=Action.MAP,
                detail="a client with open requests has no Xero contact mapped",
            )
            continue
        exists = contact_id in archived
        yield Finding(
            kind=Kind.CONTACT_ARCHIVED,
            severity=Severity.MEDIUM,
            subject=f"client:{client_id}",
            crm=crm,
            xero={"contact_id": contact_id, "archived": True, "exists": exists},
            action=Action.REMAP_CONTACT,
            detail="the client's Xero contact is archived"
            if exists
            else "the client's Xero contact no longer exists",
        )
