"""The Starlette application: routes, error answers, the browser security headers on every
answer but the webhook's (see SyncdApp), and the lifespan that builds the services (and, on
the embedded default, runs the scheduler in the same process)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.logs import get_logger
from syncd.observability.instruments import configure as configure_metrics
from syncd.scheduler import SchedulerRunner
from syncd.services import Services, open_services
from syncd.settings import Settings
from syncd.web import (
    connection,
    crm_events,
    health,
    metrics,
    pages,
    practice_api,
    reconcile,
    synclog,
    webhook,
)
from syncd.web.auth import JwtVerifier
from syncd.web.errors import exception_handlers
from syncd.web.session import configure

log = get_logger("syncd.web")


def all_routes() -> list[BaseRoute]:
    return [
        *webhook.routes,
        *health.routes,
        *metrics.routes,
        *connection.routes,
        *crm_events.routes,
        *synclog.routes,
        *reconcile.routes,
        *practice_api.routes,
        *pages.routes(),
        static_files(),
    ]


def static_files() -> Mount:
    files = StaticFiles(packages=[("syncd.web", "static")])
    files.__syncd_access__ = "public"  # type: ignore[attr-defined]
    return Mount("/static", app=files, name="static")


def security_headers() -> list[tuple[str, str]]:
    """What every answer tells the browser: pages load only this app's own scripts, styles and
    images (no inline code, no plugins), no site may frame them, referrers stay on this origin,
    types are not sniffed. No `form-action`: the Connect button's redirect goes on through
    Xero's login, whose own redirects are not ours to list (docs/console-security.md)."""
    policy = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )
    return [
        ("Content-Security-Policy", policy),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("X-Content-Type-Options", "nosniff"),
    ]


class SecurityHeaders:
    """Pure ASGI middleware appending fixed headers to every HTTP answer: no body buffering and
    no task, about a microsecond a request (the webhook path stays cheap). Routes do not set
    these headers themselves."""

    def __init__(self, app: ASGIApp, *, headers: Iterable[tuple[str, str]]) -> None:
        self.app = app
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SyncdApp(Starlette):
    """Starlette, with Xero's webhook answered before routing and middleware. It is the one hot
    path (docs/webhook-performance.md: the stack cost ~10 µs of ~50 a request); its answer is
    bodiless and read by Xero's servers, never by a browser, so the page headers have nothing
    to protect; and the ingress answers its own failures. Any other path, or the webhook's
    under a root path, goes through the stack as usual."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == webhook.PATH:
            scope["app"] = self
            await webhook.ingress(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    run_scheduler: bool | None = None,
) -> Starlette:
    """Build the app. Tests pass their own `services`; otherwise the lifespan opens them."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with _services(settings, services) as active:
            app.state.services = active
            with_scheduler = (
                settings.runs_embedded_scheduler if run_scheduler is None else run_scheduler
            )
            runner = (
                SchedulerRunner(active, shutdown_grace=settings.shutdown_grace_seconds)
                if with_scheduler
                else None
            )
            if runner is not None:
                runner.start()
            # Everything built so far lives as long as the process: moving it out of the
            # collector's reach keeps full collections short (p99 of the webhook 53 ms → 7 ms).
            gc.collect()
            gc.freeze()
            log.info("web.started", scheduler=with_scheduler)
            try:
                yield
            finally:
                if runner is not None:
                    await runner.stop()
                log.info("web.stopped")

    # Where this process's counters live, before it counts anything (a bad directory stops
    # `syncd serve` here with one line).
    configure_metrics(settings.metrics_multiproc_dir)
    app = SyncdApp(
        routes=all_routes(),
        lifespan=lifespan,
        exception_handlers=exception_handlers,
        middleware=[Middleware(SecurityHeaders, headers=security_headers())],
    )
    app.state.jwt = JwtVerifier(settings)
    # Console cookies are signed with a key derived from the first encryption key (stable
    # across restarts), flagged Secure per SYNCD_COOKIE_SECURE; sign-in links must come from
    # SYNCD_CRM_URL (see syncd.web.session).
    app.state.sessions = configure(settings)
    if services is not None:
        # In-process tests drive the app without a lifespan; give them the services at once.
        app.state.services = services
    return app


@asynccontextmanager
async def _services(settings: Settings, given: Services | None) -> AsyncIterator[Services]:
    if given is not None:
        yield given
        return
    async with open_services(settings) as opened:
        yield opened
