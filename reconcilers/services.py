"""Services: services in use that are not mapped to a job template (where the backend has
templates; Xero Projects has none)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import filterfalse
from operator import attrgetter

from reconcilers.findings import Action, Finding, Kind, Severity
from reconcilers.index import Index
from reconcilers.snapshots import Snapshot

SERVICE_ID = attrgetter("service_id")


def check(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
    """Per unmapped service with open requests, in the order of each one's first."""
    if not snapshot.capabilities.templates:
        return
    mapped = snapshot.mappings.services
    in_use = map(SERVICE_ID, index.open_requests)
    open_requests = Counter(filterfalse(mapped.__contains__, in_use))
    names = {service.service_id: service.name for service in snapshot.services}
    for service_id, count in open_requests.items():
        yield Finding(
            kind=Kind.SERVICE_NOT_MAPPED,
            severity=Severity.LOW,
            subject=f"service:{service_id}",
            crm={"service_id": service_id, "name": names.get(service_id), "open_requests": count},
            action=Action.MAP,
            detail="a service in use is not mapped to a Xero job template",
        )
