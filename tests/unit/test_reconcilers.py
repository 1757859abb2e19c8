"""The pure reconcilers: each kind of drift found from snapshots alone, with the right action."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcilers import Action, Kind, Severity, reconcile
from reconcilers.report import to_csv, to_json, to_text
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
from syncd.domain.statuses import ConflictPolicy


def snapshot(**changes: object) -> Snapshot:
    """One practice in perfect agreement: r1 (open) ↔ j1, r2 (completed) ↔ j2."""
    base = Snapshot(
        requests=[
            CrmRequest(
                request_id="r1",
                client_id="c1",
                service_id=1,
                accountant_id="a1",
                status="processing",
            ),
            CrmRequest(
                request_id="r2",
                client_id="c1",
                service_id=1,
                accountant_id="a1",
                status="completed",
            ),
            CrmRequest(
                request_id="r3", client_id="c2", service_id=2, accountant_id=None, status="pending"
            ),
        ],
        clients=[
            CrmPerson(person_id="c1", name="Olivia Chen", email="olivia@example.com"),
            CrmPerson(person_id="c2", name="Jack Smith", email="jack@example.com"),
        ],
        accountants=[CrmPerson(person_id="a1", name="Ann", email="ann@practice.example")],
        services=[
            CrmService(service_id=1, name="Tax Return"),
            CrmService(service_id=2, name="BAS"),
        ],
        jobs=[
            XeroJob(
                job_id="j1", contact_id="x1", name="Tax Return - Olivia Chen", status="INPROGRESS"
            ),
            XeroJob(
                job_id="j2", contact_id="x1", name="Tax Return 2 - Olivia Chen", status="CLOSED"
            ),
        ],
        contacts=[
            XeroContact(
                contact_id="x1", name="Olivia Chen", email="olivia@example.com", archived=False
            )
        ],
        staff=[XeroStaff(staff_id="s1", name="Ann", email="ANN@practice.example")],
        links=[
            Link(request_id="r1", job_id="j1", crm_seen="processing", xero_seen="INPROGRESS"),
            Link(request_id="r2", job_id="j2", crm_seen="completed", xero_seen="CLOSED"),
        ],
        mappings=Mappings(contacts={"c1": "x1"}, staff={"a1": "s1"}, services={1: "t1", 2: "t2"}),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def kinds(snap: Snapshot) -> list[Kind]:
    return [finding.kind for finding in reconcile(snap).findings]


def test_agreement_finds_nothing() -> None:
    """Equivalent statuses, mapped everything: an empty report, every kind counted as 0."""
    report = reconcile(snapshot())
    assert report.findings == []
    assert report.counts == {kind.value: 0 for kind in Kind}


def test_assigned_without_job() -> None:
    """An open request with no link (or a link without a job) needs its job created."""
    snap = snapshot(
        links=[Link(request_id="r1", job_id=None), Link(request_id="r2", job_id="j2")],
        jobs=snapshot().jobs[1:],
    )
    [finding] = reconcile(snap).findings
    assert (finding.kind, finding.action, finding.request_id) == (
        Kind.ASSIGNED_WITHOUT_JOB,
        Action.CREATE_JOB,
        "r1",
    )


def test_requests_with_work_in_progress_are_left_alone() -> None:
    """A request that has pending tasks is in motion, not drifting."""
    snap = snapshot(links=[], jobs=[], busy_requests=frozenset({"r1", "r2"}))
    assert kinds(snap) == []


def test_job_missing_in_xero() -> None:
    """A link to a job Xero no longer has: recreate for open requests, review for closed."""
    findings = reconcile(snapshot(jobs=[])).findings
    assert [(f.kind, f.request_id, f.action) for f in findings] == [
        (Kind.JOB_MISSING_IN_XERO, "r1", Action.RECREATE_JOB),
        (Kind.JOB_MISSING_IN_XERO, "r2", Action.REVIEW),
    ]


@pytest.mark.parametrize(
    ("crm_status", "xero_status", "crm_seen", "xero_seen", "policy", "action", "changed"),
    [
        (
            "completed",
            "INPROGRESS",
            "processing",
            "INPROGRESS",
            ConflictPolicy.CRM_WINS,
            Action.PUSH_CRM_STATUS,
            "the CRM changed last",
        ),
        (
            "processing",
            "CLOSED",
            "processing",
            "INPROGRESS",
            ConflictPolicy.CRM_WINS,
            Action.APPLY_XERO_STATUS,
            "Xero changed last",
        ),
        ("completed", "CLOSED", "processing", "CLOSED", ConflictPolicy.CRM_WINS, None, ""),
        (
            "processing",
            "CLOSED",
            None,
            None,
            ConflictPolicy.CRM_WINS,
            Action.PUSH_CRM_STATUS,
            "unknown",
        ),
        (
            "processing",
            "CLOSED",
            None,
            None,
            ConflictPolicy.XERO_WINS,
            Action.APPLY_XERO_STATUS,
            "unknown",
        ),
    ],
)
def test_status_drift_knows_who_moved_last(
    crm_status: str,
    xero_status: str,
    crm_seen: str | None,
    xero_seen: str | None,
    policy: ConflictPolicy,
    action: Action | None,
    changed: str,
) -> None:
    """Classes are compared; the side that moved away from the last sync wins; otherwise the
    practice's conflict policy proposes; the alternative is the other side."""
    snap = snapshot(
        requests=[
            CrmRequest(
                request_id="r1", client_id="c1", service_id=1, accountant_id="a1", status=crm_status
            )
        ],
        jobs=[XeroJob(job_id="j1", contact_id="x1", name="n", status=xero_status)],
        links=[Link(request_id="r1", job_id="j1", crm_seen=crm_seen, xero_seen=xero_seen)],
        conflict_policy=policy,
    )
    findings = reconcile(snap).findings
    if action is None:
        assert findings == []
        return
    [finding] = findings
    assert (finding.kind, finding.severity, finding.action) == (
        Kind.STATUS_DRIFT,
        Severity.HIGH,
        action,
    )
    assert finding.alternative is not None and finding.alternative != action
    assert changed in finding.detail


