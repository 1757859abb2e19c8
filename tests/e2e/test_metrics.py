"""GET /metrics, end to end on both databases: off (404) until a token is configured, refused
without it; webhooks, outbox tasks, Xero calls and token refreshes counted as they happen; the
state gauges (queues, dead tasks, reconnects, rate budget, findings) read from the database; and
in multiprocess mode the counters of several processes add up in one scrape."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from reconcilers import Action, Kind, Severity
from syncd.crm.events import secret_key
from syncd.crm.events import sign as crm_sign
from syncd.crm.memory import MemoryCrm
from syncd.domain.errors import NeedsReconnect, PermanentError
from syncd.domain.ids import CompanyId
from syncd.observability.instruments import configure
from syncd.pipeline.outbox import NewTask, Outbox, enqueue
from syncd.settings import Secret
from syncd.store.db import Database
from syncd.store.models import OutboxTask, ReconciliationFinding, ReconciliationRun
from syncd.xero.webhooks import sign
from tests.conftest import make_settings
from tests.e2e.test_health import client_for
from tests.fakes import InstantClock
from tests.harness import Harness, harness

A, B = CompanyId("company-a"), CompanyId("company-b")
TOKEN = "metrics-token-for-tests-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
WEBHOOK = "/api/integrations/xero/webhook"
KEY = "test-only-webhook-key-not-a-real-secret"
CRM_SECRET = "whsec_" + "c3luY2QtY3JtLXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3"

Scraped = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Scraped:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(h: Harness) -> Scraped:
    answer = await h.syncd.get("/metrics", headers=BEARER)
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


def value(scraped: Scraped, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def series(scraped: Scraped, name: str) -> Counter[frozenset[tuple[str, str]]]:
    return Counter({labels: v for (n, labels), v in scraped.items() if n == name})


def grown(before: Scraped, after: Scraped, name: str) -> Counter[frozenset[tuple[str, str]]]:
    """How much each labelled series of `name` grew between two scrapes (growth only)."""
    growth = series(after, name)
    growth.subtract(series(before, name))
    return +growth


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def delivery(tenant: str, resource: str) -> bytes:
    event = {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{resource}",
        "resourceId": resource,
        "eventDateUtc": "2026-11-25T09:00:00.000",
        "eventType": "UPDATE",
        "eventCategory": "CONTACT",
        "tenantId": tenant,
        "tenantType": "ORGANISATION",
    }
    body = {"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "x"}
    return json.dumps(body).encode()


async def post_webhook(h: Harness, body: bytes, key: str = KEY) -> int:
    answer = await h.syncd.post(
        WEBHOOK, content=body, headers={"x-xero-signature": sign(body, key)}
    )
    return answer.status_code


@pytest.fixture
async def h(db: Database, fernet_key: str) -> AsyncIterator[Harness]:
    async with harness(db, fernet_key, metrics_token=Secret(TOKEN)) as ready:
        yield ready


# -- protection -------------------------------------------------------------------------------


async def test_metrics_are_not_there_until_a_token_is_configured(
    db: Database, fernet_key: str
) -> None:
    """Without SYNCD_METRICS_TOKEN, /metrics answers exactly as a route that does not exist."""
    async with harness(db, fernet_key) as plain:
        metrics = await plain.syncd.get("/metrics", headers=BEARER)
        missing = await plain.syncd.get("/no-such-route", headers=BEARER)
    assert metrics.status_code == missing.status_code == 404
    assert metrics.json() == missing.json()


async def test_metrics_refuse_a_missing_or_wrong_token(h: Harness) -> None:
    """No token or another one: 401 with a Bearer challenge and no metrics; the token: 200."""
    for headers in ({}, {"Authorization": "Bearer " + TOKEN[:-1] + "X"}, {"Authorization": TOKEN}):
        refused = await h.syncd.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "syncd_" not in refused.text
    answer = await h.syncd.get("/metrics", headers=BEARER)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert value(parse(answer.text), "syncd_metrics_database_up") == 1


# -- counters -----------------------------------------------------------------------------------


async def test_xero_webhooks_are_counted_by_outcome(h: Harness) -> None:
    """Accepted, quarantined (signed but unreadable), bad signature and wrong method each count
    once per delivery, as the ingress answered them."""
    tenant = await h.connect(A)
    before = await scrape(h)
    answers = [
        await post_webhook(h, delivery(tenant, "11111111-1111-4111-8111-111111111111")),
        await post_webhook(h, delivery(tenant, "22222222-2222-4222-8222-222222222222")),
        await post_webhook(h, b'{"events": "not a list"}'),
        await post_webhook(h, delivery(tenant, "33333333-3333-4333-8333-333333333333"), "wrong"),
        (await h.syncd.get(WEBHOOK)).status_code,
    ]
    assert answers == [200, 200, 200, 401, 405]
    after = await scrape(h)
    assert grown(before, after, "syncd_webhooks_total") == {
        labels(source="xero", outcome="accepted"): 2,
        labels(source="xero", outcome="quarantined"): 1,
        labels(source="xero", outcome="bad_signature"): 1,
        labels(source="xero", outcome="method_not_allowed"): 1,
    }


async def push(h: Harness, kind: str, data: dict[str, str], webhook_id: str, secret: str) -> int:
    body = json.dumps({"type": kind, "timestamp": "2026-11-25T10:00:00Z", "data": data}).encode()
    stamp = int(time.time())
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": crm_sign(secret_key(secret), webhook_id, stamp, body),
    }
    return (await h.syncd.post("/api/crm/events", content=body, headers=headers)).status_code


async def test_an_outbound_job_counts_its_events_tasks_calls_and_budget(
    db: Database, fernet_key: str
) -> None:
    """A CRM event creates a Xero job: the CRM webhooks count by outcome, each settled task once
    with its latency, each Xero call under its route template (no ids) and status, exactly as
    the sandbox saw them, and the practice's budget left is the limit less those calls."""
    crm = MemoryCrm()
    async with harness(
        db,
        fernet_key,
        crm=crm,
        crm_webhook_secret=Secret(CRM_SECRET),
        metrics_token=Secret(TOKEN),
    ) as h:
        tenant = await h.connect(A)
        crm.add_company(name="Harbour & Co", company_id=A)
        accountant = crm.add_person(
            company=A, role="accountant", email="ann@example.com", first_name="A", last_name="B"
        )
        client = crm.add_person(
            company=A, role="client", email="olivia@example.com", first_name="O", last_name="C"
        )
        service = crm.add_service(company=A, name="Tax Return", base_price=Decimal("350.00"))
        past = datetime.now(UTC) - timedelta(hours=1)
        request = crm.add_request(
            company=A, client_id=client, service_id=service, now=past, due_date=date(2026, 12, 31)
        )
        crm.assign(company=A, request_id=request, accountant_id=accountant, now=datetime.now(UTC))
        ledger_start = len(h.sandbox.ledger)
        before = await scrape(h)
        data = {"company_id": A, "request_id": request}
        statuses = [
            await push(h, "service_request.assigned", data, "msg_1", CRM_SECRET),
            await push(h, "service_request.assigned", data, "msg_1", CRM_SECRET),
            await push(h, "service_request.assigned", data, "msg_2", "whsec_b3RoZXItc2VjcmV0"),
            await push(h, "invoice.paid", data, "msg_3", CRM_SECRET),
        ]
        assert statuses == [202, 200, 401, 422]
        await h.settle()
        after = await scrape(h)
        async with h.services.db.transaction() as session:
            done = dict(
                (
                    await session.execute(
                        select(OutboxTask.kind, func.count())
                        .where(OutboxTask.state == "done")
                        .group_by(OutboxTask.kind)
                    )
                ).all()
            )
    assert grown(before, after, "syncd_webhooks_total") == {
        labels(source="crm", outcome="accepted"): 1,
        labels(source="crm", outcome="duplicate"): 1,
        labels(source="crm", outcome="bad_signature"): 1,
        labels(source="crm", outcome="invalid"): 1,
    }
    assert done  # the job was created
    assert grown(before, after, "syncd_outbox_tasks_settled_total") == {
        labels(kind=kind, outcome="done"): n for kind, n in done.items()
    }
    assert grown(before, after, "syncd_outbox_task_latency_seconds_count") == {
        labels(kind=kind, outcome="done"): n for kind, n in done.items()
    }
    calls = [e for e in h.sandbox.ledger[ledger_start:] if e.tenant_id == tenant]
    counted = grown(before, after, "syncd_xero_calls_total")
    assert sum(counted.values()) == len(calls)
    by_method_status = Counter(
        labels(method=e.method, status=str(e.status), endpoint=e.path.strip("/")) for e in calls
    )
    # Creating a job lists no ids in its paths: the templates are the paths themselves.
    assert counted == by_method_status
    assert labels(method="POST", endpoint="projects.xro/2.0/Projects", status="201") in counted
    governed = [e for e in h.sandbox.ledger if e.tenant_id == tenant]
    minute = h.settings.xero_minute_limit - len(governed)
    day = h.settings.xero_day_limit - len(governed)
    assert value(after, "syncd_xero_rate_budget_remaining", company=A, window="minute") == minute
    assert value(after, "syncd_xero_rate_budget_remaining", company=A, window="day") == day


