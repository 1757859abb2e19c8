"""A sandbox organisation's people, as a practice has them: its accountants (most under the same
email as in the CRM, one under a work address the CRM does not know) and people the CRM has no
account for (a partner, an office manager). Projects tenants get them as users
(`ProjectsUsers`: userId, name, email), Practice Manager tenants as staff (`staff.api/list`:
UUID, Name, Email), so syncd's staff mapping has suggestions to offer (by email) and some rows
it must leave to the admin.

Imports only the sandbox's state; deterministic for a given state seed and input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from syncd.sandbox.models import SandboxError
from syncd.sandbox.state import SandboxState

# People of the practice who have no CRM account: they exist in Xero only.
XERO_ONLY = (("Margaret Ashby", "margaret.ashby"), ("Daniel Reyes", "daniel.reyes"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """Someone the practice's Xero should list: the name and the email to list them under."""

    name: str
    email: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SeededMember:
    xero_id: str  # Projects userId or Practice Manager staff UUID
    name: str
    email: str
    crm_email: str | None  # the CRM accountant's email this member is (None: Xero only)

    @property
    def matches_crm(self) -> bool:
        return self.crm_email is not None and self.crm_email.lower() == self.email.lower()


def practice_domain(tenant_name: str) -> str:
    """The practice's own mail domain, made up from its organisation name."""
    words = re.findall(r"[a-z0-9]+", tenant_name.lower().split("(")[0])
    return f"{'-'.join(words[:3]) or 'practice'}.example"


def plan_staff(accountants: Sequence[Person], *, domain: str) -> list[tuple[Person, str | None]]:
    """Who to list, under which email, with the CRM email each stands for: every accountant
    under their CRM email except the last of two or more, who is listed under a work address
    at `domain` (same person, different email: nothing to match on); then the Xero-only
    people."""
    planned: list[tuple[Person, str | None]] = []
    for n, person in enumerate(accountants):
        if not person.name.strip() or "@" not in person.email:
            raise SandboxError(f"an accountant needs a name and an email, not {person!r}")
        differs = len(accountants) > 1 and n == len(accountants) - 1
        local = ".".join(re.findall(r"[a-z0-9]+", person.name.lower())) or "staff"
        email = f"{local}@{domain}" if differs else person.email
        planned.append((Person(name=person.name, email=email), person.email))
    planned.extend(
        (Person(name=name, email=f"{local}@{domain}"), None) for name, local in XERO_ONLY
    )
    return planned


def seed_staff(
    state: SandboxState, tenant_id: str, accountants: Sequence[Person]
) -> list[SeededMember]:
    """List the practice's people in the tenant (users on Projects, staff on Practice Manager)
    per `plan_staff`, and say who is who."""
    tenant = state.tenant(tenant_id)
    add = state.add_staff if tenant.tenant_type == "PRACTICEMANAGER" else state.add_user
    seeded = []
    for person, crm_email in plan_staff(accountants, domain=practice_domain(tenant.name)):
        member = add(tenant.tenant_id, person.name, person.email)
        seeded.append(
            SeededMember(
                xero_id=member.get("UUID") or member["userId"],
                name=person.name,
                email=person.email,
                crm_email=crm_email,
            )
        )
    return seeded
