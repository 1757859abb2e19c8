"""The mapping and settings API: suggestions marked as such until saved, every id checked
against the CRM and Xero before anything is written, 422 with the offending rows, templates only
where the backend has them, conflicts shown, settings validated and versioned."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from syncd.crm.memory import MemoryCrm
from syncd.domain.ids import CompanyId
from syncd.settings import DEFAULT_SCOPES
from syncd.store.db import Database
from syncd.web.auth import Role
from tests.harness import Harness, harness

A = CompanyId("company-a")
API = "/api/integrations/xero"
XPM_SCOPES = (*DEFAULT_SCOPES.split(), "practicemanager.job", "practicemanager.staff")


@pytest.fixture
def crm() -> MemoryCrm:
    memory = MemoryCrm()
    memory.add_company(name="Harbour & Co", company_id=A)
    return memory


@pytest.fixture
async def h(db: Database, fernet_key: str, crm: MemoryCrm) -> AsyncIterator[Harness]:
    async with harness(db, fernet_key, crm=crm, xero_scopes=XPM_SCOPES) as ready:
        yield ready


def admin(h: Harness) -> dict[str, str]:
    return h.auth(Role.PRACTICE_ADMIN, A)


async def test_mappings_need_a_connection(h: Harness) -> None:
    """Before connecting there is nothing to map against: 409 saying so."""
    answer = await h.syncd.get(f"{API}/mappings/staff", headers=admin(h))
    assert answer.status_code == 409
    assert "connect" in answer.json()["error"]


async def test_staff_suggestions_then_saving(h: Harness, crm: MemoryCrm) -> None:
    """Accountants beside Xero users, suggested by email then name, saved on request."""
    tenant = await h.connect(A)
    ann = crm.add_person(
        company=A, role="accountant", email="ann@harbour.example", first_name="Ann", last_name="Lee"
    )
    bob = crm.add_person(
        company=A, role="accountant", email="bob@home.example", first_name="Bob", last_name="Stone"
    )
    cat = crm.add_person(
        company=A, role="accountant", email="cat@harbour.example", first_name="Cat", last_name="Ng"
    )
    u_ann = h.sandbox.add_user(tenant, "Annabel Lee", "ANN@harbour.example")
    u_bob = h.sandbox.add_user(tenant, "Bob Stone", "robert@harbour.example")
    listed = (await h.syncd.get(f"{API}/mappings/staff", headers=admin(h))).json()
    by_id = {item["accountant_id"]: item for item in listed["items"]}
    assert by_id[ann]["suggestion"] == {
        "staff_id": u_ann["userId"],
        "name": "Annabel Lee",
        "reason": "email",
        "suggested": True,
    }
    assert by_id[bob]["suggestion"]["reason"] == "name"
    assert by_id[cat]["suggestion"] is None
    assert {x["id"] for x in listed["xero"]} == {u_ann["userId"], u_bob["userId"]}
    saved = await h.syncd.put(
        f"{API}/mappings/staff",
        headers=admin(h),
        json={
            "mappings": [
                {"accountant_id": ann, "staff_id": u_ann["userId"]},
                {"accountant_id": bob, "staff_id": u_bob["userId"]},
            ]
        },
    )
    assert saved.status_code == 200
    items = {i["accountant_id"]: i for i in saved.json()["items"]}
    assert items[ann]["mapped"]["id"] == u_ann["userId"] and items[ann]["suggestion"] is None
    unmapped = await h.syncd.put(
        f"{API}/mappings/staff",
        headers=admin(h),
        json={"mappings": [{"accountant_id": bob, "staff_id": None}]},
    )
    assert {i["accountant_id"]: i["mapped"] for i in unmapped.json()["items"]}[bob] is None


async def test_a_bad_row_saves_nothing(h: Harness, crm: MemoryCrm) -> None:
    """One unknown Xero id or CRM id → 422 listing the rows; the good rows are not written."""
    tenant = await h.connect(A)
    ann = crm.add_person(company=A, role="accountant", email="ann@x.example", first_name="Ann")
    user = h.sandbox.add_user(tenant, "Ann", "ann@x.example")
    answer = await h.syncd.put(
        f"{API}/mappings/staff",
        headers=admin(h),
        json={
            "mappings": [
                {"accountant_id": ann, "staff_id": user["userId"]},
                {"accountant_id": ann, "staff_id": "not-in-xero"},
                {"accountant_id": "stranger", "staff_id": user["userId"]},
            ]
        },
    )
    assert answer.status_code == 422
    rows = answer.json()["rows"]
    assert [(r["index"], r["problem"]) for r in rows] == [
        (1, "no such record in Xero"),
        (2, "no such accountant in this practice's CRM"),
    ]
    after = (await h.syncd.get(f"{API}/mappings/staff", headers=admin(h))).json()
    assert all(item["mapped"] is None for item in after["items"])
    malformed = await h.syncd.put(f"{API}/mappings/staff", headers=admin(h), json={"mappings": 3})
    assert malformed.status_code == 422


async def test_projects_has_no_templates(h: Harness, crm: MemoryCrm) -> None:
    """On a Projects organisation the services page says so and refuses template ids."""
    await h.connect(A)
    service = crm.add_service(company=A, name="Tax Return", base_price=Decimal("350"))
    listed = (await h.syncd.get(f"{API}/mappings/services", headers=admin(h))).json()
    assert listed["available"] is False
    assert "no job templates" in listed["message"]
    assert [i["service_id"] for i in listed["items"]] == [str(service)]
    refused = await h.syncd.put(
        f"{API}/mappings/services",
        headers=admin(h),
        json={"mappings": [{"service_id": service, "template_id": "t"}]},
    )
    assert refused.status_code == 422


async def test_practice_manager_templates_and_staff(h: Harness, crm: MemoryCrm) -> None:
    """On a Practice Manager organisation services map to its templates (suggested by name)
    and accountants to its staff."""
    tenant = h.sandbox.add_tenant("Harbour XPM", tenant_type="PRACTICEMANAGER")
    await h.connect(A, "Harbour XPM")
    template = h.sandbox.add_template(tenant.tenant_id, "Tax Return")
    staff = h.sandbox.add_staff(tenant.tenant_id, "Ann Lee", "ann@harbour.example")
    service = crm.add_service(company=A, name="tax return", base_price=None)
    listed = (await h.syncd.get(f"{API}/mappings/services", headers=admin(h))).json()
    assert listed["available"] is True
    [item] = [i for i in listed["items"] if i["service_id"] == str(service)]
    assert item["suggestion"]["template_id"] == template["UUID"]
    saved = await h.syncd.put(
        f"{API}/mappings/services",
        headers=admin(h),
        json={"mappings": [{"service_id": service, "template_id": template["UUID"]}]},
    )
    assert saved.status_code == 200
    assert [i["mapped"]["name"] for i in saved.json()["items"] if i["mapped"]] == ["Tax Return"]
    people = (await h.syncd.get(f"{API}/mappings/staff", headers=admin(h))).json()
    assert [x["id"] for x in people["xero"]] == [staff["UUID"]]


async def test_contacts_link_unlink_and_conflicts(h: Harness, crm: MemoryCrm) -> None:
    """Clients beside contacts; two clients on one contact are shown as a conflict."""
    tenant = await h.connect(A)
    one = crm.add_person(
        company=A, role="client", email="olivia@example.com", first_name="Olivia", last_name="Chen"
    )
    two = crm.add_person(
        company=A,
        role="client",
        email="olivia.work@example.com",
        first_name="Olivia",
        last_name="Chen",
    )
    contact = h.sandbox.add_contact(tenant, "Olivia Chen", email="olivia@example.com")
    listed = (await h.syncd.get(f"{API}/mappings/contacts", headers=admin(h))).json()
    suggestions = {i["client_id"]: i["suggestion"] for i in listed["items"]}
    assert suggestions[one]["reason"] == "email"
    assert suggestions[two]["reason"] == "name"
    both = await h.syncd.put(
        f"{API}/mappings/contacts",
        headers=admin(h),
        json={
            "mappings": [
                {"client_id": one, "contact_id": contact.contact_id},
                {"client_id": two, "contact_id": contact.contact_id},
            ]
        },
    )
    assert both.json()["conflicts"] == [
        {"contact_id": contact.contact_id, "client_ids": sorted([one, two])}
    ]
    fixed = await h.syncd.put(
        f"{API}/mappings/contacts",
        headers=admin(h),
        json={"mappings": [{"client_id": two, "contact_id": None}]},
    )
    assert fixed.json()["conflicts"] == []


async def test_settings_are_validated_and_versioned(h: Harness) -> None:
    """Defaults first; a good change is version 1 with who and what; a bad one is 422 with
    each field's problem and changes nothing; Projects only takes its two states."""
    await h.connect(A)
    first = (await h.syncd.get(f"{API}/settings", headers=admin(h))).json()
    assert first["version"] == 0 and first["settings"]["conflict_policy"] == "crm_wins"
    changed = await h.syncd.put(
        f"{API}/settings",
        headers=h.auth(Role.PRACTICE_ADMIN, A, "pat"),
        json={"conflict_policy": "manual", "poll_interval_minutes": 2},
    )
    body = changed.json()
    assert (body["version"], body["changed_by"]) == (1, "pat")
    assert body["history"][0]["changes"] == {
        "conflict_policy": "manual",
        "poll_interval_minutes": 2,
    }
    bad = await h.syncd.put(
        f"{API}/settings",
        headers=admin(h),
        json={"conflict_policy": "coin", "auto_heal": ["x"], "extra": 1},
    )
    assert bad.status_code == 422
    assert set(bad.json()["errors"]) == {"conflict_policy", "auto_heal", "extra"}
    wrong_state = await h.syncd.put(
        f"{API}/settings",
        headers=admin(h),
        json={
            "status_overrides": {"processing": "ON HOLD"},
            "xero_state_classes": {"ON HOLD": "open"},
        },
    )
    assert wrong_state.status_code == 422
    assert "INPROGRESS and CLOSED" in wrong_state.json()["errors"]["status_overrides"]
    final = (await h.syncd.get(f"{API}/settings", headers=admin(h))).json()
    assert final["version"] == 1
