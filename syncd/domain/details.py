"""A job's details beyond its state (Practice Manager: due date and manager) as Xero changes them:
what a change seen by the poller means for the CRM. Pure.

The link remembers what syncd last saw of each (and, for the manager, what it last asked for),
so a value equal to those is no change made in Xero. A due date moved in Xero moves the CRM's;
a manager changed in Xero reassigns the CRM request when exactly one accountant is mapped to
that staff member, and is otherwise only recorded (with the reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Unchanged:
    pass


@dataclass(frozen=True, slots=True)
class Record:
    """Remember the value as seen; the CRM keeps what it has (`note` says why, if it matters)."""

    note: str | None = None


@dataclass(frozen=True, slots=True)
class SetDueDate:
    due_date: date | None


@dataclass(frozen=True, slots=True)
class SetAccountant:
    accountant_id: str


DueDecision = Unchanged | Record | SetDueDate
ManagerDecision = Unchanged | Record | SetAccountant


def decide_due(*, seen: date | None, xero: date | None, crm: date | None) -> DueDecision:
    if xero == seen:
        return Unchanged()
    if xero == crm:
        return Record()
    return SetDueDate(xero)


def decide_manager(
    *,
    seen: str | None,
    written: str | None,
    xero: str | None,
    crm_accountant: str | None,
    accountants_of_xero: Sequence[str],
) -> ManagerDecision:
    """`accountants_of_xero`: the CRM accountants mapped to Xero's new manager."""
    if xero == seen:
        return Unchanged()
    if xero is not None and xero == written:
        return Record()  # syncd's own assignment, perhaps one whose answer was lost
    if xero is None:
        return Record("the manager was removed in Xero; the CRM keeps its accountant")
    if len(accountants_of_xero) == 1:
        if accountants_of_xero[0] == crm_accountant:
            return Record()
        return SetAccountant(accountants_of_xero[0])
    how_many = "no" if not accountants_of_xero else str(len(accountants_of_xero))
    return Record(
        f"the new manager in Xero is mapped to {how_many} CRM accountants; the CRM keeps its "
        "accountant"
    )