def test_cancelled_and_closed_agree() -> None:
    """Equivalence, not equality: a cancelled request and a CLOSED job are in sync."""
    requests = [replace(snapshot().requests[1], status="cancelled")]
    assert kinds(snapshot(requests=requests)) == []


def test_job_for_unknown_request() -> None:
    """A job of a mapped client that no request links to is for review."""
    extra = XeroJob(job_id="j9", contact_id="x1", name="Advice", status="INPROGRESS")
    [finding] = reconcile(snapshot(jobs=[*snapshot().jobs, extra])).findings
    assert (finding.kind, finding.action, finding.crm) == (
        Kind.JOB_FOR_UNKNOWN_REQUEST,
        Action.REVIEW,
        {"client_id": "c1"},
    )
    stranger = XeroJob(job_id="j8", contact_id="x-not-mapped", name="x", status="CLOSED")
    assert kinds(snapshot(jobs=[*snapshot().jobs, stranger])) == []


def test_duplicate_jobs() -> None:
    """Two jobs with one contact and name (one linked), or one job linked twice."""
    twin = XeroJob(
        job_id="j1b", contact_id="x1", name="Tax Return - Olivia Chen", status="INPROGRESS"
    )
    found = kinds(snapshot(jobs=[*snapshot().jobs, twin]))
    assert Kind.DUPLICATE_JOBS in found
    links = [*snapshot().links[:1], Link(request_id="r2", job_id="j1")]
    doubled = reconcile(snapshot(links=links, jobs=snapshot().jobs[:1])).findings
    assert any(
        f.kind is Kind.DUPLICATE_JOBS and f.crm["request_ids"] == ["r1", "r2"] for f in doubled
    )


def test_client_not_mapped_and_contact_archived() -> None:
    """Open work without a mapped contact; a mapped contact archived or gone."""
    unmapped = reconcile(snapshot(mappings=Mappings(staff={"a1": "s1"}))).findings
    assert [(f.kind, f.subject) for f in unmapped] == [(Kind.CLIENT_NOT_MAPPED, "client:c1")]
    archived = snapshot(contacts=[replace(snapshot().contacts[0], archived=True)])
    [finding] = reconcile(archived).findings
    assert (finding.kind, finding.action, finding.xero["exists"]) == (
        Kind.CONTACT_ARCHIVED,
        Action.REMAP_CONTACT,
        True,
    )
    [gone] = reconcile(snapshot(contacts=[])).findings
    assert gone.xero["exists"] is False


