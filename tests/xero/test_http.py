"""XeroHttp at the HTTP boundary (respx): headers, the one refresh replay, error translation
(and reading any error body without raising), rate headers fed back to the governor, a call
trail without tokens, and the Projects list query as the spec serializes it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.domain.errors import (
    NeedsReconnect,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
)
from syncd.domain.ids import CompanyId
from syncd.xero.governor import RateGovernor
from syncd.xero.http import XeroHttp, build_client, translate, xero_message
from syncd.xero.projects import ProjectsApi
from tests.fakes import InstantClock, MemoryAudit, StaticTokens

API = "http://xero.test"
COMPANY = CompanyId("c-1")
PROJECTS = f"{API}/projects.xro/2.0/Projects"


@pytest.fixture
async def router() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False, assert_all_mocked=True) as mock:
        yield mock


@pytest.fixture
def parts() -> tuple[StaticTokens, MemoryAudit, RateGovernor]:
    clock = InstantClock()
    return StaticTokens(), MemoryAudit(), RateGovernor(clock=clock)


@pytest.fixture
async def http(parts: tuple[StaticTokens, MemoryAudit, RateGovernor]) -> AsyncIterator[XeroHttp]:
    tokens, audit, governor = parts
    async with build_client(base_url=API) as client:
        yield XeroHttp(client, tokens=tokens, governor=governor, audit=audit, clock=InstantClock())


async def test_tenant_bearer_and_idempotency_headers(
    router: respx.MockRouter, http: XeroHttp
) -> None:
    """Every call names the tenant and bears the token; writes carry the given Idempotency-Key."""
    get = router.get("/projects.xro/2.0/Projects").respond(200, json={"items": []})
    post = router.post("/projects.xro/2.0/Projects").respond(201, json={"projectId": "p"})
    await http.request(COMPANY, "GET", "/projects.xro/2.0/Projects")
    await http.request(
        COMPANY, "POST", "/projects.xro/2.0/Projects", json={}, idempotency_key="k-1"
    )
    read, write = get.calls.last.request, post.calls.last.request
    assert read.headers["xero-tenant-id"] == "tenant-1"
    assert read.headers["authorization"] == "Bearer token-1"
    assert "idempotency-key" not in read.headers
    # The caller's key, with a digest of the body: another body is another request.
    assert write.headers["idempotency-key"].startswith("k-1:")
    assert read.headers["accept"] == "application/json"


async def test_writes_without_a_key_still_get_one(router: respx.MockRouter, http: XeroHttp) -> None:
    """A PATCH/PUT with no caller key gets a fresh Idempotency-Key anyway."""
    route = router.patch("/projects.xro/2.0/Projects/p").respond(204)
    await http.request(COMPANY, "PATCH", "/projects.xro/2.0/Projects/p", json={"status": "CLOSED"})
    assert len(route.calls.last.request.headers["idempotency-key"]) >= 32


async def test_401_refreshes_once_and_replays(
    router: respx.MockRouter, http: XeroHttp, parts: tuple[StaticTokens, MemoryAudit, RateGovernor]
) -> None:
    """An early-expired token is refreshed exactly once and the same call is sent again."""
    route = router.get("/projects.xro/2.0/Projects/p").mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json={"projectId": "p"})]
    )
    response = await http.request(COMPANY, "GET", "/projects.xro/2.0/Projects/p")
    assert response.status_code == 200
    assert parts[0].refreshes == 1
    assert [c.request.headers["authorization"] for c in route.calls] == [
        "Bearer token-1",
        "Bearer token-2",
    ]


async def test_a_second_401_is_not_retried_again(router: respx.MockRouter, http: XeroHttp) -> None:
    """If the fresh token is refused too, the call fails (no loop) with a permanent error."""
    route = router.get("/projects.xro/2.0/Projects").respond(
        401, json={"Detail": "not provisioned"}
    )
    with pytest.raises(PermanentError, match="not provisioned"):
        await http.request(COMPANY, "GET", "/projects.xro/2.0/Projects")
    assert route.call_count == 2


@pytest.mark.parametrize(
    ("response", "error", "fragment"),
    [
        (
            httpx.Response(429, headers={"Retry-After": "17", "X-Rate-Limit-Problem": "minute"}),
            RateLimited,
            "minute",
        ),
        (
            httpx.Response(503, headers={"X-Rate-Limit-Problem": "Daily", "Retry-After": "60"}),
            RateLimited,
            "Daily",
        ),
        (httpx.Response(500), TransientError, "500"),
        (httpx.Response(503), TransientError, "503"),
        (httpx.Response(404), NotFound, "404"),
        (
            httpx.Response(403, json={"Type": "AuthorizationUnsuccessful"}),
            NeedsReconnect,
            "no longer covers",
        ),
        (
            httpx.Response(
                400, json={"message": "bad", "modelState": {"m.Name": ["Name is required"]}}
            ),
            PermanentError,
            "Name is required",
        ),
        (
            httpx.Response(
                400,
                json={
                    "ErrorNumber": 10,
                    "Type": "ValidationException",
                    "Message": "A validation exception occurred",
                    "Elements": [
                        {
                            "ValidationErrors": [
                                {"Message": "The contact name Acme is already assigned"}
                            ]
                        }
                    ],
                },
            ),
            PermanentError,
            "already assigned",
        ),
    ],
)
async def test_errors_are_translated_once(
    router: respx.MockRouter,
    http: XeroHttp,
    response: httpx.Response,
    error: type[Exception],
    fragment: str,
) -> None:
    """Each Xero failure maps to the class that tells the caller what to do, with Xero's words."""
    router.get("/projects.xro/2.0/Projects").mock(return_value=response)
    with pytest.raises(error, match=fragment) as caught:
        await http.request(COMPANY, "GET", "/projects.xro/2.0/Projects")
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after in {17.0, 60.0}


