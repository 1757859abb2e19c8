"""Contacts: clients with open work but no Xero contact mapped, and mappings that point at an
archived (or vanished) contact."""

from __future__ import annotations

from collections.abc import Iterator

from reconcilers.findings import Action, Finding, Kind, Severity
from reconcilers.index import Index
from reconcilers.snapshots import Snapshot


def check(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
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