async def test_xero_call_labels_carry_route_templates_not_ids(h: Harness) -> None:
    """A call for one contact is counted under `Contacts/{id}`, never under the contact's id."""
    tenant = await h.connect(A)
    contact = h.sandbox.add_contact(tenant, "Olivia Chen", email="olivia@example.com")
    before = await scrape(h)
    await h.services.require_xero().contacts.get(A, contact.contact_id)
    after = await scrape(h)
    assert grown(before, after, "syncd_xero_calls_total") == {
        labels(method="GET", endpoint="api.xro/2.0/Contacts/{id}", status="200"): 1
    }
    assert contact.contact_id not in (await h.syncd.get("/metrics", headers=BEARER)).text


async def test_token_refreshes_are_counted_and_a_refused_one_shows_as_needs_reconnect(
    db: Database, fernet_key: str
) -> None:
    """An expiring token is refreshed (counted); once Xero refuses the refresh token the refusal
    is counted and the practice's needs-reconnect gauge turns to 1."""
    clock = InstantClock()
    async with harness(db, fernet_key, clock=clock, metrics_token=Secret(TOKEN)) as h:
        await h.connect(A)
        contacts = h.services.require_xero().contacts
        before = await scrape(h)
        assert value(before, "syncd_xero_connection_needs_reconnect", company=A) == 0
        clock.advance(timedelta(minutes=29).total_seconds())
        await contacts.find_by_email(A, "nobody@example.com")
        refreshed = await scrape(h)
        h.sandbox.revoke_refresh_tokens()
        clock.advance(timedelta(minutes=29).total_seconds())
        with pytest.raises(NeedsReconnect):
            await contacts.find_by_email(A, "nobody@example.com")
        refused = await scrape(h)
    assert grown(before, refreshed, "syncd_xero_token_refreshes_total") == {
        labels(outcome="refreshed"): 1
    }
    assert grown(refreshed, refused, "syncd_xero_token_refreshes_total") == {
        labels(outcome="invalid_grant"): 1
    }
    assert value(refused, "syncd_xero_connection_needs_reconnect", company=A) == 1


