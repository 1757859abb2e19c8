"""Run the sandbox on a real socket with uvicorn (what `syncd sandbox --port N` calls), with a
background flusher that delivers queued webhooks every half second of real time.

Over a socket an exception cannot look like a broken connection, so dropped answers use the
"hang" mode: the sandbox waits `drop_hang_seconds` of its clock and then answers 504.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence

import structlog
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.clock import Clock, ScaledClock
from syncd.sandbox.app import create_sandbox_app
from syncd.sandbox.models import Faults
from syncd.sandbox.state import SandboxState
from syncd.sandbox.webhooks import WebhookDispatcher

# syncd's own default OAuth callback (settings: XERO_REDIRECT_URI) and webhook ingress.
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/api/integrations/xero/callback"
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8000/api/integrations/xero/webhook"
DEFAULT_TENANTS = ("Demo Practice",)
FLUSH_SECONDS = 0.5

log = structlog.stdlib.get_logger("syncd.sandbox")


def build_state(
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    redirect_uris: Sequence[str] = (DEFAULT_REDIRECT_URI,),
    webhook_key: str | None = None,
    webhook_url: str | None = None,
    tenant_names: Sequence[str] = (),
    clock: Clock | None = None,
    seed: int = 0,
    drop_hang_seconds: float = 30.0,
) -> SandboxState:
    """A state to serve over a socket: hang-mode drops, an optional seed app and tenants. With a
    `webhook_key` the app's webhook goes to `webhook_url` (default: syncd's own ingress)."""
    state = SandboxState(clock, seed=seed)
    state.faults = Faults(drop_mode="hang", drop_hang_seconds=drop_hang_seconds)
    if client_id:
        state.register_app(
            client_id,
            client_secret,
            list(redirect_uris),
            webhook_key,
            webhook_url=webhook_url or (DEFAULT_WEBHOOK_URL if webhook_key else None),
        )
    for name in tenant_names:
        state.add_tenant(name)
    return state


def build_server(
    state: SandboxState, *, port: int, host: str = "127.0.0.1", request_log: bool = False
) -> uvicorn.Server:
    app: ASGIApp = create_sandbox_app(state)
    config = uvicorn.Config(
        RequestLog(app) if request_log else app,
        host=host,
        port=port,
        lifespan="off",
        log_level="warning",
    )
    return uvicorn.Server(config)


class RequestLog:
    """One log line per answered request (method, path, status), for someone watching
    `syncd sandbox` in a terminal: uvicorn's own access log is silenced by syncd's logging."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            log.info("sandbox.request", method=scope["method"], path=scope["path"], status=status)


async def serve(
    state: SandboxState,
    server: uvicorn.Server,
    *,
    sockets: list[socket.socket] | None = None,
    flush_seconds: float = FLUSH_SECONDS,
    dispatcher: WebhookDispatcher | None = None,
) -> None:
    """Run `server` until it exits, flushing `state`'s queued webhooks every `flush_seconds` of
    real time meanwhile (over real HTTP unless `dispatcher` says otherwise)."""
    flusher = asyncio.create_task(
        _flush_forever(dispatcher or WebhookDispatcher(state), flush_seconds)
    )
    try:
        await server.serve(sockets=sockets)
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher


async def _flush_forever(dispatcher: WebhookDispatcher, seconds: float) -> None:
    while True:
        try:
            await dispatcher.flush()
        except Exception:
            # A receiver's failure is a failed delivery; this is a sandbox bug. Keep serving.
            log.exception("sandbox.webhooks.flush_failed")
        await asyncio.sleep(seconds)


def main(
    sock: socket.socket,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    redirect_uris: Sequence[str] = (DEFAULT_REDIRECT_URI,),
    webhook_key: str | None = None,
    webhook_url: str | None = None,
    tenant_names: Sequence[str] = DEFAULT_TENANTS,
    time_scale: float = 1.0,
    seed: int = 0,
    flush_seconds: float = FLUSH_SECONDS,
) -> None:
    """Serve the sandbox on `sock` (listening) until interrupted, logging each request.
    `time_scale` > 1 runs the sandbox's clock faster
    (rate windows, token lifetimes, the webhooks' 24 hours of retries): 60 makes a minute pass
    in a second. Queued webhooks are sent every `flush_seconds` of real time."""
    state = build_state(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=redirect_uris,
        webhook_key=webhook_key,
        webhook_url=webhook_url,
        tenant_names=tenant_names,
        clock=ScaledClock(time_scale) if time_scale != 1.0 else None,
        seed=seed,
    )
    host, port = sock.getsockname()[:2]
    server = build_server(state, port=port, host=host, request_log=True)
    asyncio.run(serve(state, server, sockets=[sock], flush_seconds=flush_seconds))


def serve_sandbox(
    *,
    sock: socket.socket,
    client_id: str | None,
    client_secret: str | None = None,
    redirect_uris: Sequence[str] | None = None,
    webhook_key: str | None = None,
    webhook_url: str | None = None,
    tenants: Sequence[str] | None = None,
    time_scale: float = 1.0,
) -> None:
    """`main` with the CLI's argument names; None means the default (syncd's callback URI and
    webhook ingress, one "Demo Practice" organisation)."""
    main(
        sock,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=redirect_uris or (DEFAULT_REDIRECT_URI,),
        webhook_key=webhook_key,
        webhook_url=webhook_url,
        tenant_names=tenants or DEFAULT_TENANTS,
        time_scale=time_scale,
    )
