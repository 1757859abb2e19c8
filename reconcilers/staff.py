"""Staff: accountants with open work who are not mapped to a Xero staff member (or user)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import filterfalse
from operator import attrgetter

from reconcilers.findings import Action, Finding, Kind, Severity
from reconcilers.index import Index
from reconcilers.snapshots import Snapshot

ACCOUNTANT_ID = attrgetter("accountant_id")


def check(snapshot: Snapshot, index: Index) -> Iterator[Finding]:
    """Per unmapped accountant with open requests, in the order of each one's first."""
    if not snapshot.capabilities.staff:
        return
    mapped = snapshot.mappings.staff
    accountants = filter(None, map(ACCOUNTANT_ID, index.open_requests))
    open_requests = Counter(filterfalse(mapped.__contains__, accountants))
    if not open_requests:
        return
    by_email: dict[str, list[str]] = {}
    for member in snapshot.staff:
        if member.email:
            by_email.setdefault(member.email.strip().lower(), []).append(member.staff_id)
    people = {person.person_id: person for person in snapshot.accountants}
    for accountant_id, count in open_requests.items():
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
                "open_requests": count,
            },
            xero={"suggested_staff_id": matches[0]} if len(matches) == 1 else {},
            action=Action.MAP_STAFF_BY_EMAIL if len(matches) == 1 else Action.MAP,
            detail="an accountant with open requests is not mapped to Xero staff",
        )
