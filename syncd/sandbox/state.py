"""The sandbox's in-memory world, in plain Python: apps, tenants and their contacts, projects,
invoices, users, credentials, limits, faults, the ledger and the webhook queue; Practice Manager's
part (templates, staff, categories, job states, clients, jobs) is `practice_world.py`'s mixin.
The HTTP layer and the control API both drive this object; tests may drive it directly.

Every change a Xero user or an API call makes goes through a method here, which also queues the
webhook event Xero would send about it (Xero has none for Projects or Practice Manager).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from syncd.clock import Clock, SystemClock
from syncd.sandbox.events import Delivery, EventCategory, EventType, Subscription, WebhookQueue
from syncd.sandbox.limits import RateLimiter
from syncd.sandbox.models import (
    CONTACT_STATUSES,
    INVOICE_STATUSES,
    PROJECT_STATUSES,
    Contact,
    ContactStatus,
    Faults,
    Invoice,
    InvoiceStatus,
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
from syncd.sandbox.practice_world import PracticeWorld
from syncd.sandbox.tokens import Authority

TENANT_TYPES = ("ORGANISATION", "PRACTICEMANAGER", "PRACTICE")


class SandboxState(PracticeWorld):
    """Everything the simulated Xero knows. Single event loop, no locks needed.

    `consent_tenant_ids` picks the tenants the next authorize consents to (None: all);
    `consent_user_id` the Xero user who consents (None: the sandbox's default user).
    `webhooks` holds each app's webhook subscription and queued events; `webhooks.py` sends them.
    """

    def __init__(self, clock: Clock | None = None, *, seed: int = 0) -> None:
        self.clock: Clock = clock or SystemClock()
        self.seed = seed
        self.apps: dict[str, OAuthApp] = {}
        self.faults = Faults()
        # Its own generator, so sending webhooks never shifts the ids the world hands out.
        self.webhooks = WebhookQueue(random.Random(f"webhooks-{seed}"))
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
        self.job_sequence = {}
        self.webhooks.clear()

    def reset(self) -> None:
        """Forget tenants, credentials, ledger, limits, queued webhooks and their log. Apps and
        their webhook subscriptions stay registered, and the faults' drop mode stays (it
        describes how the sandbox is served, not the world)."""
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
        webhook_url: str | None = None,
    ) -> OAuthApp:
        """Register (or re-register) an app; with `webhook_url` (and a key) its webhook is set up
        as `configure_webhooks` does."""
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
        if webhook_url is not None:
            self.configure_webhooks(webhook_url, client_id=client_id)
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
        tenant = self.tenant(tenant_id)
        tenant.contacts[contact.contact_id] = contact
        self._emit(tenant.tenant_id, "CONTACT", "CREATE", contact.contact_id)
        return contact

    def contact(self, tenant_id: str, contact_id: str) -> Contact:
        try:
            return self.tenant(tenant_id).contacts[contact_id.lower()]
        except KeyError:
            raise UnknownEntity(f"unknown contact {contact_id}") from None

    def save_contact(self, tenant_id: str, contact: Contact) -> Contact:
        """Store a new or changed contact (CONTACT CREATE or UPDATE)."""
        tenant = self.tenant(tenant_id)
        stamped = replace(contact, updated_at=self.clock.now())
        event_type: EventType = "UPDATE" if stamped.contact_id in tenant.contacts else "CREATE"
        tenant.contacts[stamped.contact_id] = stamped
        self._emit(tenant.tenant_id, "CONTACT", event_type, stamped.contact_id)
        return stamped

    def update_contact(self, tenant_id: str, contact_id: str, **changes: Any) -> Contact:
        """Edit a contact's fields (e.g. `name`, `email`) as a Xero user would."""
        current = self.contact(tenant_id, contact_id)
        if "contact_id" in changes or "updated_at" in changes:
            raise SandboxError("contact_id and updated_at cannot be changed")
        name = changes.get("name", current.name)
        if not isinstance(name, str) or not name.strip():
            raise SandboxError("contact name must not be empty")
        if changes.get("status", current.status) not in CONTACT_STATUSES:
            raise SandboxError(f"contact status must be one of {', '.join(CONTACT_STATUSES)}")
        return self.save_contact(tenant_id, replace(current, **changes))

    def archive_contact(self, tenant_id: str, contact_id: str) -> Contact:
        """Archive a contact as a Xero user would (Xero sends it as a CONTACT UPDATE)."""
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
        """Store a changed project. Xero has no Projects webhooks (xero-facts 1.1): syncd polls,
        so nothing is queued."""
        self.tenant(tenant_id).projects[project.project_id] = project
        return project

    def set_project_status(self, tenant_id: str, project_id: str, status: str) -> Project:
        """Change a project's state as a Xero user (or the API's PATCH) would."""
        checked = _project_status(status)
        return self.save_project(
            tenant_id, replace(self.project(tenant_id, project_id), status=checked)
        )

    def delete_project(self, tenant_id: str, project_id: str) -> None:
        """Simulate a job deleted in Xero: it disappears from every API answer."""
        self.project(tenant_id, project_id)
        del self.tenant(tenant_id).projects[project_id.lower()]

    # -- invoices -------------------------------------------------------------------------

    def add_invoice(
        self,
        tenant_id: str,
        *,
        contact_id: str,
        total: Decimal,
        reference: str | None = None,
        status: str = "AUTHORISED",
        invoice_number: str | None = None,
        issued_on: date | None = None,
        due_on: date | None = None,
    ) -> Invoice:
        """Raise a sales invoice (ACCREC) to a contact of the tenant, as a Xero user would.
        Numbers run INV-0001, INV-0002, ... unless given; due 30 days after issue by default."""
        tenant = self.tenant(tenant_id)
        contact = self.contact(tenant_id, contact_id)
        number = invoice_number if invoice_number is not None else _next_number(tenant)
        if not number.strip() or len(number) > 255:
            raise SandboxError("invoice_number must be 1 to 255 characters")
        if any(other.invoice_number == number for other in tenant.invoices.values()):
            raise SandboxError(f"invoice number {number} is already used")
        issued = issued_on or self.clock.now().date()
        due = due_on or issued + timedelta(days=30)
        if due < issued:
            raise SandboxError("an invoice cannot be due before it is issued")
        invoice = Invoice(
            invoice_id=self.new_id(),
            invoice_number=number,
            contact_id=contact.contact_id,
            total=_amount(total),
            currency=tenant.currency,
            status=_invoice_status(status),
            reference=reference,
            issued_on=issued,
            due_on=due,
            updated_at=self.clock.now(),
        )
        return self.save_invoice(tenant.tenant_id, invoice)

    def invoice(self, tenant_id: str, invoice_id: str) -> Invoice:
        try:
            return self.tenant(tenant_id).invoices[invoice_id.lower()]
        except KeyError:
            raise UnknownEntity(f"unknown invoice {invoice_id}") from None

    def save_invoice(self, tenant_id: str, invoice: Invoice) -> Invoice:
        """Store a new or changed invoice (INVOICE CREATE or UPDATE)."""
        tenant = self.tenant(tenant_id)
        stamped = replace(invoice, updated_at=self.clock.now())
        event_type: EventType = "UPDATE" if stamped.invoice_id in tenant.invoices else "CREATE"
        tenant.invoices[stamped.invoice_id] = stamped
        self._emit(tenant.tenant_id, "INVOICE", event_type, stamped.invoice_id)
        return stamped

    def update_invoice_status(self, tenant_id: str, invoice_id: str, status: str) -> Invoice:
        """Approve, pay, void or delete an invoice as a Xero user would."""
        checked = _invoice_status(status)
        return self.save_invoice(
            tenant_id, replace(self.invoice(tenant_id, invoice_id), status=checked)
        )

    # -- webhooks -------------------------------------------------------------------------

    @property
    def webhook_deliveries(self) -> list[Delivery]:
        """Every webhook POST made (or tried) since the last reset, oldest first."""
        return self.webhooks.deliveries

    def configure_webhooks(
        self,
        url: str | None = None,
        *,
        client_id: str | None = None,
        enabled: bool | None = None,
        webhook_key: str | None = None,
        max_attempts: int | None = None,
        retry_hours: float | None = None,
    ) -> Subscription:
        """Set up or change an app's webhook (None: leave as is). `client_id` may be omitted
        when exactly one app has a webhook key. A new webhook needs `url`; `webhook_key`
        replaces the app's signing key (a key rotation in Xero's portal)."""
        app = self._webhook_app(client_id)
        if webhook_key is not None and not webhook_key.strip():
            raise SandboxError("webhook_key must not be empty")
        if not (webhook_key or app.webhook_key):
            raise SandboxError(
                f"app {app.client_id} has no webhook_key: register it with one or send one"
            )
        checked_url = _webhook_url(url) if url is not None else None
        subscription = self.webhooks.subscriptions.get(app.client_id)
        if subscription is None and checked_url is None:
            raise SandboxError("url is required to set up a webhook")

        def apply(target: Subscription) -> None:
            if checked_url is not None:
                target.url = checked_url
            if enabled is not None:
                target.enabled = enabled
            if max_attempts is not None:
                target.max_attempts = max_attempts
            if retry_hours is not None:
                target.retry_hours = retry_hours

        # On a scratch copy first: a refused setting then changes nothing.
        apply(Subscription(client_id=app.client_id, url=""))
        if webhook_key is not None:
            self.apps[app.client_id] = replace(app, webhook_key=webhook_key)
        if subscription is None:
            subscription = Subscription(client_id=app.client_id, url=checked_url or "")
            self.webhooks.subscriptions[app.client_id] = subscription
        apply(subscription)
        return subscription

    def webhook_subscription(self, client_id: str | None = None) -> Subscription:
        """An app's webhook; `client_id` may be omitted when only one app has one."""
        subscriptions = self.webhooks.subscriptions
        if client_id is not None:
            try:
                return subscriptions[client_id]
            except KeyError:
                raise UnknownEntity(f"app {client_id} has no webhook configured") from None
        if len(subscriptions) != 1:
            raise SandboxError(
                f"client_id is required: {len(subscriptions)} apps have a webhook configured"
            )
        return next(iter(subscriptions.values()))

    def _webhook_app(self, client_id: str | None) -> OAuthApp:
        if client_id is not None:
            try:
                return self.apps[client_id]
            except KeyError:
                raise UnknownEntity(f"unknown app {client_id}") from None
        keyed = [app for app in self.apps.values() if app.webhook_key]
        if len(keyed) != 1:
            raise SandboxError(f"client_id is required: {len(keyed)} apps have a webhook key")
        return keyed[0]

    def _emit(
        self, tenant_id: str, category: EventCategory, event_type: EventType, resource_id: str
    ) -> None:
        """Queue an event for every app whose webhook is live and which is connected to the
        tenant (Xero only tells an app about organisations connected to it)."""
        if not self.faults.webhooks_enabled:
            return
        connected = {
            c.client_id for c in self.authority.connections.values() if c.tenant_id == tenant_id
        }
        for subscription in self.webhooks.subscriptions.values():
            app = self.apps.get(subscription.client_id)
            if not subscription.active or app is None or not app.webhook_key:
                continue
            if subscription.client_id not in connected:
                continue
            lost = self.faults.lose_webhooks_next > 0
            if lost:
                self.faults.lose_webhooks_next -= 1
            self.webhooks.queue(
                subscription.client_id,
                category=category,
                event_type=event_type,
                resource_id=resource_id,
                tenant_id=tenant_id,
                at=self.clock.now(),
                lost=lost,
            )

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


def _invoice_status(value: str) -> InvoiceStatus:
    for status in INVOICE_STATUSES:
        if value == status:
            return status
    raise SandboxError(f"invoice status must be one of {', '.join(INVOICE_STATUSES)}")


def _amount(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise SandboxError(f"invoice total must be a Decimal, not {value!r}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise SandboxError(f"invoice total must be a number, not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise SandboxError(f"invoice total must not be negative, not {value!r}")
    return amount.quantize(Decimal("0.01"))


def _next_number(tenant: Tenant) -> str:
    used = {invoice.invoice_number for invoice in tenant.invoices.values()}
    number = len(used) + 1
    while f"INV-{number:04d}" in used:
        number += 1
    return f"INV-{number:04d}"


def _webhook_url(url: str) -> str:
    """An absolute http(s) URL (Xero insists on https; the sandbox also delivers to http, for
    local demos and tests)."""
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise SandboxError(f"url must be an absolute http(s) URL, not {url!r}")
    return url.strip()


def _project_status(value: str) -> ProjectStatus:
    for status in PROJECT_STATUSES:
        if value == status:
            return status
    raise SandboxError(f"project status must be one of {', '.join(PROJECT_STATUSES)}")
