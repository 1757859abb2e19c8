"""Where request handlers find the process's services (set by the lifespan)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from syncd.services import Services


def services_of(request: HTTPConnection) -> Services:
    services: Services = request.app.state.services
    return services
