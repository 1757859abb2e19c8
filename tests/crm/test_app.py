"""The CRM application's actions (seeding, assigning, changing status) behave the same in the
sandbox's SQL `CrmApp` and in `MemoryCrm`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncd.crm.port import ChangeCursor
from tests.crm.apps import Crm
from tests.crm.world import T0, A, B, seed_world


async def test_assign_sets_accountant_status_and_times(crm: Crm) -> None:
    """Assigning sets status `assigned`, the accountant, assigned_at and updated_at."""
    await seed_world(crm.app)
    now = T0 + timedelta(hours=1)
    await crm.app.assign(company=A, request_id="a-req-2", accountant_id="a-acct-1", now=now)
    request = await crm.port.get_request(company=A, request_id="a-req-2")
    assert request is not None
    assert (request.status, request.accountant_id) == ("assigned", "a-acct-1")
    assert request.assigned_at == request.updated_at == now
    feed = await crm.port.changed_requests(
        company=A, after=ChangeCursor(T0 + timedelta(minutes=2), "a-req-3"), limit=10
    )
    assert [r.request_id for r in feed] == ["a-req-2"]


async def test_assign_refuses_someone_who_is_not_the_company_accountant(crm: Crm) -> None:
    """Only an accountant of the request's own company can be assigned."""
    await seed_world(crm.app)
    for who in ["b-acct-1", "a-client-1", "a-admin", "ghost"]:
        with pytest.raises(ValueError, match="no accountant"):
            await crm.app.assign(company=A, request_id="a-req-1", accountant_id=who, now=T0)


async def test_changing_another_company_request_is_refused(crm: Crm) -> None:
    """set_status and assign for a request the company does not have raise LookupError."""
    await seed_world(crm.app)
    with pytest.raises(LookupError):
        await crm.app.set_status(company=A, request_id="b-req-1", status="cancelled", now=T0)
    with pytest.raises(LookupError):
        await crm.app.assign(company=B, request_id="a-req-1", accountant_id="b-acct-1", now=T0)
    request = await crm.port.get_request(company=B, request_id="b-req-1")
    assert request is not None
    assert request.status == "pending"


async def test_set_status_refuses_a_status_the_crm_does_not_have(crm: Crm) -> None:
    """Only the five CRM statuses can be set."""
    await seed_world(crm.app)
    with pytest.raises(ValueError, match="done"):
        await crm.app.set_status(company=A, request_id="a-req-1", status="done", now=T0)
