"""The status model (DESIGN.md §2): CRM statuses and Xero job states compared by equivalence
class, never by raw value, and the pure decisions for each direction.

    class    CRM                      Projects     XPM (per practice)
    no job   pending                  -            -
    open     assigned, processing     INPROGRESS   e.g. Planned, In Progress
    closed   completed, cancelled     CLOSED       e.g. Completed, Cancelled
    unknown  -                        -            a code the practice has not classed

Xero state codes are sent exactly as configured (XPM matches its interface codes) and compared
case- and space-insensitively (`state_key`). A state of unknown class is recorded and shown,
never guessed into the CRM.

Every job link remembers, per side, the last value syncd saw and the last it wrote: an inbound
value equal to what syncd last wrote to Xero is an echo (a poll's copy of a job older than the
link is fetched again: syncd.pipeline.inbound). When both sides changed since the last sync, the
practice's conflict policy decides.

A Xero write is recorded as written *before* it is sent, and stays so until Xero is seen
changing to something else: a write whose answer was lost (or whose worker died) may have been
applied, so seeing its state later is still an echo, and Xero cannot be assumed to still have
what was last seen while such a write is outstanding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class CrmStatus(StrEnum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    PROCESSING = "processing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class StatusClass(StrEnum):
    NO_JOB = "no_job"
    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"  # a Xero state the practice's mapping does not class


class ConflictPolicy(StrEnum):
    CRM_WINS = "crm_wins"
    XERO_WINS = "xero_wins"
    LATEST_WINS = "latest_wins"
    MANUAL = "manual"


# Keyed by CrmStatus, a StrEnum: plain status strings find their class too.
CRM_CLASSES: Mapping[str, StatusClass] = {
    CrmStatus.PENDING: StatusClass.NO_JOB,
    CrmStatus.ASSIGNED: StatusClass.OPEN,
    CrmStatus.PROCESSING: StatusClass.OPEN,
    CrmStatus.COMPLETED: StatusClass.CLOSED,
    CrmStatus.CANCELLED: StatusClass.CLOSED,
}


def state_key(state: str) -> str:
    """How two Xero state codes are compared: `In Progress`, `IN PROGRESS`, `in  progress`."""
    return " ".join(state.split()).casefold()


def same_state(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and state_key(a) == state_key(b)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusMapping:
    """One practice's mapping between CRM statuses and its Xero job states (Projects' by
    default; `syncd.domain.backends` has each backend's defaults)."""

    # Xero state -> class, keyed by state_key; states not listed are UNKNOWN.
    xero_classes: Mapping[str, StatusClass] = field(
        default_factory=lambda: {"inprogress": StatusClass.OPEN, "closed": StatusClass.CLOSED}
    )
    # CRM status -> the Xero state code syncd writes (outbound), exactly as Xero knows it.
    outbound: Mapping[CrmStatus, str] = field(
        default_factory=lambda: {
            CrmStatus.ASSIGNED: "INPROGRESS",
            CrmStatus.PROCESSING: "INPROGRESS",
            CrmStatus.COMPLETED: "CLOSED",
            CrmStatus.CANCELLED: "CLOSED",
        }
    )
    # Xero class -> the CRM status syncd sets when Xero moves a job into that class and the
    # state itself does not name one CRM status (inbound).
    inbound: Mapping[StatusClass, CrmStatus] = field(
        default_factory=lambda: {
            StatusClass.OPEN: CrmStatus.PROCESSING,
            StatusClass.CLOSED: CrmStatus.COMPLETED,
        }
    )

    def crm_class(self, status: str) -> StatusClass:
        found = CRM_CLASSES.get(status)
        if found is None:
            raise ValueError(f"{status!r} is not a CRM status")
        return found

    def xero_class(self, state: str) -> StatusClass:
        return self.xero_classes.get(state_key(state), StatusClass.UNKNOWN)

    def knows(self, state: str) -> bool:
        return self.xero_class(state) is not StatusClass.UNKNOWN

    def xero_state_for(self, status: str) -> str | None:
        return self.outbound.get(CrmStatus(status))

    def crm_status_for(self, state: str) -> CrmStatus:
        """The CRM status a job in `state` stands for: the one status syncd writes as that
        state (XPM: `Cancelled` is cancelled), else its class's default (Projects: CLOSED is
        completed). `state` must be of a known class."""
        cls = self.xero_class(state)
        writers = [s for s, code in self.outbound.items() if same_state(code, state)]
        if len(writers) == 1 and CRM_CLASSES[writers[0]] is cls:
            return writers[0]
        return self.inbound[cls]


