"""The HTTP deadlines uvicorn lacks, for a request's headers and for its body: a protocol class
for `uvicorn.Config(http=...)`. Keep-alive and the concurrency limit are uvicorn's own settings
(see syncd.cli's serve). Imports only syncd.logs.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from syncd.logs import get_logger

log = get_logger("syncd.http")


def _timeout_answer(message: bytes) -> bytes:
    return (
        b"HTTP/1.1 408 Request Timeout\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\n"
        b"connection: close\r\n"
        b"\r\n%s"
    ) % (len(message), message)


HEADERS_TOO_SLOW = _timeout_answer(b"the request headers took too long to arrive")
BODY_TOO_SLOW = _timeout_answer(b"the request body took too long to arrive")


class _Deadlines(asyncio.Protocol):
    """Mixed in before uvicorn's HTTP protocol (httptools or h11; both keep the request in
    flight as `cycle`), it bounds how long a client may take to send a request:

    - headers: complete within `header_timeout` seconds of the connection opening, or of the
      first byte of the next request on a kept-alive connection;
    - body: complete within `body_timeout` seconds of the headers, however steadily the bytes
      trickle in (a per-read timeout would let one byte every few seconds hold a slot for ever).

    Past a deadline the client is answered 408 and the connection closed, freeing its slot (one
    that never sent a byte is closed silently); the application, if it was waiting for the body,
    sees the client disconnect. A request whose headers and body come in one piece, as almost
    all do, arms no timer at all: the webhook's hot path pays nothing for this.
    """

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    # Set by uvicorn's protocol, which this is mixed into.
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None
    cycle: Any
    flow: Any
    _timer: asyncio.TimerHandle | None = None
    _timing: str | None = None  # what the timer waits for: "headers" or "body"
    _body_of: Any = None  # the request (uvicorn's cycle) whose body the timer waits for
    _partial: bool = False  # some bytes of the awaited request have arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm(self.header_timeout, "headers")

    def data_received(self, data: bytes) -> None:
        before = getattr(self, "cycle", None)
        # Bytes of a new request, rather than the rest of a body answered without being read.
        starts_request = before is None or (before.response_complete and not before.more_body)
        super().data_received(data)
        cycle = getattr(self, "cycle", None)
        if cycle is None or cycle.response_complete:  # waiting for (the rest of) a request
            self._partial = self._partial or starts_request
            if self._timing != "headers":
                self._arm(self.header_timeout, "headers")
        elif cycle.more_body:  # headers in, body still coming
            self._partial = False
            if self._timing != "body" or self._body_of is not cycle:
                self._arm(self.body_timeout, "body", cycle)
        else:  # the whole request is in
            self._partial = False
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, timing: str, body_of: Any = None) -> None:
        self._disarm()
        self._timing, self._body_of = timing, body_of
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timing = self._body_of = None

    def _expired(self) -> None:
        timing, body_of = self._timing, self._body_of
        self._timer = self._timing = self._body_of = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:
            return  # closed already, or handed to another protocol (an upgrade)
        cycle = getattr(self, "cycle", None)
        where = self.client[0] if self.client else None
        if timing == "headers":
            if cycle is not None and not cycle.response_complete:
                return  # the headers did arrive
            if self._partial:
                log.warning("http.header_timeout", client=where, seconds=self.header_timeout)
                transport.write(HEADERS_TOO_SLOW)
            transport.close()
            return
        if body_of is not cycle or not cycle.more_body or cycle.response_complete:
            return  # that body arrived, or the answer went out without it
        if self.flow.read_paused:
            # syncd stopped reading (the application is not taking the body yet): not the
            # client's delay, so give it the time again.
            self._arm(self.body_timeout, "body", cycle)
            return
        log.warning("http.body_timeout", client=where, seconds=self.body_timeout)
        if not cycle.response_started:
            transport.write(BODY_TOO_SLOW)
        transport.close()


def http_protocol(*, header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools, or h11 without it) with the two deadlines."""
    return cast(
        "type[asyncio.Protocol]",
        type(
            "SyncdHttpProtocol",
            (_Deadlines, AutoHTTPProtocol),
            {"header_timeout": float(header_timeout), "body_timeout": float(body_timeout)},
        ),
    )
