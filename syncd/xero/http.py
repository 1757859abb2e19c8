"""The one HTTP client factory, and XeroHttp: every tenant call to Xero goes through here.

A call takes the company's credentials, waits for the rate governor, sends with the tenant
header (and an `Idempotency-Key` on writes), folds the answer's rate headers back into the
governor, writes the sync log, and translates failures into syncd's error tree exactly once.
The only replay is the OAuth one: a 401 refreshes the token once and sends again. Retrying
anything else is the outbox's job (syncd.domain.retry).
"""

from __future__ import annotations

import hashlib
import json as jsonlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from syncd import __version__
from syncd.clock import Clock
from syncd.domain.errors import (
    NeedsReconnect,
    NotFound,
    PermanentError,
    RateLimited,
    SyncError,
    TransientError,
)
from syncd.domain.ids import CompanyId
from syncd.observability.instruments import record_xero_call
from syncd.xero import xml
from syncd.xero.audit import CallAudit, CallRecord
from syncd.xero.governor import RateGovernor, parse_retry_after

DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


def build_client(
    *,
    base_url: str = "",
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
) -> httpx.AsyncClient:
    """The one way syncd makes an HTTP client (Xero API, identity, webhook delivery)."""
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": f"syncd/{__version__}", "Accept": "application/json"},
    )


@dataclass(frozen=True, slots=True)
class Body:
    json: Any = None
    xml: bytes | None = None


def idempotency_header(key: str | None, body: Body) -> str:
    """The Idempotency-Key of a write: the caller's key (a task's, stable across its retries)
    with a digest of the body. Xero answers a key reused with another body as a conflict, and a
    retry rebuilds its body from current data (a client renamed meanwhile): that is another
    request, and gets its own key. Xero allows 128 characters."""
    if key is None:
        return str(uuid.uuid4())
    content = body.xml if body.xml is not None else jsonlib.dumps(body.json, sort_keys=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    digest = hashlib.sha256(content).hexdigest()[:16]
    return f"{key[: 128 - len(digest) - 1]}:{digest}"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_token: str
    tenant_id: str


class TokenSource(Protocol):
    async def credentials(self, company: CompanyId) -> Credentials:
        """A usable access token for the company's tenant (refreshed ahead of expiry)."""
        ...

    async def refreshed(self, company: CompanyId, *, stale: str) -> Credentials:
        """A token other than `stale`, refreshing once if nobody else has yet."""
        ...


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _is_xml(response: httpx.Response) -> bool:
    return "xml" in response.headers.get("content-type", "")


_HEADLINES = ("Detail", "detail", "Message", "message", "Title", "title", "error")
_MAX_DETAILS = 20
_MAX_TEXT = 200
_MAX_DEPTH = 8


def _texts(value: Any, depth: int = 0) -> list[str]:
    """The readable words in any JSON value: a string is one message (never its characters),
    numbers are spelt out, null and booleans say nothing, lists and objects give their members'
    words in order. Bounded in depth and count, so no shape can make it raise or run long."""
    if isinstance(value, str):
        text = " ".join(value.split())
        return [text[:_MAX_TEXT]] if text else []
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int | float):
        try:
            return [str(value)[:_MAX_TEXT]]
        except ValueError:  # an integer past Python's digit limit for str()
            return []
    if depth >= _MAX_DEPTH:
        return []
    members: list[Any] = []
    if isinstance(value, Mapping):
        members = list(value.values())
    elif isinstance(value, list):
        members = value
    found: list[str] = []
    for member in members:
        found.extend(_texts(member, depth + 1))
        if len(found) >= _MAX_DETAILS:
            break
    return found[:_MAX_DETAILS]


def _validation_details(elements: Any) -> list[str]:
    """Accounting's `Elements[].ValidationErrors[].Message`, whatever shape each level has."""
    details: list[str] = []
    for element in elements if isinstance(elements, list) else [elements]:
        if not isinstance(element, Mapping):
            continue
        errors = element.get("ValidationErrors")
        for error in errors if isinstance(errors, list) else [errors]:
            message = error.get("Message") if isinstance(error, Mapping) else error
            details.extend(_texts(message))
    return details


def error_message(data: Any, fallback: str) -> str:
    """Xero's explanation in a parsed JSON error body of any shape: the headline (`Detail`,
    `Message`, `message`, ...) then the field messages of Accounting's `Elements` and Projects'
    `modelState` (whose values the spec types only as `object`: lists, strings, objects,
    numbers or null all read). Never raises."""
    if not isinstance(data, Mapping):
        return "; ".join(_texts(data)) or fallback
    message = fallback
    for key in _HEADLINES:
        words = _texts(data.get(key))
        if words:
            message = "; ".join(words)
            break
    details = _validation_details(data.get("Elements")) + _texts(data.get("modelState"))
    details = [d for d in dict.fromkeys(details) if d != message][:_MAX_DETAILS]
    return f"{message}: {'; '.join(details)}" if details else message


def xero_message(response: httpx.Response) -> str:
    """Xero's own explanation, from whichever error shape the API used. Never raises."""
    if _is_xml(response):
        # Practice Manager answers XML: <Response><ErrorDescription>…</ErrorDescription>.
        try:
            described = xml.text(xml.read(response.content), "ErrorDescription")
        except PermanentError:
            return response.reason_phrase
        return described or response.reason_phrase
    try:
        data = response.json()
    except (ValueError, RecursionError):
        return response.text[:_MAX_TEXT] or response.reason_phrase
    return error_message(data, response.reason_phrase)


