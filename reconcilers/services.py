"""Services: services in use that are not mapped to a job template (where the backend has
templates; Xero Projects has none)."""

from __future__ import annotations

from collections.abc import Iterator

from reconcilers.findings import Action, Finding, Kind, Severity
from reconcilers.index import Index
from reconcilers.snapshots import Snapshot


def check(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
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
