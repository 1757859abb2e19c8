"""The sandbox's Practice Manager jobs (job.api add, current, client, get, state, assign): Xero's
XML shapes, the practice's own job states, every refusal as HTTP 200 Status ERROR that changes
nothing, no Idempotency-Key replays and no webhooks, and the duplicate-job checker."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest

from syncd.sandbox import checks
from syncd.sandbox.models import JobState, PracticeClient, SandboxError, Tenant, UnknownEntity
from syncd.sandbox.state import SandboxState
from tests.sandbox.flow import CLIENT_ID, Session
from tests.sandbox.receiver import URL
from tests.sandbox.xpm import XML, XPM, body, job_add, ok, one, refused, tags
from tests.sandbox.xpm import assign as assign_body

ADD = f"{XPM}/job.api/add"
STATE = f"{XPM}/job.api/state"
ASSIGN = f"{XPM}/job.api/assign"
CURRENT = f"{XPM}/job.api/current"
UNKNOWN = "0d3458b8-0000-4000-8000-000000000000"
# 20261231 in fullwidth digits: digits to Python's str.isdigit, not to XPM.
FULLWIDTH = "\uff12\uff10\uff12\uff16\uff11\uff12\uff13\uff11"


@pytest.fixture
def olivia(state: SandboxState, practice: Tenant) -> PracticeClient:
    return state.add_client(practice.tenant_id, "Olivia Chen", "olivia@example.com")


def _job(
    state: SandboxState,
    practice: Tenant,
    client: PracticeClient,
    *,
    client_order_number: str | None = None,
) -> str:
    """A job made as the API would; its number."""
    job = state.add_job(
        practice.tenant_id,
        client_uuid=client.uuid,
        name="Tax Return",
        description="FY26",
        start_date=date(2026, 12, 3),
        due_date=date(2026, 12, 31),
        client_order_number=client_order_number,
    )
    return job.number


async def test_add_answers_the_new_job_in_xpms_shape_and_order(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """job.api/add answers `<Job>` with ID J000001, UUID, the documented elements in order, the
    category's name as Type, dates as YYYY-MM-DDTHH:MM:SS, the practice's first state, and no
    Manager or CompletedDate."""
    template = state.add_template(practice.tenant_id, "Individual Tax Return")
    category = state.add_category(practice.tenant_id, "Tax")
    sent = job_add(
        ClientUUID=olivia.uuid.upper(),
        ClientNumber="syncd:5e0c",
        TemplateUUID=template["UUID"],
        CategoryUUID=category.uuid,
        Budget="350",
    )
    headers = {**xpm.headers(practice.tenant_id), **XML}
    job = one(ok(await client.post(ADD, headers=headers, content=sent)), "Job")
    assert tags(job) == [
        "ID",
        "UUID",
        "Name",
        "Description",
        "ClientOrderNumber",
        "State",
        "Type",
        "StartDate",
        "DueDate",
        "Budget",
        "Client",
    ]
    assert job.findtext("ID") == "J000001"
    assert job.findtext("Name") == "Individual Tax Return - Olivia Chen"
    assert job.findtext("Description") == "FY26 return"
    assert job.findtext("ClientOrderNumber") == "syncd:5e0c"
    assert job.findtext("State") == "Planned"
    assert job.findtext("Type") == "Tax"
    assert job.findtext("StartDate") == "2026-12-03T00:00:00"
    assert job.findtext("DueDate") == "2026-12-31T00:00:00"
    assert job.findtext("Budget") == "350.00"
    assert tags(job.find("Client")) == ["UUID", "Name"]
    assert job.findtext("Client/UUID") == olivia.uuid
    assert job.findtext("Client/Name") == "Olivia Chen"
    stored = state.job(practice.tenant_id, "J000001")
    assert stored.uuid == job.findtext("UUID")
    assert (stored.template_uuid, stored.category_uuid) == (template["UUID"], category.uuid)
    assert stored.budget == Decimal("350.00")
    second = ok(await client.post(ADD, headers=headers, content=job_add(ClientUUID=olivia.uuid)))
    assert second.findtext("Job/ID") == "J000002"
    assert tags(second.find("Job"))[4:7] == ["ClientOrderNumber", "State", "StartDate"]
    assert second.findtext("Job/Budget") == "0.00"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"Name": None}, "Job Name is required"),
        ({"Name": "  "}, "Job Name is required"),
        ({"Description": None}, "Job Description is required"),
        ({"ClientUUID": None}, "ClientUUID is required"),
        ({"StartDate": None}, "StartDate is required"),
        ({"DueDate": None}, "DueDate is required"),
        ({"StartDate": "2026-12-03"}, "StartDate must be a date in the form YYYYMMDD"),
        ({"StartDate": "2026123"}, "StartDate must be a date in the form YYYYMMDD"),
        ({"DueDate": "202612310"}, "DueDate must be a date in the form YYYYMMDD"),
        ({"DueDate": "20261301"}, "DueDate must be a date in the form YYYYMMDD"),
        ({"DueDate": "20270230"}, "DueDate must be a date in the form YYYYMMDD"),
        ({"DueDate": FULLWIDTH}, "DueDate must be a date in the form YYYYMMDD"),
        ({"DueDate": "20261202"}, "DueDate must not be before StartDate"),
        ({"ClientUUID": UNKNOWN}, "Invalid ClientUUID"),
        ({"TemplateUUID": UNKNOWN}, "Invalid TemplateUUID"),
        ({"CategoryUUID": UNKNOWN}, "Invalid CategoryUUID"),
        ({"Budget": "lots"}, "Budget must be a number"),
        ({"Budget": "1_000"}, "Budget must be a number"),
        ({"Budget": "NaN"}, "Budget must be a number"),
    ],
)
async def test_add_refuses_what_the_contract_lists_and_makes_no_job(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
    changes: dict[str, str | None],
    says: str,
) -> None:
    """Missing required elements, dates not YYYYMMDD (or not real), due before start, unknown
    client/template/category and a Budget that is not a number: 200 + Status ERROR, no job, and
    the next job still gets J000001."""
    sent = job_add(**{"ClientUUID": olivia.uuid, **changes})
    headers = {**xpm.headers(practice.tenant_id), **XML}
    assert refused(await client.post(ADD, headers=headers, content=sent)).startswith(says)
    assert practice.jobs == {}
    assert _job(state, practice, olivia) == "J000001"


async def test_add_refuses_a_deleted_client_and_elements_in_the_wrong_case(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """A deleted client is no client for a new job; element names are case-sensitive, so
    `<name>` is not `<Name>`."""
    headers = {**xpm.headers(practice.tenant_id), **XML}
    lower = job_add(ClientUUID=olivia.uuid, Name=None, name="Tax Return")
    assert refused(await client.post(ADD, headers=headers, content=lower)) == "Job Name is required"
    state.delete_client(practice.tenant_id, olivia.uuid)
    gone = await client.post(ADD, headers=headers, content=job_add(ClientUUID=olivia.uuid))
    assert refused(gone).startswith("Invalid ClientUUID")
    assert practice.jobs == {}


async def _add(client: httpx.AsyncClient, xpm: Session, practice: Tenant, client_uuid: str) -> str:
    headers = {**xpm.headers(practice.tenant_id), **XML}
    added = ok(await client.post(ADD, headers=headers, content=job_add(ClientUUID=client_uuid)))
    return added.findtext("Job/ID") or ""


async def test_state_moves_the_job_and_completed_states_carry_a_completed_date(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """job.api/state answers the job in its new state; entering Completed adds CompletedDate
    (the sandbox's today), reopening removes it."""
    number = await _add(client, xpm, practice, olivia.uuid)
    uuid = state.job(practice.tenant_id, number).uuid
    headers = {**xpm.headers(practice.tenant_id), **XML}

    async def move(code: str) -> httpx.Response:
        sent = body("Job", {"ID": number, "UUID": uuid, "State": code})
        return await client.put(STATE, headers=headers, content=sent)

    progressing = one(ok(await move("In Progress")), "Job")
    assert progressing.findtext("State") == "In Progress"
    assert progressing.find("CompletedDate") is None
    done = one(ok(await move("Completed")), "Job")
    assert done.findtext("CompletedDate") == "2026-03-02T00:00:00"
    assert tags(done)[tags(done).index("DueDate") + 1] == "CompletedDate"
    assert state.job(practice.tenant_id, number).completed_date == date(2026, 3, 2)
    ok(await move("Cancelled"))
    assert state.job(practice.tenant_id, number).completed_date == date(2026, 3, 2)
    reopened = one(ok(await move("On Hold")), "Job")
    assert reopened.find("CompletedDate") is None
    assert state.job(practice.tenant_id, number).completed_date is None


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"ID": "J000099", "UUID": "{uuid}", "State": "Completed"}, "Job J000099 not found"),
        ({"ID": "{number}", "UUID": "{other}", "State": "Completed"}, "UUID "),
        ({"ID": "{number}", "State": "Completed"}, "Job UUID is required"),
        ({"ID": "{number}", "UUID": "{uuid}", "State": "Done"}, "Invalid state 'Done'"),
        ({"ID": "{number}", "UUID": "{uuid}", "State": "completed"}, "Invalid state"),
        ({"ID": "{number}", "UUID": "{uuid}", "State": "Completed "}, "Invalid state"),
        ({"ID": "{number}", "UUID": "{uuid}"}, "State is required"),
    ],
)
async def test_state_refuses_unknown_jobs_other_uuids_and_unknown_states(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
    fields: dict[str, str],
    says: str,
) -> None:
    """An unknown job number, a UUID that is not the job's and a state that is not exactly one
    of the practice's codes are Status ERROR; the job does not move."""
    number = _job(state, practice, olivia)
    other = _job(state, practice, olivia)
    values = {
        "number": number,
        "uuid": state.job(practice.tenant_id, number).uuid,
        "other": state.job(practice.tenant_id, other).uuid,
    }
    sent = body("Job", {name: value.format(**values) for name, value in fields.items()})
    headers = {**xpm.headers(practice.tenant_id), **XML}
    assert refused(await client.put(STATE, headers=headers, content=sent)).startswith(says)
    assert state.job(practice.tenant_id, number).state == "Planned"


