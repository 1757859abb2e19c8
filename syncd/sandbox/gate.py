"""The ASGI gate every simulated Xero request passes: ledger, bearer and tenant checks, scopes,
rate limits, latency, injected failures, Idempotency-Key replays (not on Practice Manager, which
does not document the header) and dropped answers.

A repeated Idempotency-Key with the same body (and query) replays the first answer; with a
different one it is refused with 422, the status the IETF's Idempotency-Key draft gives for a
key reused on a different payload (Xero documents no status for it; docs/sandbox.md).

The routes behind it only see requests Xero would have let through; they find the tenant id
in `request.state.tenant_id` and the grant in `request.state.grant`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from dataclasses import replace
from typing import Any, Literal

import httpx
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.locks import KeyedLocks
from syncd.sandbox import errors
from syncd.sandbox.limits import Admission, RateLimiter
from syncd.sandbox.models import LedgerEntry, StoredResponse
from syncd.sandbox.state import SandboxState
from syncd.sandbox.tokens import Grant, TokenRejected

Kind = Literal["control", "login", "identity", "connections", "api", "other"]
CONTROL_PREFIX = "/_sandbox"
_API_PREFIXES = ("/projects.xro/2.0/", "/api.xro/2.0/", "/practicemanager/3.1/")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MAX_IDEMPOTENCY_KEY = 128
_UNKEYED_PREFIXES = ("/practicemanager/",)
Slot = tuple[str, str, str, str]  # tenant, method, lower-cased path, Idempotency-Key


def kind_of(path: str) -> Kind:
    lower = path.lower()
    if lower == CONTROL_PREFIX or lower.startswith(CONTROL_PREFIX + "/"):
        return "control"
    if lower.startswith("/identity/"):
        return "login"
    if lower.startswith("/connect/"):
        return "identity"
    if lower == "/connections" or lower.startswith("/connections/"):
        return "connections"
    if lower.startswith(_API_PREFIXES):
        return "api"
    return "other"


def required_scopes(path: str, method: str) -> tuple[str, ...] | None:
    """Scopes of which a token needs one for this call (None: no scope rule simulated)."""
    lower = path.lower()
    read: tuple[str, ...]
    write: tuple[str, ...]
    if lower.startswith("/projects.xro/2.0/"):
        read, write = ("projects", "projects.read"), ("projects",)
    elif lower.startswith("/api.xro/2.0/contacts"):
        read, write = ("accounting.contacts", "accounting.contacts.read"), ("accounting.contacts",)
    elif lower.startswith("/api.xro/2.0/invoices"):
        # The broad scopes, or the granular ones that replace them (xero-facts 2.4).
        write = ("accounting.transactions", "accounting.invoices")
        read = (*write, "accounting.transactions.read", "accounting.invoices.read")
    elif lower.startswith("/practicemanager/3.1/"):
        # The broad (older) scope, or the granular one of the resource (xero-facts 2.4);
        # templates, categories and task types go with jobs.
        resource = lower.removeprefix("/practicemanager/3.1/").partition(".api")[0]
        area = {"template": "job", "category": "job", "task": "job"}.get(resource, resource)
        write = ("practicemanager", f"practicemanager.{area}")
        read = (*write, "practicemanager.read", f"practicemanager.{area}.read")
    else:
        return None
    return write if method in _WRITES else read


class _Entry:
    """The ledger row of one request, updated as the request goes through the gate."""

    def __init__(self, state: SandboxState, scope: Scope) -> None:
        self._ledger = state.ledger
        self._index = len(self._ledger)
        headers = Headers(scope=scope)
        self._ledger.append(
            LedgerEntry(
                seq=state.next_seq(),
                at=state.clock.now(),
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                tenant_id=None,
                status=None,
                idempotency_key=headers.get("idempotency-key"),
                concurrent_in_flight=0,
                rate_limited=False,
                fault=None,
            )
        )

    def update(self, **changes: Any) -> None:
        if self._index < len(self._ledger):
            self._ledger[self._index] = replace(self._ledger[self._index], **changes)

    def close_unanswered(self) -> None:
        """A request that ended without an answer (an exception) is recorded as a 500."""
        if self._index < len(self._ledger) and self._ledger[self._index].status is None:
            self.update(status=500)


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> StoredResponse:
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    body = bytearray()

    async def collect(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, collect)
    return StoredResponse(status=status, headers=tuple(headers), body=bytes(body))


async def _buffered(receive: Receive) -> tuple[bytes | None, Receive]:
    """The whole request body (None when the client left before sending all of it), and a
    `receive` that hands it to the app again."""
    chunks: list[bytes] = []
    ended: Message | None = None
    while True:
        message = await receive()
        if message["type"] != "http.request":
            ended = message  # the client went away before the body was complete
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False
    if ended is not None:
        return None, receive

    async def again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return ended if ended is not None else await receive()

    return body, again


def fingerprint(body: bytes, query: bytes) -> str:
    """What makes two writes under one Idempotency-Key the same request: the body (compared
    as JSON when it is JSON, so key order and spacing do not matter) and the query string."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
        content = b"json:" + canonical.encode()
    except (ValueError, RecursionError):
        content = b"raw:" + body
    return hashlib.sha256(content + b"?" + query).hexdigest()