def translate(response: httpx.Response) -> SyncError | None:
    """Xero's answer as syncd's error, or None for success. The one place statuses mean things."""
    status = response.status_code
    if status < 400:
        # Practice Manager says many failures with HTTP 200 and <Status>ERROR</Status>.
        if not _is_xml(response):
            return None
        try:
            return xml.failure(xml.read(response.content))
        except PermanentError as unreadable:
            return unreadable
    message = f"Xero answered {status} to {response.request.method} {response.request.url.path}"
    problem = response.headers.get("X-Rate-Limit-Problem")
    if status == 429 or (status == 503 and problem):
        return RateLimited(
            f"{message}: rate limit ({problem or 'unknown'})",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            problem=problem.lower() if problem else None,
        )
    if status >= 500:
        return TransientError(
            message, retry_after=parse_retry_after(response.headers.get("Retry-After"))
        )
    if status == 403:
        return NeedsReconnect(f"{message}: the connection no longer covers this organisation")
    if status == 404:
        return NotFound(message)
    if status == 401:
        return PermanentError(
            f"{message}: {xero_message(response)} (is the API enabled for this organisation?)"
        )
    return PermanentError(f"{message}: {xero_message(response)}")


class XeroHttp:
    """Tenant-scoped calls to Xero's APIs for any connected company."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        tokens: TokenSource,
        governor: RateGovernor,
        audit: CallAudit,
        clock: Clock,
        on_connection_lost: Callable[[CompanyId, str], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.governor = governor
        self.audit = audit
        self.clock = clock
        # Xero answered that the organisation is no longer covered: the connection must be
        # marked, or /status would say "connected" while every call fails.
        self.on_connection_lost = on_connection_lost

    async def request(
        self,
        company: CompanyId,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        xml: bytes | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Send one call and return the successful response, or raise a SyncError. `xml` is a
        Practice Manager body (sent as application/xml)."""
        method = method.upper()
        headers = {}
        body = Body(json=json, xml=xml)
        if method in WRITE_METHODS:
            headers["Idempotency-Key"] = idempotency_header(idempotency_key, body)
        credentials = await self.tokens.credentials(company)
        response, error = await self._send(
            company, credentials, method, path, params, body, headers
        )
        if response.status_code == 401:
            # The token died early (revoked access token, clock skew): refresh once and replay.
            credentials = await self.tokens.refreshed(company, stale=credentials.access_token)
            response, error = await self._send(
                company, credentials, method, path, params, body, headers
            )
        if error is not None:
            if isinstance(error, NeedsReconnect) and self.on_connection_lost is not None:
                await self.on_connection_lost(company, str(error))
            raise error
        return response

    async def _send(
        self,
        company: CompanyId,
        credentials: Credentials,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Body,
        headers: dict[str, str],
    ) -> tuple[httpx.Response, SyncError | None]:
        """The answer, and what it means as syncd's error (translated once, also for the
        sync log: an XPM Status ERROR on HTTP 200 is logged as the failure it is)."""
        tenant = credentials.tenant_id
        request_headers = {
            **headers,
            "Authorization": f"Bearer {credentials.access_token}",
            "Xero-tenant-id": tenant,
        }
        if body.xml is not None:
            request_headers["Content-Type"] = "application/xml"
        async with self.governor.slot(tenant, company=company):
            started = time.monotonic()
            try:
                response = await self.client.request(
                    method,
                    path,
                    params=params,
                    json=body.json,
                    content=body.xml,
                    headers=request_headers,
                )
            except httpx.HTTPError as exc:
                await self._audit(company, method, path, None, started, None, type(exc).__name__)
                raise TransientError(
                    f"no answer from Xero for {method} {path} ({type(exc).__name__}); "
                    "a write may or may not have happened"
                ) from exc
            retry_after = (
                parse_retry_after(response.headers.get("Retry-After"))
                if response.status_code in {429, 503}
                else None
            )
            self.governor.observe(
                tenant,
                min_remaining=_int_header(response.headers, "X-MinLimit-Remaining"),
                day_remaining=_int_header(response.headers, "X-DayLimit-Remaining"),
                app_min_remaining=_int_header(response.headers, "X-AppMinLimit-Remaining"),
                retry_after=retry_after,
            )
        error = translate(response)
        noted = None
        if response.status_code >= 400:
            noted = xero_message(response)[:500]
        elif error is not None:
            noted = str(error)[:500]
        await self._audit(company, method, path, response.status_code, started, response, noted)
        return response, error

    async def _audit(
        self,
        company: CompanyId,
        method: str,
        path: str,
        status: int | None,
        started: float,
        response: httpx.Response | None,
        error: str | None,
    ) -> None:
        headers = response.headers if response is not None else httpx.Headers()
        record_xero_call(method, path, status)
        await self.audit.record(
            CallRecord(
                company=company,
                method=method,
                path=path,
                status=status,
                duration_ms=int((time.monotonic() - started) * 1000),
                at=self.clock.now(),
                min_remaining=_int_header(headers, "X-MinLimit-Remaining"),
                day_remaining=_int_header(headers, "X-DayLimit-Remaining"),
                app_min_remaining=_int_header(headers, "X-AppMinLimit-Remaining"),
                error=error,
            )
        )
