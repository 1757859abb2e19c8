"""The status rules (DESIGN.md §2): equivalence classes, echoes, staleness, conflicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.domain.backends import Backend, default_mapping
from syncd.domain.statuses import (
    Conflict,
    ConflictPolicy,
    CreateJob,
    CrmStatus,
    Ignore,
    LinkView,
    SetCrmStatus,
    SetXeroState,
    StatusClass,
    StatusMapping,
    decide_inbound,
    decide_outbound,
)

MAPPING = StatusMapping()
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SYNCED = LinkView(crm_seen="processing", xero_seen="INPROGRESS", xero_seen_at=T0)


def inbound(
    crm: str,
    xero: str,
    link: LinkView = SYNCED,
    policy: ConflictPolicy = ConflictPolicy.CRM_WINS,
    **times: datetime,
) -> object:
    return decide_inbound(
        mapping=MAPPING, link=link, crm_status=crm, xero_state=xero, policy=policy, **times
    )


def test_classes() -> None:
    """pending has no job; assigned/processing are open; completed/cancelled are closed."""
    assert [MAPPING.crm_class(s) for s in CrmStatus] == [
        StatusClass.NO_JOB,
        StatusClass.OPEN,
        StatusClass.OPEN,
        StatusClass.CLOSED,
        StatusClass.CLOSED,
    ]
    assert MAPPING.xero_class("closed") is StatusClass.CLOSED
    assert MAPPING.xero_class("SOMETHING ELSE") is StatusClass.UNKNOWN


def test_an_unknown_xero_state_is_never_guessed() -> None:
    """A state the practice has not classed changes nothing in the CRM; the reason says so."""
    decision = inbound("processing", "On Hold")
    assert isinstance(decision, Ignore) and "unknown Xero state 'On Hold'" in decision.reason


def test_practice_manager_states_name_their_crm_status() -> None:
    """XPM's distinct codes come back as the CRM status they were written for (Cancelled is
    cancelled), compared without regard to case; Projects' CLOSED stays completed."""
    xpm = default_mapping(Backend.PRACTICE_MANAGER)
    link = LinkView(crm_seen="assigned", xero_seen="Planned")
    assert decide_inbound(
        mapping=xpm,
        link=link,
        crm_status="assigned",
        xero_state="CANCELLED",
        policy=ConflictPolicy.CRM_WINS,
    ) == SetCrmStatus(CrmStatus.CANCELLED)
    assert MAPPING.crm_status_for("CLOSED") is CrmStatus.COMPLETED
    assert xpm.crm_status_for("in progress") is CrmStatus.PROCESSING
    echo = LinkView(crm_seen="completed", xero_seen="Planned", xero_written="Completed")
    assert decide_inbound(
        mapping=xpm,
        link=echo,
        crm_status="completed",
        xero_state="COMPLETED",
        policy=ConflictPolicy.CRM_WINS,
    ) == Ignore("echo of syncd's write")


def test_closed_in_xero_completes_an_open_request() -> None:
    """A job closed in Xero while the CRM is open sets the CRM to completed."""
    assert inbound("processing", "CLOSED") == SetCrmStatus(CrmStatus.COMPLETED)
    assert inbound("assigned", "closed") == SetCrmStatus(CrmStatus.COMPLETED)


def test_a_move_within_the_crm_class_is_not_a_conflict() -> None:
    """processing → assigned in the CRM is no class change, so Xero's close simply applies."""
    assert inbound(
        "assigned", "CLOSED", LinkView(crm_seen="processing", xero_seen="INPROGRESS")
    ) == (SetCrmStatus(CrmStatus.COMPLETED))


def test_closed_never_turns_cancelled_into_completed() -> None:
    """Equivalence, not equality: CLOSED and cancelled are the same class."""
    link = LinkView(crm_seen="cancelled", xero_seen="INPROGRESS")
    assert inbound("cancelled", "CLOSED", link) == Ignore("same class on both sides")


def test_reopened_job_reopens_a_closed_request() -> None:
    """CLOSED → INPROGRESS in Xero while the CRM is closed sets processing."""
    link = LinkView(crm_seen="completed", xero_seen="CLOSED")
    assert inbound("completed", "INPROGRESS", link) == SetCrmStatus(CrmStatus.PROCESSING)