# -- state gauges -------------------------------------------------------------------------------


async def findings_run(
    db: Database, company: CompanyId, kinds: list[Kind], *, started: datetime, state: str
) -> None:
    async with db.transaction() as session:
        run = ReconciliationRun(
            company_id=company, trigger="schedule", state=state, started_at=started
        )
        session.add(run)
        await session.flush()
        for kind in kinds:
            session.add(
                ReconciliationFinding(
                    company_id=company,
                    run_id=run.id,
                    kind=kind,
                    severity=Severity.MEDIUM,
                    action=Action.REVIEW,
                    created_at=started,
                )
            )


async def test_state_gauges_are_read_from_the_database(db: Database, fernet_key: str) -> None:
    """Depths by state, the oldest due task and event (a practice that must reconnect is not
    waiting on a worker, so its due tasks are left out), needs-reconnect per practice, budgets,
    and findings of each practice's latest finished reconciliation only; a task that dies
    counts once, with its latency from enqueue."""
    clock = InstantClock()
    async with harness(db, fernet_key, clock=clock, metrics_token=Secret(TOKEN)) as h:
        tenant = await h.connect(A)
        await h.connect(B)
        t0 = clock.now()
        async with db.transaction() as session:
            for n in range(3):
                await enqueue(session, NewTask(company=A, kind="test.a", key=f"a{n}"), now=t0)
            await enqueue(
                session,
                NewTask(company=B, kind="test.b", key="old"),
                now=t0 - timedelta(hours=1),
            )
            await enqueue(
                session,
                NewTask(company=A, kind="test.a", key="later", run_after=t0 + timedelta(hours=2)),
                now=t0,
            )
        await h.services.require_xero().tokens.connection_lost(B, "test: access withdrawn")
        await findings_run(
            db,
            A,
            [Kind.JOB_MISSING_IN_XERO, Kind.JOB_MISSING_IN_XERO],
            started=t0 - timedelta(hours=2),
            state="finished",
        )
        await findings_run(
            db, A, [Kind.STATUS_DRIFT], started=t0 - timedelta(hours=1), state="finished"
        )
        await findings_run(db, A, [], started=t0, state="running")
        await findings_run(
            db, B, [Kind.CLIENT_NOT_MAPPED], started=t0 - timedelta(hours=3), state="finished"
        )
        before = await scrape(h)
        clock.advance(120)
        outbox = Outbox(db, owner="metrics-test")
        [claimed] = await outbox.claim(now=clock.now(), limit=1, skip_companies=frozenset({B}))
        assert await outbox.fail(claimed, PermanentError("test"), now=clock.now()) == "dead"
        clock.advance(480)
        assert await post_webhook(h, delivery(tenant, "44444444-4444-4444-8444-444444444444"))
        assert await post_webhook(h, b"[]") == 200  # quarantined
        clock.advance(30)
        after = await scrape(h)
    assert value(after, "syncd_outbox_tasks", company=A, state="pending") == 3
    assert value(after, "syncd_outbox_tasks", company=A, state="dead") == 1
    assert value(after, "syncd_outbox_tasks", company=A, state="running") == 0
    assert value(after, "syncd_outbox_tasks", company=B, state="pending") == 1
    assert value(after, "syncd_outbox_oldest_due_seconds") == 120 + 480 + 30
    assert value(after, "syncd_inbox_events", state="pending") == 1
    assert value(after, "syncd_inbox_events", state="quarantined") == 1
    assert value(after, "syncd_inbox_oldest_due_seconds") == 30
    assert value(after, "syncd_xero_connection_needs_reconnect", company=A) == 0
    assert value(after, "syncd_xero_connection_needs_reconnect", company=B) == 1
    for company in (A, B):
        assert value(
            after, "syncd_xero_rate_budget_remaining", company=company, window="minute"
        ) == (h.settings.xero_minute_limit)
    assert series(after, "syncd_reconcile_findings") == {
        labels(kind=Kind.STATUS_DRIFT): 1,
        labels(kind=Kind.CLIENT_NOT_MAPPED): 1,
    }
    assert grown(before, after, "syncd_outbox_tasks_settled_total") == {
        labels(kind="test.a", outcome="dead"): 1
    }
    latency = grown(before, after, "syncd_outbox_task_latency_seconds_bucket")
    assert latency[labels(kind="test.a", outcome="dead", le="60.0")] == 0
    assert latency[labels(kind="test.a", outcome="dead", le="300.0")] == 1
    assert grown(before, after, "syncd_outbox_task_latency_seconds_sum") == {
        labels(kind="test.a", outcome="dead"): 120
    }


