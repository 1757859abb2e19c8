"""Logging: named JSON events in production, and no secret ever reaches the output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from syncd.logs import REDACTED, Redactor, configure_logging, get_logger

ACCESS = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"
REFRESH = "rt-5c2d1a7e9b8f4c6d"
CLIENT_SECRET = "xero-client-secret-0123456789"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "debug", secrets=[CLIENT_SECRET], stream=stream)
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_events_are_json_lines_with_bound_context(output: io.StringIO) -> None:
    """A named event with its fields becomes one JSON object per line."""
    get_logger("syncd.test").info("outbox.completed", task=7, attempts=2)
    [line] = lines(output)
    assert line["event"] == "outbox.completed"
    assert line["task"] == 7
    assert line["level"] == "info"
    assert "timestamp" in line


@pytest.mark.parametrize(
    "fields",
    [
        {"access_token": ACCESS},
        {"refresh_token": REFRESH},
        {"headers": {"Authorization": f"Bearer {ACCESS}"}},
        {"headers": {"x-xero-signature": "BjzNbYUfrzg4g8wxm+dKHaZVrKxr2m75E296fUbD1E4="}},
        {"code": "auth-code-123456"},
        {"client_secret": CLIENT_SECRET},
        {"body": f"grant_type=refresh_token&refresh_token={REFRESH}&client_secret=x"},
        {"body": json.dumps({"access_token": ACCESS, "refresh_token": REFRESH})},
        {"detail": f"call failed with Bearer {ACCESS}"},
        {"nested": [{"token": {"refresh_token": REFRESH}}]},
        {"url": f"https://x/callback?code=abc123def&state=s&token={REFRESH}"},
        {"message": f"secret is {CLIENT_SECRET} here"},
        {"cookie": "syncd_session=abcdef123456"},
    ],
)
def test_secrets_are_redacted_wherever_they_appear(
    output: io.StringIO, fields: dict[str, object]
) -> None:
    """Tokens, auth headers, codes, client secrets and signatures never reach the log line."""
    get_logger("syncd.test").info("xero.call", **fields)
    text = output.getvalue()
    for secret in (
        ACCESS,
        REFRESH,
        CLIENT_SECRET,
        "auth-code-123456",
        "abc123def",
        "BjzNbYUfrzg4g8wxm",
        "abcdef123456",
    ):
        assert secret not in text
    assert REDACTED in text


def test_tracebacks_are_redacted_too(output: io.StringIO) -> None:
    """An exception whose message carries a token is scrubbed after formatting."""
    try:
        raise RuntimeError(f"refresh failed: refresh_token={REFRESH}")
    except RuntimeError:
        get_logger("syncd.test").exception("token.refresh_failed")
    text = output.getvalue()
    assert REFRESH not in text
    assert "RuntimeError" in text


def test_standard_library_loggers_go_through_redaction(output: io.StringIO) -> None:
    """uvicorn/httpx-style stdlib log records are redacted as well."""
    logging.getLogger("thirdparty").warning("sending Authorization: Bearer %s", ACCESS)
    text = output.getvalue()
    assert ACCESS not in text
    assert "thirdparty" in text


def test_redactor_leaves_ordinary_values_alone() -> None:
    """Non-secret fields pass through untouched (ids, counts, paths)."""
    redactor = Redactor()
    event = {"event": "x", "task": 3, "path": "/projects.xro/2.0/Projects", "company": "c-1"}
    assert redactor(None, "info", dict(event)) == event
