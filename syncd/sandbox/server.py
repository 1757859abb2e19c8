"""Run the sandbox on a real socket with uvicorn (what `syncd sandbox --port N` calls).

Over a socket an exception cannot look like a broken connection, so dropped answers use the
"hang" mode: the sandbox waits `drop_hang_seconds` of its clock and then answers 504.
"""

from __future__ import annotations

from collections.abc import Sequence

import uvicorn

from syncd.clock import Clock, ScaledClock
from syncd.sandbox.app import create_sandbox_app
from syncd.sandbox.models import Faults
from syncd.sandbox.state import SandboxState

# syncd's own default OAuth callback (settings: XERO_REDIRECT_URI).
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/api/integrations/xero/callback"
DEFAULT_TENANTS = ("Demo Practice",)


def build_state(
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    redirect_uris: Sequence[str] = (DEFAULT_REDIRECT_URI,),
    webhook_key: str | None = None,
    tenant_names: Sequence[str] = (),
    clock: Clock | None = None,
    seed: int = 0,
    drop_hang_seconds: float = 30.0,
) -> SandboxState:
    """A state to serve over a socket: hang-mode drops, an optional seed app and tenants."""
    state = SandboxState(clock, seed=seed)
    state.faults = Faults(drop_mode="hang", drop_hang_seconds=drop_hang_seconds)
    if client_id:
        state.register_app(client_id, client_secret, list(redirect_uris), webhook_key)
    for name in tenant_names:
        state.add_tenant(name)
    return state


def build_server(state: SandboxState, *, port: int, host: str = "127.0.0.1") -> uvicorn.Server:
    config = uvicorn.Config(
        create_sandbox_app(state), host=host, port=port, lifespan="off", log_level="warning"
    )
    return uvicorn.Server(config)


def main(
    port: int,
    host: str = "127.0.0.1",
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    redirect_uris: Sequence[str] = (DEFAULT_REDIRECT_URI,),
    webhook_key: str | None = None,
    tenant_names: Sequence[str] = DEFAULT_TENANTS,
    time_scale: float = 1.0,
    seed: int = 0,
) -> None:
    """Serve the sandbox until interrupted. `time_scale` > 1 runs the sandbox's clock faster
    (rate windows, token lifetimes): 60 makes a minute pass in a second."""
    state = build_state(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=redirect_uris,
        webhook_key=webhook_key,
        tenant_names=tenant_names,
        clock=ScaledClock(time_scale) if time_scale != 1.0 else None,
        seed=seed,
    )
    build_server(state, port=port, host=host).run()


def serve_sandbox(
    *,
    host: str,
    port: int,
    client_id: str | None,
    client_secret: str | None = None,
    redirect_uris: Sequence[str] | None = None,
    webhook_key: str | None = None,
    tenants: Sequence[str] | None = None,
    time_scale: float = 1.0,
) -> None:
    """`main` with the CLI's argument names; None means the default (syncd's callback URI, one
    "Demo Practice" organisation)."""
    main(
        port,
        host,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=redirect_uris or (DEFAULT_REDIRECT_URI,),
        webhook_key=webhook_key,
        tenant_names=tenants or DEFAULT_TENANTS,
        time_scale=time_scale,
    )