def test_staff_not_mapped_suggests_by_email() -> None:
    """An accountant with open work unmapped: one Xero staff member with the same email
    (case-insensitive) is proposed; none or several leave it to a person."""
    unmapped = Mappings(contacts={"c1": "x1"})
    [finding] = reconcile(snapshot(mappings=unmapped)).findings
    assert (finding.kind, finding.action, finding.xero) == (
        Kind.STAFF_NOT_MAPPED,
        Action.MAP_STAFF_BY_EMAIL,
        {"suggested_staff_id": "s1"},
    )
    two = [
        XeroStaff(staff_id="s1", name="Ann", email="ann@practice.example"),
        XeroStaff(staff_id="s2", name="Ann B", email="ann@practice.example"),
    ]
    [ambiguous] = reconcile(snapshot(mappings=unmapped, staff=two)).findings
    assert ambiguous.action is Action.MAP
    no_staff = snapshot(mappings=unmapped, capabilities=Capabilities(staff=False))
    assert kinds(no_staff) == []


def test_service_not_mapped_only_where_templates_exist() -> None:
    """Services in use need a template only on a backend that has templates."""
    unmapped = Mappings(contacts={"c1": "x1"}, staff={"a1": "s1"})
    assert kinds(snapshot(mappings=unmapped)) == []
    with_templates = snapshot(mappings=unmapped, capabilities=Capabilities(templates=True))
    assert kinds(with_templates) == [Kind.SERVICE_NOT_MAPPED]


def test_renderers() -> None:
    """JSON has a top-level findings list with the required fields; CSV a row per finding;
    the text form a table and the open findings."""
    findings = [
        {**f.as_json(), "id": n, "state": "open"}
        for n, f in enumerate(reconcile(snapshot(jobs=[])).findings)
    ]
    data = json.loads(to_json({"run_id": "run-1"}, findings))
    assert data["run_id"] == "run-1"
    for item in data["findings"]:
        assert {"kind", "request_id", "crm", "xero", "action", "state"} <= set(item)
    rows = list(csv.DictReader(io.StringIO(to_csv(findings))))
    assert [r["request_id"] for r in rows] == ["r1", "r2"]
    assert json.loads(rows[0]["crm"])["status"] == "processing"
    text = to_text(reconcile(snapshot(jobs=[])).counts, findings)
    assert "job_missing_in_xero" in text and "needs review" in text


statuses = st.sampled_from(["pending", "assigned", "processing", "completed", "cancelled"])
states = st.sampled_from(["INPROGRESS", "CLOSED"])


@given(st.lists(st.tuples(statuses, st.none() | states), min_size=1, max_size=40))
def test_every_disagreement_is_a_finding(pairs: list[tuple[str, str | None]]) -> None:
    """Whatever the mix, an open request without a job, or a class mismatch, is reported; and
    nothing is reported for requests whose classes agree."""
    requests, jobs, links = [], [], []
    for n, (status, state) in enumerate(pairs):
        requests.append(
            CrmRequest(
                request_id=f"r{n}", client_id="c1", service_id=1, accountant_id="a1", status=status
            )
        )
        if state is not None:
            jobs.append(XeroJob(job_id=f"j{n}", contact_id="x1", name=f"job {n}", status=state))
            links.append(Link(request_id=f"r{n}", job_id=f"j{n}"))
    report = reconcile(snapshot(requests=requests, jobs=jobs, links=links))
    flagged = {f.request_id for f in report.findings if f.request_id}
    for n, (status, state) in enumerate(pairs):
        open_crm = status in {"assigned", "processing"}
        closed_crm = status in {"completed", "cancelled"}
        if state is None:
            assert (f"r{n}" in flagged) == open_crm
        else:
            disagree = (open_crm and state == "CLOSED") or (closed_crm and state == "INPROGRESS")
            assert (f"r{n}" in flagged) == disagree


def test_drift_to_syncds_own_unanswered_write_is_pushed_back_from_the_crm() -> None:
    """Xero has CLOSED because syncd sent it (the answer was lost) and the CRM has since gone
    back to processing: Xero did not move, so the CRM's state is pushed, whatever the policy."""
    snap = snapshot(
        requests=[snapshot().requests[0]],  # r1, processing
        jobs=[XeroJob(job_id="j1", contact_id="x1", name="n", status="CLOSED")],
        links=[
            Link(
                request_id="r1",
                job_id="j1",
                crm_seen="assigned",
                xero_seen="INPROGRESS",
                xero_written="CLOSED",
            )
        ],
        conflict_policy=ConflictPolicy.XERO_WINS,
    )
    [finding] = reconcile(snap).findings
    assert (finding.kind, finding.action) == (Kind.STATUS_DRIFT, Action.PUSH_CRM_STATUS)
    assert "the CRM changed last" in finding.detail