async def test_no_answer_is_transient(router: respx.MockRouter, http: XeroHttp) -> None:
    """A dropped connection or timeout is transient and says a write may have happened."""
    router.post("/projects.xro/2.0/Projects").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TransientError, match="may or may not have happened"):
        await http.request(COMPANY, "POST", "/projects.xro/2.0/Projects", json={})


async def test_rate_headers_and_429_feed_the_governor(
    router: respx.MockRouter, http: XeroHttp, parts: tuple[StaticTokens, MemoryAudit, RateGovernor]
) -> None:
    """X-MinLimit-Remaining lowers the budget; a 429 closes the tenant for Retry-After."""
    governor = parts[2]
    router.get("/projects.xro/2.0/Projects").mock(
        side_effect=[
            httpx.Response(
                200,
                json={},
                headers={
                    "X-MinLimit-Remaining": "3",
                    "X-DayLimit-Remaining": "10",
                    "X-AppMinLimit-Remaining": "9000",
                },
            ),
            httpx.Response(429, headers={"Retry-After": "25", "X-Rate-Limit-Problem": "minute"}),
        ]
    )
    await http.request(COMPANY, "GET", "/projects.xro/2.0/Projects")
    assert governor.budget("tenant-1").minute == 3
    assert governor.budget("tenant-1").day == 10
    with pytest.raises(RateLimited):
        await http.request(COMPANY, "GET", "/projects.xro/2.0/Projects")
    assert governor.budget("tenant-1").closed_for >= 24


async def test_every_call_is_audited_without_tokens(
    router: respx.MockRouter, http: XeroHttp, parts: tuple[StaticTokens, MemoryAudit, RateGovernor]
) -> None:
    """Each attempt leaves a record with status, timing and remaining limits, and no token."""
    audit = parts[1]
    router.get("/projects.xro/2.0/Projects").respond(
        200, json={}, headers={"X-MinLimit-Remaining": "59", "X-DayLimit-Remaining": "4999"}
    )
    router.post("/projects.xro/2.0/Projects").respond(400, json={"message": "nope"})
    await http.request(COMPANY, "GET", "/projects.xro/2.0/Projects")
    with pytest.raises(PermanentError):
        await http.request(COMPANY, "POST", "/projects.xro/2.0/Projects", json={})
    ok, refused = audit.calls
    assert (ok.status, ok.min_remaining, ok.day_remaining) == (200, 59, 4999)
    assert (refused.status, refused.error) == (400, "nope")
    assert "token" not in repr(audit.calls)


async def test_practice_manager_xml_errors_are_read(
    router: respx.MockRouter, http: XeroHttp
) -> None:
    """An XPM error answer (XML) gives its ErrorDescription, not raw markup."""
    router.get("/practicemanager/3.1/job.api/get/J1").respond(
        400,
        content=b"<Response><Status>ERROR</Status>"
        b"<ErrorDescription>Job not found</ErrorDescription></Response>",
        headers={"content-type": "text/xml"},
    )
    with pytest.raises(PermanentError, match="Job not found") as caught:
        await http.request(COMPANY, "GET", "/practicemanager/3.1/job.api/get/J1")
    assert "<Response>" not in str(caught.value)


