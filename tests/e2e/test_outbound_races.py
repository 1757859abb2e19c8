"""Outbound job creation racing other things: the CRM moving on mid-creation, and two
requests that would give their jobs the same name losing their answers at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from syncd.crm.memory import MemoryCrm
from syncd.store.db import Database
from syncd.store.links import JobLinkRepository
from tests.e2e.test_outbound import A, assign, feed, make_due, projects, set_status, world
from tests.harness import harness


class BeforeProjectCreate(httpx.AsyncBaseTransport):
    """Runs a hook once, just before the first POST /Projects reaches Xero."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.hook: Callable[[], Awaitable[None]] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.lower().endswith("/projects"):
            hook, self.hook = self.hook, None
            if hook is not None:
                await hook()
        return await self.inner.handle_async_request(request)


async def test_a_request_completed_while_its_job_is_created_closes_the_job(
    db: Database, fernet_key: str
) -> None:
    """The change feed reads the completion before the job exists; the job still ends
    CLOSED."""
    crm = MemoryCrm()
    transports: list[BeforeProjectCreate] = []

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        transports.append(BeforeProjectCreate(inner))
        return transports[-1]

    async with harness(db, fernet_key, crm=crm, wrap_transport=wrap) as h:
        w = await world(h, crm, requests=1)
        assign(crm, w, 0)
        await feed(h, crm)

        async def complete_meanwhile() -> None:
            set_status(crm, w, 0, "completed")
            await feed(h, crm)

        transports[0].hook = complete_meanwhile
        await h.settle()
        assert transports[0].hook is None  # the hook ran
        [project] = projects(h, w.tenant)
        assert project.status == "CLOSED"  # type: ignore[attr-defined]


async def test_two_requests_of_one_client_for_one_service_keep_their_own_jobs(
    db: Database, fernet_key: str
) -> None:
    """Both creations reach Xero and both answers are lost: each retry must get its own job
    back, not adopt the other's look-alike."""
    crm = MemoryCrm()
    async with harness(db, fernet_key, crm=crm) as h:
        w = await world(h, crm, requests=2, clients=1)  # one client, one service, two requests
        assign(crm, w, 0)
        assign(crm, w, 1)
        await feed(h, crm)
        h.sandbox.faults.drop_next = 2
        h.sandbox.faults.path_prefix = "/projects.xro/2.0/Projects"
        await h.settle()
        h.sandbox.faults.path_prefix = None
        await make_due(h)
        await h.settle()
        async with h.services.db.transaction() as session:
            links = [
                await JobLinkRepository(session).for_request(company=A, request_id=request)
                for request in w.requests
            ]
        jobs = {link.xero_job_id for link in links if link is not None and link.xero_job_id}
        assert len(jobs) == 2
        assert len(projects(h, w.tenant)) == 2  # one per request: the retries made none
