"""The chaos test's checkers catch what they are there to catch (pure, no processes): a checker
that never complains would let the chaos test pass whatever happened."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from syncd.crm.port import CrmRequest
from syncd.domain.backends import Backend
from tests.chaos.invariants import (
    LinkRow,
    TaskRow,
    expected_keys,
    ledger_problems,
    link_problems,
    sandbox_problems,
    task_problems,
)

COMPANY = "company-1"
TENANT = "tenant-1"
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def request(n: int, *, job: str | None, status: str = "completed") -> CrmRequest:
    return CrmRequest(
        request_id=f"r{n}",
        company_id=COMPANY,
        client_id=f"client-{n}",
        service_id=1,
        accountant_id="acc",
        status=status,
        description=None,
        due_date=None,
        assigned_at=AT,
        created_at=AT,
        updated_at=AT,
        xero_job_id=job,
        xero_job_number=None,
        xero_synced_at=AT if job else None,
        xero_sync_error=None,
    )


def task(key: str, kind: str, state: str = "done") -> TaskRow:
    return TaskRow(company=COMPANY, key=key, kind=kind, state=state, attempts=1, last_error=None)


def link(n: int, job: str | None) -> LinkRow:
    return LinkRow(
        company=COMPANY,
        request_id=f"r{n}",
        state="linked" if job else "pending",
        job_id=job,
        status_seen="CLOSED",
    )


def project(job: str, *, status: str = "CLOSED", contact: str = "c1", name: str = "n") -> Any:
    return {"projectId": job, "contactId": contact, "name": name, "status": status}


def xpm_job(
    job: str, *, state: str = "Completed", client: str = "c1", reference: str | None = None
) -> Any:
    """A Practice Manager job as the control API lists it (reference: `syncd:{request}`)."""
    return {
        "ID": f"J{job}",
        "UUID": job,
        "Name": "n",
        "ClientUUID": client,
        "ClientOrderNumber": reference,
        "State": state,
    }


def xpm_add(key: str, *, fault: str | None = None) -> dict[str, Any]:
    status = 503 if fault == "fail" else 200
    return {
        "method": "POST",
        "path": "/practicemanager/3.1/job.api/add",
        "status": status,
        "replayed": False,
        "fault": fault,
        "idempotency_key": key,
    }


def test_a_clean_outcome_has_no_problems() -> None:
    """Two requests, each with its tasks done, its own job, closed, created once."""
    requests = [request(1, job="j1"), request(2, job="j2")]
    tasks = {
        i: task(key, kind) for i, ((_, key), kind) in enumerate(expected_keys(requests).items())
    }
    projects = {TENANT: [project("j1", name="a"), project("j2", name="b")]}
    ledger = [
        {
            "method": "POST",
            "path": "/projects.xro/2.0/Projects",
            "status": 201,
            "replayed": replayed,
            "idempotency_key": f"create:r{n}",
        }
        for n, replayed in ((1, False), (2, False), (2, True))
    ]
    assert task_problems(expected_keys(requests), tasks) == []
    assert (
        link_problems(requests, [link(1, "j1"), link(2, "j2")], projects, {COMPANY: TENANT}) == []
    )
    assert ledger_problems(ledger, requests) == []
    contacts = {TENANT: [{"ContactID": "c1"}, {"ContactID": "c2"}]}
    assert (
        sandbox_problems(requests, projects, contacts, {TENANT: {"duplicate_projects": []}}) == []
    )


def test_lost_unfinished_and_unexpected_tasks_are_reported() -> None:
    """A missing creation, a closing still pending and a task nobody asked for all show."""
    requests = [request(1, job="j1")]
    expected = expected_keys(requests)
    (create_key, state_key) = [key for _, key in expected]
    found = {
        1: task(state_key, "set_job_state", state="pending"),
        2: task("state:r1:CLOSED:other", "set_job_state"),
    }
    problems = "\n".join(task_problems(expected, found))
    assert f"tasks missing: 1\n  ('{COMPANY}', '{create_key}')" in problems
    assert "unexpected tasks: 1" in problems
    assert f"tasks not done: 1\n  {state_key}: pending" in problems


def test_shared_unlinked_orphaned_and_open_jobs_are_reported() -> None:
    """Two requests on one job, a CRM row out of step, a job nobody links, an open job."""
    requests = [request(1, job="j1"), request(2, job="jx"), request(3, job=None)]
    links = [link(1, "j1"), link(2, "j1"), link(3, None)]
    projects = {TENANT: [project("j1", status="INPROGRESS"), project("j9")]}
    problems = "\n".join(link_problems(requests, links, projects, {COMPANY: TENANT}))
    assert "requests without exactly one linked job: 1" in problems
    assert "CRM rows disagreeing with their link: 1" in problems
    assert "jobs linked to several requests: 1\n  j1" in problems
    assert "jobs in Xero no request links to: 1\n  j9" in problems
    assert "jobs whose state is not the request's class: 2" in problems


def test_a_job_created_twice_is_reported_from_the_ledger() -> None:
    """Two creations Xero executed under one key are a duplicate even if one was later
    deleted; a replay of the stored answer is not a creation."""
    requests = [request(1, job="j1"), request(2, job="j2")]
    ledger = [
        {
            "method": "POST",
            "path": "/projects.xro/2.0/Projects",
            "status": 201,
            "replayed": False,
            "idempotency_key": "create:r1",
        }
    ] * 2
    problems = "\n".join(ledger_problems(ledger, requests))
    assert "requests whose job was never created: 1\n  create:r2" in problems
    assert "jobs created more than once for one key: 1\n  create:r1: 2" in problems


def test_duplicate_jobs_and_contacts_are_reported() -> None:
    """Same contact and name twice is a duplicate job; two contacts for one client too."""
    requests = [request(1, job="j1")]
    projects = {TENANT: [project("j1"), project("j2")]}
    contacts = {TENANT: [{"ContactID": "c1"}, {"ContactID": "c2"}]}
    problems = sandbox_problems(
        requests, projects, contacts, {TENANT: {"duplicate_projects": [["j1", "j2"]]}}
    )
    assert len(problems) == 3
    assert problems[-1] == "2 Xero contacts for 1 clients"


def test_a_clean_practice_manager_outcome_has_no_problems() -> None:
    """On XPM: tasks done (the closing to `Completed`), each job carrying its request's
    reference and completed, one executed creation per key (a failed call is no creation, an
    applied one whose answer was lost is), one XPM client per client."""
    xpm = Backend.PRACTICE_MANAGER
    requests = [request(1, job="j1"), request(2, job="j2")]
    expected = expected_keys(requests, xpm)
    assert sorted(key for _, key in expected if key.startswith("state:")) == [
        f"state:r1:Completed:{AT.isoformat()}",
        f"state:r2:Completed:{AT.isoformat()}",
    ]
    tasks = {i: task(key, kind) for i, ((_, key), kind) in enumerate(expected.items())}
    jobs = {
        TENANT: [
            xpm_job("j1", reference="syncd:r1"),
            xpm_job("j2", client="c2", state="Cancelled", reference="syncd:r2"),
        ]
    }
    ledger = [xpm_add("create:r1"), xpm_add("create:r2", fault="fail"), xpm_add("create:r2")]
    ledger.append({**xpm_add("create:r1"), "fault": "drop", "path": "/practicemanager/3.1/x"})
    assert task_problems(expected, tasks) == []
    assert (
        link_problems(requests, [link(1, "j1"), link(2, "j2")], jobs, {COMPANY: TENANT}, xpm) == []
    )
    assert ledger_problems(ledger, requests, xpm) == []
    clients = {TENANT: [{"UUID": "c1"}, {"UUID": "c2"}]}
    reported: dict[str, dict[str, Any]] = {TENANT: {"duplicate_jobs": []}}
    assert sandbox_problems(requests, jobs, clients, reported, xpm) == []


def test_practice_manager_duplicates_references_and_states_are_reported() -> None:
    """On XPM: two jobs of one client with one request's reference are a duplicate (by the
    sandbox's check and by the listing), a linked job without its request's reference, an open
    job for a completed request, a second executed creation under one key, a creation through
    the Projects API, and two XPM clients for one client all show."""
    xpm = Backend.PRACTICE_MANAGER
    requests = [request(1, job="j1"), request(2, job="j2")]
    jobs = {
        TENANT: [
            xpm_job("j1", reference="syncd:r1"),
            xpm_job("j3", reference="syncd:r1"),
            xpm_job("j2", state="In Progress", reference=None),
        ]
    }
    links = [link(1, "j1"), link(2, "j2")]
    problems = "\n".join(link_problems(requests, links, jobs, {COMPANY: TENANT}, xpm))
    assert "jobs in Xero no request links to: 1\n  j3" in problems
    assert "jobs whose state is not the request's class: 1\n  r2: CRM completed" in problems
    assert "jobs not carrying their request's reference: 1\n  r2: job j2 has None" in problems
    projects_call = {**xpm_add("create:r2"), "path": "/projects.xro/2.0/Projects"}
    calls = [xpm_add("create:r1"), xpm_add("create:r1"), projects_call]
    ledger = "\n".join(ledger_problems(calls, requests, xpm))
    assert "jobs created more than once for one key: 1\n  create:r1: 2" in ledger
    assert "jobs created on the other backend than Xero Practice Manager: 1" in ledger
    assert "requests whose job was never created: 1\n  create:r2" in ledger
    clients = {
        TENANT: [
            {"UUID": "c1", "Name": "Olivia"},
            {"UUID": "c1b", "Name": "Olivia"},
            {"UUID": "c2", "Name": "Noah"},
        ]
    }
    found = sandbox_problems(
        requests, jobs, clients, {TENANT: {"duplicate_jobs": [["Jj1", "Jj3"]]}}, xpm
    )
    assert found[1:] == [
        f"duplicate jobs in {TENANT}: ['j1 (client c1)', 'j3 (client c1)']",
        "3 Xero Practice Manager clients for 2 clients",
        "names made more than once: 1",
        f"  {TENANT}: 'Olivia' x2",
    ]
    assert found[0].startswith(f"sandbox check: duplicate jobs in {TENANT}")


def test_a_second_job_for_a_second_client_is_a_duplicate() -> None:
    """On XPM: one request's reference on two jobs of two different XPM clients (the sandbox's
    own check, by client and order number, misses it) is reported by the listing."""
    xpm = Backend.PRACTICE_MANAGER
    requests = [request(1, job="j1")]
    jobs = {
        TENANT: [
            xpm_job("j1", client="c1", reference="syncd:r1"),
            xpm_job("j2", client="c1b", reference="syncd:r1"),
        ]
    }
    clients = {TENANT: [{"UUID": "c1", "Name": "Olivia"}]}
    found = sandbox_problems(requests, jobs, clients, {TENANT: {"duplicate_jobs": []}}, xpm)
    assert found == [f"duplicate jobs in {TENANT}: ['j1 (client c1)', 'j2 (client c1b)']"]
