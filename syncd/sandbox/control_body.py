"""Request bodies of the sandbox's control API: a JSON object with typed, validated field
access, and the guard that turns refusals into 400 (404 for unknown things) `{"error": …}`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from syncd.sandbox.models import SandboxError, UnknownEntity

Handler = Callable[[Request], Awaitable[Response]]


class Body:
    """A JSON object body with typed, validated field access."""

    def __init__(self, data: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise SandboxError(f"unknown field(s): {', '.join(unknown)}")
        self.data = data

    def text(self, name: str) -> str:
        value = self.data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise SandboxError(f"{name} is required and must be a non-empty string")
        return value

    def optional_text(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, str):
            raise SandboxError(f"{name} must be a string")
        return value

    def optional_bool(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, bool):
            raise SandboxError(f"{name} must be true or false")
        return value

    def optional_int(self, name: str) -> int | None:
        value = self.data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise SandboxError(f"{name} must be a whole number")
        return value

    def optional_number(self, name: str) -> float | None:
        value = self.data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise SandboxError(f"{name} must be a number")
        return None if value is None else float(value)

    def amount(self, name: str) -> Decimal:
        value = self.data.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise SandboxError(f"{name} is required and must be a number")
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise SandboxError(f"{name} must be a number, not {value!r}") from None

    def optional_date(self, name: str) -> date | None:
        value = self.optional_text(name)
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            raise SandboxError(f"{name} must be a date (YYYY-MM-DD), not {value!r}") from None

    def texts(self, name: str, *, nullable: bool = False) -> list[str] | None:
        value = self.data.get(name)
        if value is None and nullable:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SandboxError(f"{name} must be a list of strings")
        return list(value)


async def read_json(request: Request, allowed: set[str]) -> Body:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise SandboxError("body must be JSON") from None
    if not isinstance(data, dict):
        raise SandboxError("body must be a JSON object")
    return Body(data, allowed)


def guarded(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except UnknownEntity as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return guarded
