"""Saving mappings on real databases: one row per CRM id, and racing saves both succeed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from syncd.domain.ids import CompanyId
from syncd.store.db import Database
from syncd.store.mappings import (
    ContactMappingRepository,
    ServiceMappingRepository,
    StaffMappingRepository,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
A, B = CompanyId("company-a"), CompanyId("company-b")


async def save_contact(db: Database, company: CompanyId, contact: str, at: datetime) -> None:
    async with db.transaction() as session:
        await ContactMappingRepository(session).save(
            company=company,
            client_id="client-1",
            contact_id=contact,
            contact_name=contact.title(),
            auto_created=True,
            now=at,
        )


async def test_saving_again_replaces_the_row_and_keeps_its_creation_time(db: Database) -> None:
    await save_contact(db, A, "first", NOW)
    await save_contact(db, A, "second", NOW + timedelta(hours=1))
    await save_contact(db, B, "other", NOW)
    async with db.transaction() as session:
        [mapping] = await ContactMappingRepository(session).list(company=A)
        assert (mapping.xero_contact_id, mapping.xero_contact_name) == ("second", "Second")
        assert mapping.created_at.replace(tzinfo=UTC) == NOW
        assert mapping.updated_at.replace(tzinfo=UTC) == NOW + timedelta(hours=1)
        [other] = await ContactMappingRepository(session).list(company=B)
        assert other.xero_contact_id == "other"


async def test_racing_first_saves_of_one_client_both_succeed(db: Database) -> None:
    """Two job creations for a new client map it at once: no unique-constraint error."""
    results = await asyncio.gather(
        *(save_contact(db, A, f"contact-{n}", NOW) for n in range(4)), return_exceptions=True
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    async with db.transaction() as session:
        [mapping] = await ContactMappingRepository(session).list(company=A)
        assert mapping.xero_contact_id in {f"contact-{n}" for n in range(4)}


async def test_staff_and_service_saves_update_in_place(db: Database) -> None:
    async with db.transaction() as session:
        staff = StaffMappingRepository(session)
        services = ServiceMappingRepository(session)
        for name in ("Ann", "Bea"):
            await staff.save(
                company=A, user_id="u1", staff_id=name.lower(), staff_name=name, now=NOW
            )
            await services.save(
                company=A, service_id=7, template_id=name.lower(), template_name=name, now=NOW
            )
        [person] = await staff.list(company=A)
        [service] = await services.list(company=A)
        assert (person.xero_staff_id, service.xero_template_name) == ("bea", "Bea")
