"""The one logging setup (structlog) and the redaction processor that keeps secrets out of logs.

JSON lines in production, readable console output on a TTY. Standard-library loggers (uvicorn,
alembic, apscheduler) are routed through the same processors, so redaction covers them too.
Imports nothing from syncd.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"

# Keys whose values are secrets wherever they appear (compared lower-case, '-' as '_').
SENSITIVE_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "authorization",
        "proxy_authorization",
        "code",
        "code_verifier",
        "client_secret",
        "secret",
        "password",
        "signature",
        "x_xero_signature",
        "webhook_signature",
        "cookie",
        "set_cookie",
        "encryption_keys",
        "webhook_key",
    }
)

_FORM_OR_QUERY = re.compile(
    r"(?i)\b(access_token|refresh_token|id_token|code|code_verifier|client_secret|token|"
    r"password|signature)=([^&\s\"']+)"
)
_JSON_PAIR = re.compile(
    r"(?i)([\"'](?:access_token|refresh_token|id_token|code|code_verifier|client_secret|"
    r"token|password|signature|x-xero-signature|authorization)[\"']\s*:\s*)[\"'][^\"']*[\"']"
)
_BEARER = re.compile(r"\b((?i:bearer)|Basic)\s+[A-Za-z0-9\-._~+/]{8,}=*")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def _normalise(key: str) -> str:
    return key.lower().replace("-", "_")


class Redactor:
    """A structlog processor that strips secrets from every value of an event dict.

    Sensitive keys are blanked wherever they are nested; strings are scrubbed of bearer/basic
    credentials, JWTs, `token=`-style pairs and JSON pairs; and any literal secret registered
    with `add_secret` (client secret, webhook key, encryption keys) is replaced wherever it occurs.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = {s for s in secrets if len(s) >= 6}

    def add_secret(self, value: str) -> None:
        if len(value) >= 6:
            self._secrets.add(value)

    def scrub_text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        text = _JWT.sub(REDACTED, text)
        text = _JSON_PAIR.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
        return _FORM_OR_QUERY.sub(lambda m: f"{m.group(1)}={REDACTED}", text)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, bytes):
            return self.scrub_text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {
                k: (
                    REDACTED
                    if isinstance(k, str) and _normalise(k) in SENSITIVE_KEYS
                    else self.scrub(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub(v) for v in value]
        return value

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        return {
            key: (REDACTED if _normalise(key) in SENSITIVE_KEYS else self.scrub(value))
            for key, value in event_dict.items()
        }


redactor = Redactor()


def _drop_color_message(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """uvicorn adds an ANSI-coloured copy of each message; the plain one is enough."""
    event_dict.pop("color_message", None)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        structlog.processors.format_exc_info,
        redactor,
    ]


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    *,
    secrets: Iterable[str] = (),
    stream: Any = None,
) -> None:
    """Configure structlog and the standard library once for the whole process."""
    for secret in secrets:
        redactor.add_secret(secret)
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    shared = _shared_processors()
    structlog.configure(
        processors=[
            *shared[:-1],  # format_exc_info and redaction run in the formatter below
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared[:-2],
        processors=[
            structlog.processors.format_exc_info,
            redactor,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_color_message,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in (
        "uvicorn.access",
        "httpx",
        "httpcore",
        "aiosqlite",
        "asyncio",
        "apscheduler",
        "alembic",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
