"""What the sandbox's Accounting API routes (contacts, invoices) share: Xero's response envelope,
the JSON-only rule, `If-Modified-Since` parsing and request-level refusals.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from syncd.sandbox import errors, pages
from syncd.sandbox.models import ms_date, parse_iso
from syncd.sandbox.state import SandboxState

BASE = "/api.xro/2.0"
UUID = re.compile(r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$")


class Refused(Exception):
    """A request-level refusal, already shaped as Xero's answer."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


def envelope(
    state: SandboxState, request: Request, key: str, items: list[dict[str, Any]], **extra: Any
) -> JSONResponse:
    """Xero's Accounting answer: `{"Id", "Status", "ProviderName", "DateTimeUTC", key: items}`."""
    app = state.apps.get(request.state.grant.client_id)
    body: dict[str, Any] = {
        "Id": state.new_id(),
        "Status": "OK",
        "ProviderName": app.name if app else "syncd sandbox app",
        "DateTimeUTC": ms_date(state.clock.now(), offset=False),
        **extra,
        key: items,
    }
    return JSONResponse(body)


def accepts_json(request: Request) -> None:
    """Refuse (406) a request that does not accept JSON: Xero would answer XML."""
    if "json" not in request.headers.get("accept", "").lower():
        raise Refused(
            errors.accounting_error(
                406,
                "NotAcceptable",
                "Send Accept: application/json (Xero answers XML otherwise; the sandbox "
                "only speaks JSON).",
            )
        )


def not_found() -> JSONResponse:
    return errors.accounting_error(
        404, "NotFoundException", "The resource you're looking for cannot be found"
    )


def modified_since(raw: str | None) -> datetime | None:
    """The `If-Modified-Since` header: ISO-8601 (Xero's documented form) or an HTTP date."""
    if raw is None or not raw.strip():
        return None
    try:
        return parse_iso(raw)
    except ValueError:
        pass
    try:
        parsed = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        raise pages.BadParameter("If-Modified-Since", f"not a timestamp: {raw!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def paging(page: int | None, size: int | None, *, forced: bool = False) -> tuple[int, int] | None:
    """Page and page size when the caller asked for paging (None: answer everything).
    Out-of-range page sizes are clamped, as Xero does; 100 a page by default."""
    if page is None and size is None and not forced:
        return None
    return max(page or 1, 1), min(max(size or 100, 1), 1000)
