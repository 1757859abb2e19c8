"""A faithful Xero simulator for demos, tests and benchmarks: OAuth 2.0 (code + PKCE, rotating
refresh tokens, connections), the Projects API, Accounting contacts and invoices, signed webhooks
(with intent-to-receive, retries and disabling), Xero's rate limits and headers, injectable
faults, Idempotency-Key replays, a request ledger with checkers, and a JSON control API under
`/_sandbox/`.

`state.SandboxState` is the world, `app.create_sandbox_app` serves it, `webhooks.WebhookDispatcher`
delivers its webhooks, `server.main` runs it with uvicorn. Imports `syncd.clock` only; nothing in
syncd's own runtime imports the sandbox.
"""
