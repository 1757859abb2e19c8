"""The one HTTP client factory, and XeroHttp: every tenant call to Xero goes through here.

A call takes the company's credentials, waits for the rate governor, sends with the tenant
header (and an `Idempotency-Key` on writes), folds the answer's rate headers back into the
governor, writes the sync log, and translates failures into syncd's error tree exactly once.
The only replay is the OAuth one: a 401 refreshes the token once and sends again. Retrying
anything else is the outbox's job (syncd.domain.retry).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
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


def xero_message(response: httpx.Response) -> str:
    """Xero's own explanation, from whichever error shape the API used."""
    if _is_xml(response):
        # Practice Manager answers XML: <Response><ErrorDescription>…</ErrorDescription>.
        try:
            described = xml.text(xml.read(response.content), "ErrorDescription")
        except PermanentError:
            return response.reason_phrase
        return described or response.reason_phrase
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if not isinstance(data, dict):
        return str(data)[:200]
    for key in ("Detail", "detail", "Message", "message", "Title", "title", "error"):
        if data.get(key):
            message = str(data[key])
            break
    else:
        message = response.reason_phrase
    details: list[str] = []
    for element in data.get("Elements") or []:
        for error in (element or {}).get("ValidationErrors") or []:
            if error.get("Message"):
                details.append(str(error["Message"]))
    for field_errors in (data.get("modelState") or {}).values():
        details.extend(str(e) for e in field_errors or [])
    return f"{message}: {'; '.join(details)}" if details else message


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
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.governor = governor
        self.audit = audit
        self.clock = clock

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
        if method in WRITE_METHODS:
            headers["Idempotency-Key"] = (idempotency_key or str(uuid.uuid4()))[:128]
        body = Body(json=json, xml=xml)
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
