"""The sandbox's in-memory world, in plain Python: apps, tenants and their contacts, projects and
users, credentials, limits, faults and the ledger. The HTTP layer and the control API both drive
this object; tests may drive it directly.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from syncd.clock import Clock, SystemClock
from syncd.sandbox.limits import RateLimiter
from syncd.sandbox.models import (
    CONTACT_STATUSES,
    PROJECT_STATUSES,
    Contact,
    ContactStatus,
    Faults,
    LedgerEntry,
    Limits,
    OAuthApp,
    Project,
    ProjectStatus,
    SandboxError,
    StoredResponse,
    Tenant,
    UnknownEntity,
)
from syncd.sandbox.tokens import Authority

TENANT_TYPES = ("ORGANISATION", "PRACTICEMANAGER", "PRACTICE")


class SandboxState:
    """Everything the simulated Xero knows. Single event loop, no locks needed.

    `consent_tenant_ids` picks the tenants the next authorize consents to (None: all);
    `consent_user_id` the Xero user who consents (None: the sandbox's default user).
    """

    def __init__(self, clock: Clock | None = None, *, seed: int = 0) -> None:
        self.clock: Clock = clock or SystemClock()
        self.seed = seed
        self.apps: dict[str, OAuthApp] = {}
        self.faults = Faults()
        self._reset_world()

    def _reset_world(self) -> None:
        self._rng = random.Random(self.seed)
        self.authority = Authority(self.clock, self._rng)
        self.tenants: dict[str, Tenant] = {}
        self.consent_tenant_ids: list[str] | None = None
        self.consent_user_id: str | None = None
        self.limits = Limits()
        self.tenant_limits: dict[str, Limits] = {}
        self.limiter = RateLimiter()
        self.ledger: list[LedgerEntry] = []
        self.idempotency: dict[tuple[str, str, str, str], StoredResponse] = {}
        self._seq = 0

    def reset(self) -> None:
        """Forget tenants, credentials, ledger and limits. Apps stay registered, and the faults'
        drop mode stays (it describes how the sandbox is served, not the world)."""
        self._reset_world()
        self.faults = Faults(
            drop_mode=self.faults.drop_mode, drop_hang_seconds=self.faults.drop_hang_seconds
        )

    # -- ids ------------------------------------------------------------------------------

    def new_id(self) -> str:
        """A random (seeded) UUID4 string."""
        return self.authority.new_id()

    # -- apps and tenants -----------------------------------------------------------------

    def register_app(
        self,
        client_id: str,
        client_secret: str | None,
        redirect_uris: list[str],
        webhook_key: str | None = None,
        *,
        name: str = "syncd sandbox app",
    ) -> OAuthApp:
        if not client_id.strip():
            raise SandboxError("client_id must not be empty")
        if not redirect_uris or any(not uri.strip() for uri in redirect_uris):
            raise SandboxError("redirect_uris must list at least one URI")
        app = OAuthApp(
            client_id=client_id,
            client_secret=client_secret or None,
            redirect_uris=tuple(redirect_uris),
            webhook_key=webhook_key,
            name=name,
        )
        self.apps[client_id] = app
        return app

    def add_tenant(
        self,
        name: str,
        *,
        tenant_type: str = "ORGANISATION",
        tenant_id: str | None = None,
        currency: str = "AUD",
    ) -> Tenant:
        if not name.strip():
            raise SandboxError("tenant name must not be empty")
        if tenant_type not in TENANT_TYPES:
            raise SandboxError(f"tenant_type must be one of {', '.join(TENANT_TYPES)}")
        tenant_id = (tenant_id or self.new_id()).lower()
        if tenant_id in self.tenants:
            raise SandboxError(f"tenant {tenant_id} already exists")
        tenant = Tenant(tenant_id=tenant_id, name=name, tenant_type=tenant_type, currency=currency)
        self.tenants[tenant_id] = tenant
        return tenant

    def tenant(self, tenant_id: str) -> Tenant:
        try:
            return self.tenants[tenant_id.lower()]
        except KeyError:
            raise UnknownEntity(f"unknown tenant {tenant_id}") from None

    def add_user(self, tenant_id: str, name: str, email: str) -> dict[str, str]:
        """A Projects user (staff who can be assigned and log time)."""
        if not name.strip() or not email.strip():
            raise SandboxError("user name and email must not be empty")
        user = {"userId": self.new_id(), "name": name, "email": email}
        self.tenant(tenant_id).users.append(user)
        return user

    # -- contacts -------------------------------------------------------------------------

    def add_contact(
        self,
        tenant_id: str,
        name: str,
        email: str | None = None,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        contact_number: str | None = None,
        account_number: str | None = None,
        status: ContactStatus = "ACTIVE",
    ) -> Contact:
        """Seed a contact, bypassing the API's validation (duplicates are the caller's choice)."""
        if not name.strip():
            raise SandboxError("contact name must not be empty")
        if status not in CONTACT_STATUSES:
            raise SandboxError(f"contact status must be one of {', '.join(CONTACT_STATUSES)}")
        contact = Contact(
            contact_id=self.new_id(),
            name=name,
            email=email,
            first_name=first_name,
            last_name=last_name,
            contact_number=contact_number,
            account_number=account_number,
            status=status,
            updated_at=self.clock.now(),
        )
        self.tenant(tenant_id).contacts[contact.contact_id] = contact
        return contact

    def contact(self, tenant_id: str, contact_id: str) -> Contact:
        try:
            return self.tenant(tenant_id).contacts[contact_id.lower()]
        except KeyError:
            raise UnknownEntity(f"unknown contact {contact_id}") from None

    def save_contact(self, tenant_id: str, contact: Contact) -> Contact:
        stamped = replace(contact, updated_at=self.clock.now())
        self.tenant(tenant_id).contacts[stamped.contact_id] = stamped
        return stamped

    def archive_contact(self, tenant_id: str, contact_id: str) -> Contact:
        """Archive a contact as a Xero user would."""
        return self.save_contact(
            tenant_id, replace(self.contact(tenant_id, contact_id), status="ARCHIVED")
        )

    # -- projects -------------------------------------------------------------------------

    def add_project(
        self,
        tenant_id: str,
        *,
        contact_id: str,
        name: str,
        deadline: datetime | None = None,
        estimate: Decimal | None = None,
    ) -> Project:
        """Create a project as the API would (the contact must belong to the tenant)."""
        tenant = self.tenant(tenant_id)
        contact = self.contact(tenant_id, contact_id)
        project = Project(
            project_id=self.new_id(),
            contact_id=contact.contact_id,
            name=name,
            currency=tenant.currency,
            deadline=deadline,
            estimate=estimate,
            created_at=self.clock.now(),
        )
        tenant.projects[project.project_id] = project
        return project

    def project(self, tenant_id: str, project_id: str) -> Project:
        try:
            return self.tenant(tenant_id).projects[project_id.lower()]
        except KeyError:
            raise UnknownEntity(f"unknown project {project_id}") from None

    def save_project(self, tenant_id: str, project: Project) -> Project:
        self.tenant(tenant_id).projects[project.project_id] = project
        return project

    def set_project_status(self, tenant_id: str, project_id: str, status: str) -> Project:
        """Change a project's state as a Xero user would."""
        checked = _project_status(status)
        return self.save_project(
            tenant_id, replace(self.project(tenant_id, project_id), status=checked)
        )

    def delete_project(self, tenant_id: str, project_id: str) -> None:
        """Simulate a job deleted in Xero: it disappears from every API answer."""
        self.project(tenant_id, project_id)
        del self.tenant(tenant_id).projects[project_id.lower()]

    # -- limits, faults, credentials ------------------------------------------------------

    def limits_for(self, tenant_id: str) -> Limits:
        return self.tenant_limits.get(tenant_id.lower(), self.limits)

    def set_limits(self, limits: Limits, *, tenant_id: str | None = None) -> None:
        """Replace the global limits, or override them for one tenant."""
        if tenant_id is None:
            self.limits = limits
        else:
            self.tenant_limits[self.tenant(tenant_id).tenant_id] = limits

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is expired from now on."""
        self.authority.expire_access_tokens()

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far is refused with invalid_grant from now on."""
        self.authority.revoke_refresh_tokens()

    def take_fault(self, path: str, kind: str) -> bool:
        """Consume one `fail_next` or `drop_next` for a request to `path`, if armed."""
        faults = self.faults
        if not faults.applies_to(path):
            return False
        if kind == "fail" and faults.fail_next > 0:
            faults.fail_next -= 1
            return True
        if kind == "drop" and faults.drop_next > 0:
            faults.drop_next -= 1
            return True
        return False

    # -- ledger ---------------------------------------------------------------------------

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def ledger_since(self, seq: int = 0) -> list[LedgerEntry]:
        return [entry for entry in self.ledger if entry.seq > seq]


def _project_status(value: str) -> ProjectStatus:
    for status in PROJECT_STATUSES:
        if value == status:
            return status
    raise SandboxError(f"project status must be one of {', '.join(PROJECT_STATUSES)}")