def _stored(response: Response) -> StoredResponse:
    return StoredResponse(
        status=response.status_code, headers=tuple(response.raw_headers), body=bytes(response.body)
    )


async def _send(send: Send, response: StoredResponse, extra: dict[str, str] | None = None) -> None:
    headers = list(response.headers)
    for name, value in (extra or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


class SandboxGate:
    """Pure ASGI middleware in front of the sandbox's routes."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state
        self._slot_locks: KeyedLocks[Slot] = KeyedLocks()
        # The request each stored answer was for, kept beside `state.idempotency` (the answer
        # is the anchor: a reset world, or an answer another gate stored, has no fingerprint
        # here and is replayed as before).
        self._requests: dict[Slot, tuple[StoredResponse, str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or kind_of(scope["path"]) == "control":
            await self.app(scope, receive, send)
            return
        entry = _Entry(self.state, scope)
        try:
            await self._serve(scope, receive, send, entry)
        finally:
            entry.close_unanswered()

    async def _serve(self, scope: Scope, receive: Receive, send: Send, entry: _Entry) -> None:
        state = self.state
        path: str = scope["path"]
        method: str = scope["method"]
        kind = kind_of(path)
        headers = Headers(scope=scope)
        extra = {"Xero-Correlation-Id": str(uuid.uuid4())}
        limiter: RateLimiter = state.limiter
        tenant_id: str | None = None
        grant: Grant | None = None
        admission: Admission | None = None

        if kind in ("connections", "api"):
            try:
                grant = self._authenticate(headers)
            except TokenRejected as exc:
                challenge = "Bearer" if exc.missing else 'Bearer error="invalid_token"'
                refused = errors.problem(401, exc.detail, headers={"WWW-Authenticate": challenge})
                entry.update(status=401)
                await _send(send, _stored(refused), extra)
                return
            if kind == "api":
                tenant_id = (headers.get("xero-tenant-id") or "").strip().lower()
                entry.update(tenant_id=tenant_id or None)
                if tenant_id not in state.tenants or not state.authority.is_connected(
                    grant, tenant_id
                ):
                    entry.update(status=403)
                    refused = errors.problem(403, "AuthenticationUnsuccessful")
                    await _send(send, _stored(refused), extra)
                    return
                needed = required_scopes(path, method)
                if needed is not None and not set(needed) & set(grant.scopes):
                    entry.update(status=401)
                    refused = errors.problem(
                        401,
                        "AuthorizationUnsuccessful",
                        headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
                    )
                    await _send(send, _stored(refused), extra)
                    return
                admission = limiter.admit_tenant(
                    grant.client_id,
                    tenant_id,
                    state.clock.monotonic(),
                    state.limits_for(tenant_id),
                    state.limits.app_per_minute,
                )
            else:
                admission = limiter.admit_app(
                    grant.client_id, state.clock.monotonic(), state.limits.app_per_minute
                )
            entry.update(concurrent_in_flight=admission.in_flight)
            if not admission.accepted:
                entry.update(status=429, rate_limited=True)
                refused = errors.problem(429, f"Rate limit exceeded: {admission.problem}")
                await _send(send, _stored(refused), {**extra, **admission.headers()})
                return
            entry.update(counted=True)
            extra.update(admission.headers())

        try:
            answer, dropped = await self._apply(scope, receive, entry, kind, tenant_id, grant)
        finally:
            if kind == "api" and tenant_id is not None:
                limiter.release(tenant_id)
        entry.update(status=answer.status)
        if not dropped:
            await _send(send, answer, extra)
            return
        entry.update(fault="drop")
        if state.faults.drop_mode == "raise":
            raise httpx.RemoteProtocolError("sandbox dropped the response")
        await state.clock.sleep(state.faults.drop_hang_seconds)
        await _send(send, _stored(errors.problem(504, "sandbox dropped the response")), extra)

    def _authenticate(self, headers: Headers) -> Grant:
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRejected("AuthenticationUnsuccessful", missing=True)
        return self.state.authority.verify(token.strip()).grant

    async def _apply(
        self,
        scope: Scope,
        receive: Receive,
        entry: _Entry,
        kind: Kind,
        tenant_id: str | None,
        grant: Grant | None,
    ) -> tuple[StoredResponse, bool]:
        """Latency, then an injected failure or the route itself (or its stored replay)."""
        state = self.state
        path: str = scope["path"]
        method: str = scope["method"]
        if state.faults.latency_ms > 0 and state.faults.applies_to(path):
            await state.clock.sleep(state.faults.latency_ms / 1000)
        if state.take_fault(path, "fail"):
            entry.update(fault="fail")
            status = state.faults.fail_status
            return _stored(errors.problem(status, "sandbox injected fault")), False
        key = Headers(scope=scope).get("idempotency-key")
        if kind != "api" or tenant_id is None or method not in _WRITES or not key:
            key = None
        elif path.lower().startswith(_UNKEYED_PREFIXES):
            # XPM does not document Idempotency-Key: a repeated write runs again, so syncd
            # must find its earlier attempt itself (docs/practice-manager.md).
            key = None
        elif len(key) > _MAX_IDEMPOTENCY_KEY:
            refused = errors.problem(400, "Idempotency-Key must be at most 128 characters")
            return _stored(refused), False
        slot: Slot = (tenant_id or "", method, path.lower(), key or "")
        request = ""
        if key is not None:
            body, receive = await _buffered(receive)
            if body is None:
                # A server acts on a whole request only: a client killed between its headers
                # and its body has asked for nothing, and its retry must not meet a stored
                # answer to half a request.
                return _stored(errors.problem(400, "the request body was incomplete")), False
            request = fingerprint(body, scope.get("query_string", b""))
        # Like Xero, a repeat of a key still in flight waits for the first answer, so two
        # racing retries never both run the write.
        async with self._slot_locks(slot) if key else contextlib.nullcontext():
            if key is not None and slot in state.idempotency:
                stored = state.idempotency[slot]
                first = self._requests.get(slot)
                if first is not None and first[0] is stored and first[1] != request:
                    conflict = errors.problem(
                        422,
                        f"Idempotency-Key {key!r} was already used on {method} {path} with a "
                        "different request; a different request needs a new key",
                    )
                    return _stored(conflict), False
                entry.update(replayed=True)
                return stored, state.take_fault(path, "drop")
            scope.setdefault("state", {}).update(tenant_id=tenant_id, grant=grant)
            answer = await _capture(self.app, scope, receive)
            if key is not None and answer.status < 500:
                state.idempotency[slot] = answer
                self._requests[slot] = (answer, request)
        return answer, state.take_fault(path, "drop")