PROJECTS_MAPPING = StatusMapping()


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkView:
    """What a job link remembers, as the pure rules need it."""

    crm_seen: str | None = None
    crm_written: str | None = None
    crm_seen_at: datetime | None = None
    xero_seen: str | None = None
    xero_written: str | None = None
    xero_seen_at: datetime | None = None
    manager_written: str | None = None  # the CRM accountant syncd last made the job's manager

    def xero_known(self, state: str) -> bool:
        """Xero is known to have `state`: last seen so, and no other write outstanding."""
        return same_state(self.xero_seen, state) and (
            self.xero_written is None or same_state(self.xero_written, state)
        )


# -- decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ignore:
    """Write nothing; `reason` says why (logged, and counted by tests)."""

    reason: str


@dataclass(frozen=True, slots=True)
class SetCrmStatus:
    status: CrmStatus
    conflict: str | None = None  # set when a conflict was resolved in Xero's favour


@dataclass(frozen=True, slots=True)
class SetXeroState:
    state: str
    conflict: str | None = None  # set when a conflict was resolved in the CRM's favour


@dataclass(frozen=True, slots=True)
class Conflict:
    """Both sides changed and the policy is manual: record it, write nothing."""

    crm_status: str
    xero_state: str


@dataclass(frozen=True, slots=True)
class CreateJob:
    pass


InboundDecision = Ignore | SetCrmStatus | SetXeroState | Conflict
OutboundDecision = Ignore | CreateJob | SetXeroState


def decide_inbound(
    *,
    mapping: StatusMapping,
    link: LinkView,
    crm_status: str,
    xero_state: str,
    policy: ConflictPolicy,
    crm_changed_at: datetime | None = None,
    xero_changed_at: datetime | None = None,
) -> InboundDecision:
    """Xero reports `xero_state` for a linked job whose CRM request is `crm_status`.

    Whether Xero moved is judged by class, like everything else: a job in the class syncd last
    asked for is an echo of that write (its answer perhaps lost), and a job still in the class
    syncd last saw has not moved, whatever its exact state (XPM: Planned → In Progress).
    """
    crm_class = mapping.crm_class(crm_status)
    xero_class = mapping.xero_class(xero_state)
    if xero_class is StatusClass.UNKNOWN:
        return Ignore(
            f"unknown Xero state {xero_state!r}: declare its class (open or closed) in the "
            "practice's settings"
        )
    if link.xero_written is not None and mapping.xero_class(link.xero_written) is xero_class:
        return Ignore("echo of syncd's write")
    if link.xero_seen is not None and mapping.xero_class(link.xero_seen) is xero_class:
        return Ignore("unchanged" if same_state(xero_state, link.xero_seen) else "within its class")
    if crm_class is StatusClass.NO_JOB:
        return Ignore("the CRM request is pending: it has no job to follow")
    if crm_class is xero_class:
        return Ignore("same class on both sides")
    crm_changed = link.crm_seen is not None and crm_class is not mapping.crm_class(link.crm_seen)
    if crm_changed:
        # Both sides moved to another class since the last sync, and they disagree.
        winner = _winner(policy, crm_changed_at, xero_changed_at)
        if winner is None:
            return Conflict(crm_status=crm_status, xero_state=xero_state)
        if winner == "crm":
            target = mapping.xero_state_for(crm_status)
            if target is None:
                return Ignore("no Xero state for the CRM status")
            return SetXeroState(target, conflict=f"{policy.value}: CRM {crm_status} kept")
        return SetCrmStatus(
            mapping.crm_status_for(xero_state), conflict=f"{policy.value}: Xero {xero_state} kept"
        )
    return SetCrmStatus(mapping.crm_status_for(xero_state))


def _winner(
    policy: ConflictPolicy, crm_at: datetime | None, xero_at: datetime | None
) -> str | None:
    if policy is ConflictPolicy.MANUAL:
        return None
    if policy is ConflictPolicy.XERO_WINS:
        return "xero"
    if policy is ConflictPolicy.LATEST_WINS and crm_at is not None and xero_at is not None:
        return "xero" if xero_at > crm_at else "crm"
    return "crm"  # crm_wins, and latest_wins without both timestamps


def decide_outbound(
    *,
    mapping: StatusMapping,
    link: LinkView | None,
    crm_status: str,
    has_job: bool,
) -> OutboundDecision:
    """The CRM reports `crm_status` for a request; what, if anything, Xero must be told."""
    status = CrmStatus(crm_status)
    if link is not None and crm_status == link.crm_seen:
        return Ignore("unchanged" if crm_status != link.crm_written else "echo of syncd's write")
    if CRM_CLASSES[status] is StatusClass.NO_JOB:
        return Ignore("pending requests have no job")
    if not has_job:
        if CRM_CLASSES[status] is StatusClass.OPEN:
            return CreateJob()
        return Ignore("closed before a job was created")
    target = mapping.xero_state_for(crm_status)
    if target is None or (link is not None and link.xero_known(target)):
        return Ignore("Xero already has that state")
    return SetXeroState(target)
