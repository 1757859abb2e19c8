"""A tiny webhook endpoint for tests, shaped as Xero asks (xero-facts 1.2/1.3): verify the raw
body's signature first, answer 401 to a bad one, 200 with no body and no cookie to a good one.
Misbehaving modes let tests see how the sandbox judges other endpoints."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Mode = Literal["correct", "always_200", "cookie", "body", "failing", "hang"]
URL = "http://receiver.test/webhook"


def signature_ok(raw_body: bytes, header_value: str | None, webhook_key: str) -> bool:
    """The verifier from xero-facts 1.3, written out independently of the sandbox's signer."""
    if not header_value:
        return False
    digest = hmac.new(webhook_key.encode("utf-8"), raw_body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode("ascii"), header_value.strip())


@dataclass
class Receiver:
    """Records every POST; `payloads` holds the verified ones, parsed."""

    key: str
    mode: Mode = "correct"
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    verdicts: list[bool] = field(default_factory=list)
    payloads: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/webhook", self._endpoint, methods=["POST"])])

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for payload in self.payloads for event in payload["events"]]

    async def _endpoint(self, request: Request) -> Response:
        raw = await request.body()
        good = signature_ok(raw, request.headers.get("x-xero-signature"), self.key)
        self.bodies.append(raw)
        self.headers.append(dict(request.headers))
        self.verdicts.append(good)
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode == "failing":
            return Response(status_code=503)
        if self.mode != "always_200" and not good:
            return Response(status_code=401)
        if good:
            self.payloads.append(json.loads(raw))
            self.arrived.set()
        answer = Response(b"ok" if self.mode == "body" else None, status_code=200)
        if self.mode == "cookie":
            answer.set_cookie("session", "abc")
        return answer
