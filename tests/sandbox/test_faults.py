"""Injected faults (failures, lost answers, latency) and Idempotency-Key replays."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from starlette.types import Message

from syncd.sandbox import checks
from syncd.sandbox.app import create_sandbox_app
from syncd.sandbox.models import Contact, Faults, SandboxError
from syncd.sandbox.state import SandboxState
from tests.fakes import ManualClock
from tests.sandbox.flow import (
    ACCOUNTING,
    PROJECTS,
    REDIRECT,
    Session,
    authorize,
    query_of,
    token_request,
)

CREATE = f"{PROJECTS}/Projects"


def _job(contact: Contact, name: str = "Annual accounts") -> dict[str, str]:
    return {"contactId": contact.contact_id, "name": name}


async def test_fail_next_counts_but_does_not_apply(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """fail_next answers fail_status without creating anything; the calls still count."""
    state.faults = Faults(fail_next=2)
    first = await client.post(CREATE, headers=session.headers(), json=_job(contact))
    second = await client.post(CREATE, headers=session.headers(), json=_job(contact))
    assert (first.status_code, second.status_code) == (503, 503)
    assert second.headers["X-MinLimit-Remaining"] == "58"
    assert state.tenant(session.tenant_id).projects == {}
    assert (
        await client.post(CREATE, headers=session.headers(), json=_job(contact))
    ).status_code == 201
    faults = [e.fault for e in state.ledger if e.path == CREATE]
    assert faults == ["fail", "fail", None]
    assert state.faults.fail_next == 0


async def test_fail_status_and_path_prefix(
    client: httpx.AsyncClient, session: Session, state: SandboxState
) -> None:
    """Faults only hit paths under path_prefix, with the chosen status."""
    state.faults = Faults(fail_next=1, fail_status=500, path_prefix="/api.xro/2.0")
    assert (await client.get(CREATE, headers=session.headers())).status_code == 200
    failed = await client.get(f"{ACCOUNTING}/Contacts", headers=session.headers())
    assert failed.status_code == 500
    assert (
        await client.get(f"{ACCOUNTING}/Contacts", headers=session.headers())
    ).status_code == 200


async def test_drop_applies_the_effect_then_breaks_the_connection(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """drop_next creates the project and raises RemoteProtocolError in the client."""
    state.faults = Faults(drop_next=1)
    with pytest.raises(httpx.RemoteProtocolError, match="sandbox dropped the response"):
        await client.post(CREATE, headers=session.headers(), json=_job(contact))
    assert len(state.tenant(session.tenant_id).projects) == 1
    entry = next(e for e in state.ledger if e.path == CREATE)
    assert (entry.status, entry.fault) == (201, "drop")
    assert state.limiter.in_flight(session.tenant_id) == 0


async def test_idempotency_key_replay_after_a_drop_creates_one_project(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """Retrying a dropped create with the same Idempotency-Key returns the first answer."""
    state.faults = Faults(drop_next=1)
    headers = session.headers(**{"Idempotency-Key": "create:req-1:v1"})
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(CREATE, headers=headers, json=_job(contact))
    retried = await client.post(CREATE, headers=headers, json=_job(contact))
    assert retried.status_code == 201
    projects = state.tenant(session.tenant_id).projects
    assert list(projects) == [retried.json()["projectId"]]
    assert checks.duplicate_projects(state, session.tenant_id) == []
    replay = [e for e in state.ledger if e.path == CREATE][-1]
    assert replay.replayed and replay.counted and replay.idempotency_key == "create:req-1:v1"


async def test_retry_without_key_duplicates_and_the_checker_sees_it(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """Without an Idempotency-Key a blind retry creates a second job (a duplicate)."""
    state.faults = Faults(drop_next=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(CREATE, headers=session.headers(), json=_job(contact))
    await client.post(CREATE, headers=session.headers(), json=_job(contact, "annual ACCOUNTS"))
    groups = checks.duplicate_projects(state, session.tenant_id)
    assert [len(group) for group in groups] == [2]


async def test_idempotency_key_is_scoped_and_does_not_reapply(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """Keys are per tenant, method and path; a replayed PATCH does not apply again."""
    first = await client.post(
        CREATE, headers=session.headers(**{"Idempotency-Key": "k"}), json=_job(contact)
    )
    other = await client.post(
        CREATE, headers=session.headers(**{"Idempotency-Key": "k2"}), json=_job(contact, "B")
    )
    assert first.json()["projectId"] != other.json()["projectId"]
    url = f"{CREATE}/{first.json()['projectId']}"
    patch = session.headers(**{"Idempotency-Key": "k"})
    assert (await client.patch(url, headers=patch, json={"status": "CLOSED"})).status_code == 204
    state.set_project_status(session.tenant_id, first.json()["projectId"], "INPROGRESS")
    assert (await client.patch(url, headers=patch, json={"status": "CLOSED"})).status_code == 204
    assert state.project(session.tenant_id, first.json()["projectId"]).status == "INPROGRESS"
    too_long = session.headers(**{"Idempotency-Key": "x" * 129})
    assert (await client.post(CREATE, headers=too_long, json=_job(contact))).status_code == 400


async def test_same_key_and_same_body_replays(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """A repeat whose JSON body only differs in key order and spacing is the same request:
    the first answer is replayed and one project exists."""
    headers = {**session.headers(**{"Idempotency-Key": "k"}), "Content-Type": "application/json"}
    first = await client.post(
        CREATE, headers=headers, content=f'{{"contactId":"{contact.contact_id}","name":"A"}}'
    )
    again = await client.post(
        CREATE, headers=headers, content=f'{{ "name": "A", "contactId": "{contact.contact_id}" }}'
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert len(state.tenant(session.tenant_id).projects) == 1
    assert state.ledger[-1].replayed


async def test_a_client_gone_before_its_body_ended_leaves_its_key_unused(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """A worker killed between sending its headers and its body asked for nothing: no project,
    no stored answer, and its retry under the same key creates the project once."""
    key = "create:req-1:v1"
    body = json.dumps(_job(contact)).encode()
    headers = {**session.headers(**{"Idempotency-Key": key}), "Content-Type": "application/json"}
    messages: list[Message] = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": CREATE,
        "raw_path": CREATE.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    await create_sandbox_app(state)(scope, receive, send)
    assert sent[0]["status"] == 400
    assert state.tenant(session.tenant_id).projects == {}
    retried = await client.post(CREATE, headers=headers, content=body)
    assert retried.status_code == 201
    assert list(state.tenant(session.tenant_id).projects) == [retried.json()["projectId"]]
    assert not state.ledger[-1].replayed


async def test_same_key_with_a_different_body_is_a_422_conflict(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """One Idempotency-Key, same path, another body (or query): 422 naming the key, nothing
    written, nothing replayed; the first request still replays."""
    headers = session.headers(**{"Idempotency-Key": "create:req-1:v1"})
    first = await client.post(CREATE, headers=headers, json=_job(contact))
    changed = await client.post(CREATE, headers=headers, json=_job(contact, "Tax return"))
    assert changed.status_code == 422
    assert "create:req-1:v1" in changed.json()["Detail"]
    assert [p.name for p in state.tenant(session.tenant_id).projects.values()] == [
        "Annual accounts"
    ]
    assert not state.ledger[-1].replayed
    url = f"{ACCOUNTING}/Contacts"
    put = session.headers(**{"Idempotency-Key": "contact-1"})
    body = {"Contacts": [{"Name": "Acme Two"}]}
    assert (await client.put(url, headers=put, json=body)).status_code == 200
    other_query = await client.put(url, params={"summarizeErrors": "false"}, headers=put, json=body)
    assert other_query.status_code == 422
    replay = await client.post(CREATE, headers=headers, json=_job(contact))
    assert replay.json() == first.json()


async def test_a_reset_forgets_keys_and_their_requests(
    client: httpx.AsyncClient, session: Session, contact: Contact, state: SandboxState
) -> None:
    """After the stored answers are forgotten a key is new again, whatever body it had."""
    headers = session.headers(**{"Idempotency-Key": "k"})
    assert (await client.post(CREATE, headers=headers, json=_job(contact))).status_code == 201
    state.idempotency.clear()
    answer = await client.post(CREATE, headers=headers, json=_job(contact, "Other"))
    assert answer.status_code == 201
    assert len(state.tenant(session.tenant_id).projects) == 2


async def test_dropped_refresh_can_be_retried_with_the_old_token(
    client: httpx.AsyncClient, session: Session, state: SandboxState
) -> None:
    """A refresh whose answer is lost rotated the token; the old one still works (grace)."""
    state.faults = Faults(drop_next=1, path_prefix="/connect/token")
    form = {"grant_type": "refresh_token", "refresh_token": session.refresh_token}
    with pytest.raises(httpx.RemoteProtocolError):
        await token_request(client, form)
    retried = await token_request(client, form)
    assert retried.status_code == 200


async def test_hang_mode_answers_504_after_the_hang(
    client: httpx.AsyncClient,
    session: Session,
    contact: Contact,
    state: SandboxState,
    clock: ManualClock,
) -> None:
    """drop_mode "hang" applies the effect, waits drop_hang_seconds, then answers 504."""
    state.faults = Faults(drop_next=1, drop_mode="hang", drop_hang_seconds=30)
    pending = asyncio.create_task(
        client.post(CREATE, headers=session.headers(), json=_job(contact))
    )
    await clock.wait_for_sleepers(1)
    assert len(state.tenant(session.tenant_id).projects) == 1
    assert state.limiter.in_flight(session.tenant_id) == 0
    clock.advance(30)
    assert (await pending).status_code == 504


async def test_latency_waits_on_the_sandbox_clock(
    client: httpx.AsyncClient, session: Session, state: SandboxState, clock: ManualClock
) -> None:
    """latency_ms delays each answer by that much of the sandbox clock."""
    state.faults = Faults(latency_ms=250)
    pending = asyncio.create_task(client.get(CREATE, headers=session.headers()))
    await clock.wait_for_sleepers(1)
    assert not pending.done()
    clock.advance(0.25)
    assert (await pending).status_code == 200


async def test_reset_keeps_the_drop_mode(state: SandboxState) -> None:
    """reset() clears the world and fault counters but keeps how drops are served."""
    state.faults = Faults(drop_next=3, drop_mode="hang", drop_hang_seconds=5)
    state.reset()
    assert state.faults == Faults(drop_mode="hang", drop_hang_seconds=5)
    assert state.tenants == {}
    assert state.apps


@pytest.mark.parametrize(
    "kwargs",
    [{"fail_status": 200}, {"fail_next": -1}, {"drop_mode": "explode"}, {"latency_ms": "slow"}],
)
def test_faults_refuse_nonsense(kwargs: dict[str, object], state: SandboxState) -> None:
    """Faults validate their values, when built and when a knob is set later."""
    with pytest.raises(SandboxError):
        Faults(**kwargs)
    ((name, value),) = kwargs.items()
    with pytest.raises(SandboxError):
        setattr(state.faults, name, value)
    assert state.faults == Faults()


async def test_knobs_can_be_turned_in_place(
    client: httpx.AsyncClient, session: Session, state: SandboxState
) -> None:
    """state.faults.fail_next = N works like a new Faults; path_prefix None means every path."""
    state.faults.fail_next = 1
    state.faults.path_prefix = "/api.xro"
    assert (await client.get(CREATE, headers=session.headers())).status_code == 200
    state.faults.path_prefix = None
    assert (await client.get(CREATE, headers=session.headers())).status_code == 503


async def test_failed_token_call_does_not_consume_the_code(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    """fail_next hits the identity host too, before the code is used: a retry succeeds."""
    state.faults = Faults(fail_next=1, path_prefix="/connect/token")
    answer = await authorize(client)
    form = {
        "grant_type": "authorization_code",
        "code": query_of(answer.headers["location"])["code"],
        "redirect_uri": REDIRECT,
    }
    assert (await token_request(client, form)).status_code == 503
    assert (await token_request(client, form)).status_code == 200
