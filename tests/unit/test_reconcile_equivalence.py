"""The optimised reconcilers find exactly what the straightforward reference finds
(tests/unit/reconcile_reference.py): same findings, in the same order, with the same values —
over generated snapshots whose ids are drawn from small pools so that collisions (duplicate
links, jobs listed twice, shared names, busy requests) are common."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcilers import index, reconcile
from reconcilers.snapshots import (
    Capabilities,
    CrmPerson,
    CrmRequest,
    CrmService,
    Link,
    Mappings,
    Snapshot,
    XeroContact,
    XeroJob,
    XeroStaff,
)
from syncd.domain.backends import Backend, default_mapping
from syncd.domain.statuses import ConflictPolicy, CrmStatus
from tests.unit import reconcile_reference

REQUESTS = [f"r{n}" for n in range(6)]
JOBS = ["", *(f"j{n}" for n in range(6))]
CLIENTS = [f"c{n}" for n in range(4)]
CONTACTS = [f"x{n}" for n in range(4)]
ACCOUNTANTS = ["", "a1", "a2", "a3"]
STAFF = ["s1", "s2", "s3"]
EMAILS = [None, "", "ann@p.example", " ANN@p.example ", "bob@p.example"]
CRM_STATUSES = [status.value for status in CrmStatus]
# Both backends' codes, in several spellings, and codes neither mapping classes.
XERO_STATES = [
    "INPROGRESS",
    "CLOSED",
    "closed",
    "Planned",
    "In Progress",
    "IN  PROGRESS",
    "Completed",
    "cancelled",
    "On Hold",
    "",
]

pick = st.sampled_from
maybe = st.none().__or__

requests = st.builds(
    CrmRequest,
    request_id=pick(REQUESTS),
    client_id=pick(CLIENTS),
    service_id=st.integers(0, 3),
    accountant_id=maybe(pick(ACCOUNTANTS)),
    status=pick(CRM_STATUSES),
)
jobs = st.builds(
    XeroJob,
    job_id=pick(JOBS),
    contact_id=maybe(pick(CONTACTS)),
    name=pick(["Tax", "BAS", "Advice"]),
    status=pick(XERO_STATES),
)
links = st.builds(
    Link,
    request_id=pick(REQUESTS),
    job_id=maybe(pick(JOBS)),
    crm_seen=maybe(pick(CRM_STATUSES)),
    xero_seen=maybe(pick(XERO_STATES)),
    xero_written=maybe(pick(XERO_STATES)),
    deleted=st.booleans(),
)
clients = st.builds(
    CrmPerson, person_id=pick(CLIENTS), name=pick(["Ann", "Bob"]), email=pick(EMAILS)
)
accountants = st.builds(
    CrmPerson, person_id=pick(ACCOUNTANTS), name=pick(["Ann", "Bob"]), email=pick(EMAILS)
)
contacts = st.builds(
    XeroContact,
    contact_id=pick(CONTACTS),
    name=st.just("X"),
    email=st.none(),
    archived=st.booleans(),
)
staff = st.builds(XeroStaff, staff_id=pick(STAFF), name=st.just("S"), email=pick(EMAILS))
services = st.builds(CrmService, service_id=st.integers(0, 3), name=pick(["Tax", "BAS"]))
mappings = st.builds(
    Mappings,
    contacts=st.dictionaries(pick(CLIENTS), pick(CONTACTS)),
    staff=st.dictionaries(pick(ACCOUNTANTS), pick(STAFF)),
    services=st.dictionaries(st.integers(0, 3), st.just("t")),
)


@st.composite
def linked(draw: st.DrawFn, request: CrmRequest) -> tuple[Link, XeroJob | None]:
    """A link for `request`, and (mostly) its job in Xero, so that drift is common."""
    link = draw(links)
    job = draw(jobs) if draw(st.integers(0, 3)) else None
    link = replace(link, request_id=request.request_id, job_id=job.job_id if job else link.job_id)
    return link, job


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    crm = draw(st.lists(requests, max_size=10))
    pairs = [draw(linked(request)) for request in crm if draw(st.integers(0, 3))]
    more_jobs = draw(st.lists(jobs, max_size=4))
    listed = [job for _, job in pairs if job is not None] + more_jobs
    if listed and draw(st.booleans()):  # the very same object listed twice
        listed.append(draw(pick(listed)))
    return Snapshot(
        requests=crm,
        clients=draw(st.lists(clients, max_size=5)),
        accountants=draw(st.lists(accountants, max_size=4)),
        services=draw(st.lists(services, max_size=4)),
        jobs=draw(st.permutations(listed)),
        contacts=draw(st.lists(contacts, max_size=5)),
        staff=draw(st.lists(staff, max_size=4)),
        links=draw(
            st.permutations([link for link, _ in pairs] + draw(st.lists(links, max_size=3)))
        ),
        mappings=draw(mappings),
        busy_requests=draw(st.frozensets(pick(REQUESTS), max_size=2)),
        capabilities=draw(
            st.builds(
                Capabilities,
                templates=st.booleans(),
                staff=st.booleans(),
                lists_closed_jobs=st.booleans(),
            )
        ),
        status_mapping=draw(pick([default_mapping(backend) for backend in Backend])),
        conflict_policy=draw(pick(list(ConflictPolicy))),
    )


def as_text(findings: list[Any]) -> str:
    """Findings as stored: JSON, key order included."""
    return json.dumps([finding.as_json() for finding in findings])


# Generation is slow on a busy machine (snapshots of several lists): not a fault of the code.
SLOW = [HealthCheck.too_slow]


@settings(max_examples=1500, deadline=None, suppress_health_check=SLOW)
@given(snapshots())
def test_same_findings_as_the_reference(snapshot: Snapshot) -> None:
    """Every generated snapshot, both backends' mappings: equal findings, equal order, equal
    JSON."""
    expected = reconcile_reference.reconcile(snapshot)
    found = reconcile(snapshot).findings
    assert found == expected
    assert as_text(found) == as_text(expected)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW)
@given(snapshots())
def test_jobs_whose_hashes_collide_are_still_grouped_exactly(snapshot: Snapshot) -> None:
    """Duplicate jobs are sought through a hash of contact and name, then grouped exactly:
    with every hash colliding, the groups are still the reference's."""
    expected = reconcile_reference.reconcile(snapshot)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(index, "hash", lambda key: 0, raising=False)
        found = reconcile(snapshot).findings
    assert found == expected


@settings(deadline=None, suppress_health_check=SLOW)
@given(snapshots(), pick(["", "open", "ASSIGNED"]), st.booleans())
def test_a_status_that_is_not_the_crms_fails_both_alike(
    snapshot: Snapshot, status: str, in_link: bool
) -> None:
    """A request or link with a status the CRM does not have is an error, before any finding."""
    if in_link:
        snapshot.links.append(Link(request_id="r9", job_id=None, crm_seen=status))
    else:
        snapshot.requests.append(
            CrmRequest(
                request_id="r9", client_id="c1", service_id=1, accountant_id=None, status=status
            )
        )
    errors = []
    for run in (reconcile_reference.reconcile, reconcile):
        try:
            run(snapshot)
        except ValueError as exc:
            errors.append(type(exc))
    assert errors == [ValueError, ValueError]