async def test_the_practice_defines_its_job_states(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """With custom states (set over the control API), new jobs start in the first, any custom
    code is accepted, a default the practice dropped is refused, and the custom completed state
    leaves the current list."""
    states = [
        {"code": "Enquiry", "completed": False},
        {"code": "Awaiting Client", "completed": False},
        {"code": "Lodged", "completed": True},
    ]
    url = f"/_sandbox/tenants/{practice.tenant_id}/job-states"
    put = await client.put(url, json={"states": states})
    assert put.json() == {"states": states}
    number = await _add(client, xpm, practice, olivia.uuid)
    job = state.job(practice.tenant_id, number)
    assert job.state == "Enquiry"
    headers = {**xpm.headers(practice.tenant_id), **XML}

    async def move(code: str) -> httpx.Response:
        sent = body("Job", {"ID": number, "UUID": job.uuid, "State": code})
        return await client.put(STATE, headers=headers, content=sent)

    assert one(ok(await move("Awaiting Client")), "Job").findtext("State") == "Awaiting Client"
    assert "Enquiry, Awaiting Client, Lodged" in refused(await move("In Progress"))
    assert state.job(practice.tenant_id, number).state == "Awaiting Client"
    current = ok(await client.get(CURRENT, headers=xpm.headers(practice.tenant_id)))
    assert [j.findtext("ID") for j in current.iter("Job")] == [number]
    assert one(ok(await move("Lodged")), "Job").findtext("CompletedDate") == "2026-03-02T00:00:00"
    current = ok(await client.get(CURRENT, headers=xpm.headers(practice.tenant_id)))
    assert tags(current.find("Jobs")) == []


def test_job_states_are_checked_when_replaced(
    state: SandboxState, practice: Tenant, olivia: PracticeClient
) -> None:
    """No states, empty or repeated codes, a completed first state, or dropping a code a job is
    in are refused, and the practice keeps its states."""
    _job(state, practice, olivia)
    before = list(practice.job_states)
    refusals = [
        [],
        [JobState(code="")],
        [JobState(code="Planned"), JobState(code="Planned")],
        [JobState(code="Done", completed=True), JobState(code="Planned")],
        [JobState(code="In Progress")],
    ]
    for states in refusals:
        with pytest.raises(SandboxError):
            state.set_job_states(practice.tenant_id, states)
    assert practice.job_states == before
    assert [s.code for s in before] == [
        "Planned",
        "In Progress",
        "On Hold",
        "Completed",
        "Cancelled",
    ]
    assert [s.completed for s in before] == [False, False, False, True, True]


async def test_assign_sets_replaces_and_removes_the_manager(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """job.api/assign: add-manager sets `<Manager><UUID/><Name/>` (last in the job),
    remove-manager then add-manager replaces it, remove-manager alone clears it."""
    ann = state.add_staff(practice.tenant_id, "Ann Accountant", "ann@practice.example")
    bob = state.add_staff(practice.tenant_id, "Bob Bookkeeper", "bob@practice.example")
    number = _job(state, practice, olivia)
    uuid = state.job(practice.tenant_id, number).uuid
    headers = {**xpm.headers(practice.tenant_id), **XML}

    async def assign(*elements: tuple[str, str | None]) -> httpx.Response:
        sent = assign_body(number, uuid, *elements)
        return await client.put(ASSIGN, headers=headers, content=sent)

    job = one(ok(await assign(("add-manager", ann["UUID"]))), "Job")
    assert tags(job)[-2:] == ["Client", "Manager"]
    assert (job.findtext("Manager/UUID"), job.findtext("Manager/Name")) == (
        ann["UUID"],
        "Ann Accountant",
    )
    replaced = one(ok(await assign(("remove-manager", None), ("add-manager", bob["UUID"]))), "Job")
    assert replaced.findtext("Manager/Name") == "Bob Bookkeeper"
    assert state.job(practice.tenant_id, number).manager_uuid == bob["UUID"]
    cleared = one(ok(await assign(("remove-manager", None))), "Job")
    assert cleared.find("Manager") is None
    assert state.job(practice.tenant_id, number).manager_uuid is None


@pytest.mark.parametrize(
    ("fields", "manager", "says"),
    [
        ({"ID": "J000099", "UUID": "{uuid}"}, "{staff}", "Job J000099 not found"),
        ({"ID": "{number}", "UUID": "{other}"}, "{staff}", "UUID "),
        ({"ID": "{number}", "UUID": "{uuid}"}, UNKNOWN, "Invalid staff"),
        ({"ID": "{number}", "UUID": "{uuid}"}, "", "add-manager needs a uuid"),
    ],
)
async def test_assign_refuses_unknown_jobs_other_uuids_and_unknown_staff(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
    fields: dict[str, str],
    manager: str,
    says: str,
) -> None:
    """Unknown job number, a UUID not the job's, an unknown staff member: Status ERROR, and the
    job keeps its manager (even when the body also said remove-manager)."""
    ann = state.add_staff(practice.tenant_id, "Ann Accountant", "ann@practice.example")
    number = _job(state, practice, olivia)
    other = _job(state, practice, olivia)
    state.update_job(practice.tenant_id, number, manager_uuid=ann["UUID"])
    values = {
        "number": number,
        "uuid": state.job(practice.tenant_id, number).uuid,
        "other": state.job(practice.tenant_id, other).uuid,
        "staff": ann["UUID"],
    }
    sent = assign_body(
        fields["ID"].format(**values),
        fields["UUID"].format(**values),
        ("remove-manager", None),
        ("add-manager", manager.format(**values)),
    )
    headers = {**xpm.headers(practice.tenant_id), **XML}
    answer = await client.put(ASSIGN, headers=headers, content=sent)
    assert refused(answer).startswith(says)
    assert state.job(practice.tenant_id, number).manager_uuid == ann["UUID"]


async def test_current_lists_jobs_not_in_a_completed_state(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """job.api/current answers `<Jobs>` with open jobs (On Hold included), not Completed or
    Cancelled ones, nor deleted ones; an empty practice answers an empty `<Jobs />`."""
    empty = ok(await client.get(CURRENT, headers=xpm.headers(practice.tenant_id)))
    assert tags(empty) == ["Status", "Jobs"]
    assert tags(empty.find("Jobs")) == []
    numbers = [_job(state, practice, olivia) for _ in range(5)]
    for number, code in zip(numbers[1:4], ["On Hold", "Completed", "Cancelled"], strict=True):
        state.update_job(practice.tenant_id, number, state=code)
    state.delete_job(practice.tenant_id, numbers[4])
    listed = ok(await client.get(CURRENT, headers=xpm.headers(practice.tenant_id)))
    assert tags(listed.find("Jobs")) == ["Job", "Job"]
    assert [(j.findtext("ID"), j.findtext("State")) for j in listed.iter("Job")] == [
        ("J000001", "Planned"),
        ("J000002", "On Hold"),
    ]


async def test_client_jobs_lists_every_job_of_the_client(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """job.api/client/{uuid} answers all the client's jobs, completed ones too, with their
    order numbers; another client's jobs are not in it; an unknown or deleted client is
    `Client {uuid} not found`."""
    other = state.add_client(practice.tenant_id, "Other Person")
    first = _job(state, practice, olivia, client_order_number="syncd:1")
    _job(state, practice, other)
    done = _job(state, practice, olivia)
    state.update_job(practice.tenant_id, done, state="Completed")
    headers = xpm.headers(practice.tenant_id)
    listed = ok(await client.get(f"{XPM}/job.api/client/{olivia.uuid}", headers=headers))
    assert [(j.findtext("ID"), j.findtext("ClientOrderNumber")) for j in listed.iter("Job")] == [
        (first, "syncd:1"),
        (done, ""),
    ]
    answer = await client.get(f"{XPM}/job.api/client/{UNKNOWN}", headers=headers)
    assert refused(answer) == f"Client {UNKNOWN} not found"
    state.delete_client(practice.tenant_id, other.uuid)
    answer = await client.get(f"{XPM}/job.api/client/{other.uuid}", headers=headers)
    assert refused(answer) == f"Client {other.uuid} not found"


async def test_get_answers_any_job_but_a_deleted_one(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """job.api/get/{number} answers a completed job as `<Job>`; once deleted (or never made) it
    is `Job {number} not found`, and a later job does not reuse the number."""
    number = _job(state, practice, olivia)
    state.update_job(practice.tenant_id, number, state="Completed")
    headers = xpm.headers(practice.tenant_id)
    got = ok(await client.get(f"{XPM}/job.api/get/{number}", headers=headers))
    assert tags(got) == ["Status", "Job"]
    assert (got.findtext("Job/ID"), got.findtext("Job/State")) == (number, "Completed")
    state.delete_job(practice.tenant_id, number)
    gone = await client.get(f"{XPM}/job.api/get/{number}", headers=headers)
    assert refused(gone) == f"Job {number} not found"
    never = await client.get(f"{XPM}/job.api/get/J123456", headers=headers)
    assert refused(never) == "Job J123456 not found"
    assert _job(state, practice, olivia) == "J000002"


async def test_idempotency_key_is_not_replayed_on_practice_manager(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """XPM does not document Idempotency-Key: two POSTs with the same key make two jobs, and
    neither is recorded as a replay."""
    headers = {**xpm.headers(practice.tenant_id, **{"Idempotency-Key": "same-key"}), **XML}
    sent = job_add(ClientUUID=olivia.uuid, ClientNumber="syncd:1")
    first = ok(await client.post(ADD, headers=headers, content=sent))
    second = ok(await client.post(ADD, headers=headers, content=sent))
    assert [first.findtext("Job/ID"), second.findtext("Job/ID")] == ["J000001", "J000002"]
    assert sorted(practice.jobs) == ["J000001", "J000002"]
    entries = state.ledger[-2:]
    assert [(e.idempotency_key, e.replayed) for e in entries] == [("same-key", False)] * 2
    assert [[j.number for j in g] for g in checks.duplicate_jobs(state, practice.tenant_id)] == [
        ["J000001", "J000002"]
    ]


async def test_practice_manager_changes_queue_no_webhooks(
    client: httpx.AsyncClient,
    state: SandboxState,
    practice: Tenant,
    xpm: Session,
    olivia: PracticeClient,
) -> None:
    """Xero sends no XPM webhooks: clients and jobs made and changed over the API or as a user
    queue nothing for an app connected to the practice."""
    state.configure_webhooks(URL, client_id=CLIENT_ID, webhook_key="hook-key")
    headers = {**xpm.headers(practice.tenant_id), **XML}
    added = await client.post(
        f"{XPM}/client.api/add", headers=headers, content=body("Client", {"Name": "Acme"})
    )
    ok(added)
    number = await _add(client, xpm, practice, olivia.uuid)
    uuid = state.job(practice.tenant_id, number).uuid
    sent = body("Job", {"ID": number, "UUID": uuid, "State": "Completed"})
    ok(await client.put(STATE, headers=headers, content=sent))
    state.archive_client(practice.tenant_id, olivia.uuid)
    state.update_job(practice.tenant_id, number, due_date=date(2027, 1, 31))
    state.delete_job(practice.tenant_id, number)
    assert state.webhooks.pending(CLIENT_ID) == []
    assert state.webhook_subscription(CLIENT_ID).last_sequence == 0


def test_a_user_edits_jobs_in_xpm(
    state: SandboxState, practice: Tenant, olivia: PracticeClient
) -> None:
    """update_job changes due date and manager as a user would; an unknown state, staff member,
    job or a due date before the start is refused and changes nothing."""
    ann = state.add_staff(practice.tenant_id, "Ann Accountant", "ann@practice.example")
    number = _job(state, practice, olivia)
    moved = state.update_job(
        practice.tenant_id, number, due_date=date(2027, 1, 15), manager_uuid=ann["UUID"].upper()
    )
    assert (moved.due_date, moved.manager_uuid) == (date(2027, 1, 15), ann["UUID"])
    with pytest.raises(SandboxError, match="Invalid state"):
        state.update_job(practice.tenant_id, number, state="Done", due_date=date(2027, 2, 1))
    with pytest.raises(SandboxError, match="Invalid staff"):
        state.update_job(practice.tenant_id, number, state="Completed", manager_uuid="nobody")
    with pytest.raises(SandboxError, match="before StartDate"):
        state.update_job(practice.tenant_id, number, due_date=date(2026, 1, 1))
    with pytest.raises(UnknownEntity, match="Job J000042 not found"):
        state.update_job(practice.tenant_id, "J000042", state="Completed")
    assert state.job(practice.tenant_id, number) == moved
    assert state.update_job(practice.tenant_id, number, manager_uuid=None).manager_uuid is None


def test_duplicate_jobs_groups_by_client_and_order_number(
    state: SandboxState, practice: Tenant, olivia: PracticeClient
) -> None:
    """Jobs of one client sharing an order number are a duplicate group; other clients, other
    order numbers and jobs without one are not grouped."""
    other = state.add_client(practice.tenant_id, "Other Person")
    first = _job(state, practice, olivia, client_order_number="syncd:1")
    _job(state, practice, olivia, client_order_number="syncd:2")
    _job(state, practice, other, client_order_number="syncd:1")
    _job(state, practice, olivia)
    _job(state, practice, olivia)
    assert checks.duplicate_jobs(state, practice.tenant_id) == []
    again = _job(state, practice, olivia, client_order_number="syncd:1")
    groups = checks.duplicate_jobs(state, practice.tenant_id)
    assert [[j.number for j in group] for group in groups] == [[first, again]]