async def test_an_unreachable_database_leaves_the_counters_and_says_so() -> None:
    """The scrape still answers when the database does not: the counters, and database_up 0
    instead of the state gauges."""
    settings = make_settings(metrics_token=Secret(TOKEN))
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        async with client_for(settings, db) as client:
            refused = await client.post(WEBHOOK, content=b"[]")  # no signature: counted, 401
            answer = await client.get("/metrics", headers=BEARER)
    finally:
        await db.dispose()
    assert refused.status_code == 401
    assert answer.status_code == 200
    scraped = parse(answer.text)
    assert value(scraped, "syncd_metrics_database_up") == 0
    assert value(scraped, "syncd_webhooks_total", source="xero", outcome="bad_signature") >= 1
    assert not series(scraped, "syncd_outbox_tasks")


# -- several processes ---------------------------------------------------------------------------

COUNTING_PROCESS = """
import sys
from pathlib import Path
from datetime import UTC, datetime, timedelta
from syncd.observability.instruments import configure, record_task, record_webhook, record_xero_call
configure(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    record_webhook("xero", "accepted")
record_xero_call("GET", "/projects.xro/2.0/Projects/0b7a0d5e-86a5-4c3c-a1a8-3c1b6a1b6f00", 200)
now = datetime.now(UTC)
record_task("test.kind", "done", enqueued_at=now - timedelta(seconds=int(sys.argv[2])), now=now)
"""


def counter_files(directory: Path) -> int:
    return len(list(directory.glob("counter_*.db")))


@pytest.fixture
def multiprocess_dir(tmp_path: Path) -> Iterator[Path]:
    """This test process counts in a multiprocess directory, and in memory again after."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    configure(directory)
    try:
        yield directory
    finally:
        configure(None)


async def test_counters_of_several_processes_add_up(
    db: Database, fernet_key: str, multiprocess_dir: Path
) -> None:
    """Two other processes count in the shared directory, this one serves a webhook: one scrape
    shows the sum of all three, the histogram and the per-call counters too."""
    for count in (3, 4):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", COUNTING_PROCESS, str(multiprocess_dir), str(count)
        )
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    assert counter_files(multiprocess_dir) == 2
    async with harness(
        db, fernet_key, metrics_token=Secret(TOKEN), metrics_multiproc_dir=multiprocess_dir
    ) as h:
        tenant = await h.connect(A)
        assert await post_webhook(h, delivery(tenant, "55555555-5555-4555-8555-555555555555"))
        scraped = await scrape(h)
    assert value(scraped, "syncd_webhooks_total", source="xero", outcome="accepted") == 3 + 4 + 1
    assert (
        value(
            scraped,
            "syncd_xero_calls_total",
            method="GET",
            endpoint="projects.xro/2.0/Projects/{id}",
            status="200",
        )
        == 2
    )
    latency = {"kind": "test.kind", "outcome": "done"}
    assert value(scraped, "syncd_outbox_task_latency_seconds_count", **latency) == 2
    assert value(scraped, "syncd_outbox_task_latency_seconds_sum", **latency) == 3 + 4
    assert value(scraped, "syncd_outbox_task_latency_seconds_bucket", le="5.0", **latency) == 2
    assert counter_files(multiprocess_dir) == 3  # one per process
