"""Contacts: clients with open work but no Xero contact mapped, and mappings that point at an
archived (or vanished) contact."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import compress, repeat
from operator import attrgetter, not_

from reconcilers.findings import Action, Finding, Kind, Severity
from reconcilers.index import Index
from reconcilers.snapshots import Snapshot

CONTACT_ID, ARCHIVED = attrgetter("contact_id"), attrgetter("archived")
CLIENT_ID, PERSON_ID, NAME = attrgetter("client_id"), attrgetter("person_id"), attrgetter("name")


def check(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
    """Per client with open requests, in the order of each client's first open request."""
    mapped, busy = snapshot.mappings.contacts, snapshot.busy_requests
    contacts = snapshot.contacts
    archived = dict(zip(map(CONTACT_ID, contacts), map(ARCHIVED, contacts), strict=True))
    # Clients mapped to a live contact are fine: only the open requests of the others count.
    unfit = compress(mapped, map(archived.get, mapped.values(), repeat(True)))
    fine = set(mapped).difference(unfit)
    opened = index.open_requests
    stray = list(compress(opened, map(not_, map(fine.__contains__, map(CLIENT_ID, opened)))))
    if not stray:
        return
    open_requests = Counter(map(CLIENT_ID, stray))
    idle = {request.client_id for request in stray if request.request_id not in busy}
    clients = snapshot.clients
    names = dict(zip(map(PERSON_ID, clients), map(NAME, clients), strict=True))
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
