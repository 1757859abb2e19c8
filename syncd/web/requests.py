"""Reading requests safely at the edge: size-limited bodies, JSON objects of bounded depth, and
whole-number query and path parameters, each refused with a clear 4xx naming what is wrong."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from syncd.web.errors import ApiError

MAX_JSON_BODY = 256 * 1024
# Deeper than any body syncd takes (settings and mappings are two or three levels deep).
MAX_JSON_DEPTH = 32
# Ids and offsets are 64-bit in the database; anything past that is refused here, not there.
MAX_BIGINT = 2**63 - 1


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


def depth(value: Any) -> int:
    """How deeply `value`'s lists and objects nest (a scalar is 0), walked without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON from raw bytes, or a 400 saying why (not JSON, or nested deeper than `max_depth`)."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "the body must be JSON") from None
    except RecursionError:
        raise ApiError(400, "JSON nested too deeply") from None
    if depth(data) > max_depth:
        raise ApiError(400, f"JSON nested too deeply (more than {max_depth} levels)")
    return data


async def json_object(request: Request, *, limit: int = MAX_JSON_BODY) -> dict[str, Any]:
    raw = await read_limited(request, limit)
    if not raw.strip():
        return {}
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def whole_number(raw: str, name: str, *, low: int = 0, high: int = MAX_BIGINT) -> int:
    """`raw` as an int in [low, high], or a 400 naming `name`. Only ASCII digits after an
    optional minus (no plus, spaces, underscores or other scripts' digits, which int() takes)."""
    negative = raw.startswith("-")
    digits = raw[1:] if negative else raw
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ApiError(400, f"{name} must be a whole number")
    digits = digits.lstrip("0") or "0"
    # Past 19 digits it is out of any 64-bit range; never hand int() a 10,000-digit string.
    value = (-1 if negative else 1) * int(digits) if len(digits) <= 19 else None
    if value is None or not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """The query parameter `name` (absent or empty: `default`), checked by `whole_number`."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    return whole_number(raw, name, low=low, high=high)


def path_int(request: Request, name: str, *, label: str | None = None) -> int:
    """The path parameter `name` as a positive 64-bit id (400 naming `label` otherwise)."""
    return whole_number(str(request.path_params[name]), label or name, low=1)


def query_list(request: Request, name: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
    if allowed is not None:
        wrong = [v for v in values if v not in allowed]
        if wrong:
            raise ApiError(
                422, f"{name} must be among {', '.join(allowed)}; got {', '.join(wrong)}"
            )
    return values
