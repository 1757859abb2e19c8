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
