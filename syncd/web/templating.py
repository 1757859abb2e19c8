"""The one Jinja2 environment for server-rendered pages (autoescaped, loaded from the package)."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("syncd.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(
        environment().get_template(template).render(**context), status_code=status_code
    )