def test_unchanged_and_echo_are_ignored() -> None:
    """Xero's value equal to what syncd saw (or wrote) is dropped."""
    assert inbound("processing", "INPROGRESS") == Ignore("unchanged")
    written = LinkView(crm_seen="completed", xero_seen="CLOSED", xero_written="CLOSED")
    assert inbound("completed", "CLOSED", written) == Ignore("echo of syncd's write")


def test_a_write_whose_answer_was_lost_is_still_an_echo() -> None:
    """syncd asked for CLOSED and never heard back (the answer lost, the worker killed): Xero
    showing CLOSED later is syncd's own write, not a change to carry to the CRM."""
    outstanding = LinkView(crm_seen="assigned", xero_seen="INPROGRESS", xero_written="CLOSED")
    assert inbound("processing", "CLOSED", outstanding) == Ignore("echo of syncd's write")
    assert inbound("processing", "INPROGRESS", outstanding) == Ignore("unchanged")


def test_pending_requests_do_not_follow_xero() -> None:
    """A request without a job (pending) is never changed by Xero."""
    decision = inbound("pending", "CLOSED", LinkView())
    assert isinstance(decision, Ignore)


@pytest.mark.parametrize(
    ("policy", "times", "expected"),
    [
        (
            ConflictPolicy.CRM_WINS,
            {},
            SetXeroState("INPROGRESS", conflict="crm_wins: CRM assigned kept"),
        ),
        (
            ConflictPolicy.XERO_WINS,
            {},
            SetCrmStatus(CrmStatus.COMPLETED, conflict="xero_wins: Xero CLOSED kept"),
        ),
        (ConflictPolicy.MANUAL, {}, Conflict(crm_status="assigned", xero_state="CLOSED")),
        (
            ConflictPolicy.LATEST_WINS,
            {"crm_changed_at": T0, "xero_changed_at": T0 + timedelta(1)},
            SetCrmStatus(CrmStatus.COMPLETED, conflict="latest_wins: Xero CLOSED kept"),
        ),
        (
            ConflictPolicy.LATEST_WINS,
            {"crm_changed_at": T0 + timedelta(1), "xero_changed_at": T0},
            SetXeroState("INPROGRESS", conflict="latest_wins: CRM assigned kept"),
        ),
        (
            ConflictPolicy.LATEST_WINS,
            {"crm_changed_at": T0},
            SetXeroState("INPROGRESS", conflict="latest_wins: CRM assigned kept"),
        ),
    ],
)
def test_conflicts_follow_the_policy(
    policy: ConflictPolicy, times: dict[str, datetime], expected: object
) -> None:
    """Both sides changed class since the last sync (CRM reopened, Xero closed): the
    practice's policy decides."""
    link = LinkView(crm_seen="completed", xero_seen="INPROGRESS")
    assert inbound("assigned", "CLOSED", link, policy, **times) == expected


def test_outbound_decisions() -> None:
    """Assignment creates the job; class changes set the state; within a class nothing."""
    assert (
        decide_outbound(mapping=MAPPING, link=None, crm_status="assigned", has_job=False)
        == CreateJob()
    )
    assert isinstance(
        decide_outbound(mapping=MAPPING, link=None, crm_status="pending", has_job=False), Ignore
    )
    assert isinstance(
        decide_outbound(mapping=MAPPING, link=None, crm_status="cancelled", has_job=False), Ignore
    )
    link = LinkView(crm_seen="assigned", xero_seen="INPROGRESS")
    assert decide_outbound(
        mapping=MAPPING, link=link, crm_status="completed", has_job=True
    ) == SetXeroState("CLOSED")
    assert isinstance(
        decide_outbound(mapping=MAPPING, link=link, crm_status="processing", has_job=True), Ignore
    )
    closed = LinkView(crm_seen="completed", xero_seen="CLOSED")
    assert isinstance(
        decide_outbound(mapping=MAPPING, link=closed, crm_status="cancelled", has_job=True), Ignore
    )
    # A CLOSED write may have landed (its answer was lost): INPROGRESS is written again,
    # not skipped as what Xero was last seen to have.
    outstanding = LinkView(crm_seen="completed", xero_seen="INPROGRESS", xero_written="CLOSED")
    assert decide_outbound(
        mapping=MAPPING, link=outstanding, crm_status="processing", has_job=True
    ) == SetXeroState("INPROGRESS")
    echo = LinkView(crm_seen="completed", crm_written="completed", xero_seen="CLOSED")
    assert decide_outbound(
        mapping=MAPPING, link=echo, crm_status="completed", has_job=True
    ) == Ignore("echo of syncd's write")


