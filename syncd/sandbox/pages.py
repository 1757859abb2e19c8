"""Request helpers shared by the Projects, Accounting and identity routes: case-insensitive
routes and query parameters (Xero's APIs are ASP.NET: paths and parameter names match in any
case, and so do the sandbox's), and paging.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.datastructures import QueryParams
from starlette.routing import Route

T = TypeVar("T")


class BadParameter(ValueError):
    """A query parameter Xero would refuse with 400; the message names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


def route(path: str, endpoint: Callable[..., Any], *, methods: list[str]) -> Route:
    """A Starlette route whose path matches in any letter case (parameters keep their case)."""
    built = Route(path, endpoint, methods=methods)
    built.path_regex = re.compile(built.path_regex.pattern, re.IGNORECASE)
    return built


def values(query: QueryParams, name: str) -> list[str]:
    """Every value of `name` (any case), comma-separated values split."""
    found: list[str] = []
    for key, value in query.multi_items():
        if key.lower() == name.lower():
            found.extend(part.strip() for part in value.split(",") if part.strip())
    return found


def first(query: QueryParams, name: str) -> str | None:
    for key, value in query.multi_items():
        if key.lower() == name.lower():
            return value
    return None


def integer(query: QueryParams, name: str, *, default: int | None) -> int | None:
    raw = first(query, name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadParameter(name, f"must be an integer, not {raw!r}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    page: int
    page_size: int
    page_count: int
    item_count: int

    def as_json(self) -> dict[str, int]:
        return {
            "page": self.page,
            "pageSize": self.page_size,
            "pageCount": self.page_count,
            "itemCount": self.item_count,
        }


def paginate(items: Sequence[T], page: int, page_size: int) -> tuple[list[T], Page]:
    count = len(items)
    start = (page - 1) * page_size
    window = list(items[start : start + page_size])
    return window, Page(
        page=page,
        page_size=page_size,
        page_count=math.ceil(count / page_size) if count else 0,
        item_count=count,
    )
