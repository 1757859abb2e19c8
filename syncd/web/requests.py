"""Reading request bodies safely: size-limited, JSON objects only, clear 4xx otherwise."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from syncd.web.errors import ApiError

MAX_JSON_BODY = 256 * 1024


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over `limit` bytes, declared or streamed."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, f"request body is larger than {limit} bytes")
        except ValueError:
            raise ApiError(400, "invalid Content-Length") from None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
    return bytes(body)


async def json_object(request: Request, *, limit: int = MAX_JSON_BODY) -> dict[str, Any]:
    raw = await read_limited(request, limit)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "the body must be JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(422, f"{name} must be between {low} and {high}")
    return value


def query_list(request: Request, name: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
    if allowed is not None:
        wrong = [v for v in values if v not in allowed]
        if wrong:
            raise ApiError(
                422, f"{name} must be among {', '.join(allowed)}; got {', '.join(wrong)}"
            )
    return values