def test_overrides_for_practice_manager_codes() -> None:
    """XPM practices map statuses to their own codes; within-class moves then do write."""
    xpm = StatusMapping(
        xero_classes={
            "PLANNED": StatusClass.OPEN,
            "IN PROGRESS": StatusClass.OPEN,
            "COMPLETED": StatusClass.CLOSED,
            "CANCELLED": StatusClass.CLOSED,
        },
        outbound={
            CrmStatus.ASSIGNED: "PLANNED",
            CrmStatus.PROCESSING: "IN PROGRESS",
            CrmStatus.COMPLETED: "COMPLETED",
            CrmStatus.CANCELLED: "CANCELLED",
        },
    )
    link = LinkView(crm_seen="assigned", xero_seen="PLANNED")
    assert decide_outbound(
        mapping=xpm, link=link, crm_status="processing", has_job=True
    ) == SetXeroState("IN PROGRESS")


statuses = st.sampled_from([s.value for s in CrmStatus])
states = st.sampled_from(["INPROGRESS", "CLOSED"])
optional_status = st.none() | statuses
optional_state = st.none() | states


@given(
    crm=statuses,
    xero=states,
    seen_crm=optional_status,
    seen_xero=optional_state,
    policy=st.sampled_from(list(ConflictPolicy)),
)
def test_inbound_never_moves_within_a_class(
    crm: str, xero: str, seen_crm: str | None, seen_xero: str | None, policy: ConflictPolicy
) -> None:
    """Whatever happened before, a CRM write always changes class and lands in Xero's class;
    a Xero write always carries the CRM's class."""
    link = LinkView(crm_seen=seen_crm, xero_seen=seen_xero)
    decision = decide_inbound(
        mapping=MAPPING, link=link, crm_status=crm, xero_state=xero, policy=policy
    )
    if isinstance(decision, SetCrmStatus):
        assert MAPPING.crm_class(decision.status) is MAPPING.xero_class(xero)
        assert MAPPING.crm_class(decision.status) is not MAPPING.crm_class(crm)
    if isinstance(decision, SetXeroState):
        assert MAPPING.xero_class(decision.state) is MAPPING.crm_class(crm)


XPM = default_mapping(Backend.PRACTICE_MANAGER)
xpm_states = st.sampled_from(["Planned", "In Progress", "Completed", "Cancelled"])


def test_a_move_within_xeros_class_is_no_change_even_against_a_moved_crm() -> None:
    """The CRM went assigned → cancelled (not yet sent) while an XPM user moved the job
    Planned → In Progress: Xero did not change class, so there is no conflict to settle and
    the CRM is not reopened, whatever the policy."""
    link = LinkView(crm_seen="assigned", xero_seen="Planned")
    for policy in ConflictPolicy:
        decision = decide_inbound(
            mapping=XPM, link=link, crm_status="cancelled", xero_state="In Progress", policy=policy
        )
        assert decision == Ignore("within its class")


def test_xero_in_the_class_syncd_asked_for_is_an_echo() -> None:
    """syncd asked for Completed (the answer lost) and a user then picked Cancelled: Xero is in
    the class syncd asked for, so it is no change of Xero's to carry to the CRM."""
    link = LinkView(crm_seen="completed", xero_seen="Planned", xero_written="Completed")
    decision = decide_inbound(
        mapping=XPM,
        link=link,
        crm_status="assigned",
        xero_state="Cancelled",
        policy=ConflictPolicy.XERO_WINS,
    )
    assert decision == Ignore("echo of syncd's write")


@given(
    crm=statuses,
    xero=xpm_states,
    seen=st.none() | xpm_states,
    written=st.none() | xpm_states,
    policy=st.sampled_from(list(ConflictPolicy)),
)
def test_only_a_change_of_xeros_class_writes_the_crm(
    crm: str, xero: str, seen: str | None, written: str | None, policy: ConflictPolicy
) -> None:
    """On XPM's distinct codes, the CRM is written only when Xero left both the class syncd
    last saw and the class it last asked for."""
    link = LinkView(crm_seen=crm, xero_seen=seen, xero_written=written)
    decision = decide_inbound(
        mapping=XPM, link=link, crm_status=crm, xero_state=xero, policy=policy
    )
    if isinstance(decision, SetCrmStatus):
        for before in (seen, written):
            assert before is None or XPM.xero_class(before) is not XPM.xero_class(xero)