def _answer(status: int, **content: Any) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("POST", f"{PROJECTS}/abc"), **content)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["message", "Message", "Detail", "modelState", "Elements", "ValidationErrors", "x"]
            )
            | st.text(max_size=8),
            inner,
            max_size=4,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(data=JSON, status=st.sampled_from([400, 401, 409, 422, 500]))
def test_any_json_error_body_reads_without_raising(data: Any, status: int) -> None:
    """Whatever JSON Xero answers (modelState and Elements of any shape included), the message
    is one line of text and the error is one of syncd's, never a raw TypeError."""
    response = _answer(status, content=json.dumps(data).encode())
    message = xero_message(response)
    assert isinstance(message, str)
    error = translate(response)
    assert error is not None
    assert isinstance(str(error), str)


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_bytes_read_without_raising(raw: bytes) -> None:
    """Bytes that are not JSON at all still give a message."""
    assert isinstance(xero_message(_answer(400, content=raw)), str)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "bad", "modelState": {"model.Name": "Name is required"}}, "Name is required"),
        ({"message": "bad", "modelState": {"m": ["one", "two"]}}, "one; two"),
        ({"message": "bad", "modelState": {"m": {"inner": ["deep"]}}}, "deep"),
        ({"message": "bad", "modelState": {"m": 42, "n": None}}, "42"),
        ({"message": "bad", "modelState": ["listed"]}, "listed"),
        ({"message": "bad", "modelState": "just text"}, "just text"),
        ({"Message": "v", "Elements": {"ValidationErrors": [{"Message": "one element"}]}}, "one"),
        ({"Message": "v", "Elements": [{"ValidationErrors": {"Message": "not a list"}}]}, "not a"),
        ({"Message": "v", "Elements": [{"ValidationErrors": ["plain"]}, None, 3]}, "plain"),
        ({"Message": {"text": "nested headline"}}, "nested headline"),
        ("a bare string", "a bare string"),
        ([], "Bad Request"),
    ],
)
def test_odd_error_shapes_keep_their_words(body: Any, expected: str) -> None:
    """A string is one message (not split per character); lists, objects, numbers and null
    in modelState, Elements or ValidationErrors are read for what they say."""
    message = xero_message(_answer(400, json=body))
    assert expected in message
    assert "N; a; m; e" not in message
    error = translate(_answer(400, json=body))
    assert isinstance(error, PermanentError)
    assert expected in str(error)


def test_nesting_too_deep_to_parse_still_reads() -> None:
    """A body nested past Python's recursion limit is shown as text, not a RecursionError."""
    deep = b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert xero_message(_answer(400, content=deep)).startswith('{"message": [[[')


async def test_audit_records_an_odd_error_body(
    router: respx.MockRouter, http: XeroHttp, parts: tuple[StaticTokens, MemoryAudit, RateGovernor]
) -> None:
    """The audit path (which reads Xero's message) survives a modelState of strings."""
    router.post("/projects.xro/2.0/Projects").respond(
        400, json={"message": "The request is invalid.", "modelState": {"model.Name": "Required"}}
    )
    with pytest.raises(PermanentError, match="Required"):
        await http.request(COMPANY, "POST", "/projects.xro/2.0/Projects", json={})
    assert parts[1].calls[-1].error == "The request is invalid.: Required"


async def test_project_ids_and_states_are_sent_as_the_spec_declares(
    router: respx.MockRouter, http: XeroHttp
) -> None:
    """projectIds is an exploded array: one `projectIds=` per id, never a comma-separated
    value; states is one string, left out when both states are wanted."""
    route = router.get("/projects.xro/2.0/Projects").respond(200, json={"items": []})
    api = ProjectsApi(http)
    await api.list_page(COMPANY, project_ids=["a-1", "b-2", "a-1"], states=["CLOSED"])
    sent = route.calls.last.request.url.params
    assert sent.get_list("projectIds") == ["a-1", "b-2"]
    assert sent.get_list("states") == ["CLOSED"]
    assert "," not in str(route.calls.last.request.url)
    await api.list_page(COMPANY, states=["INPROGRESS", "CLOSED"], page_size=9999)
    sent = route.calls.last.request.url.params
    assert "states" not in sent
    assert sent["pageSize"] == "500"
