"""The one settings object: typed, frozen, read once from the environment (and `.env`).

Every setting is declared once in `SPEC` (name, default, parser, help); the loader, the example
environment file in `deploy/` and the settings table in docs/configuration.md all follow from it.
Imports nothing from syncd.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class Secret:
    """A string that never shows itself in `repr`/`str` (logs, tracebacks, debuggers)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# -- parsers: str -> value, raising ValueError with a human message -------------------------


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _secret(raw: str) -> Secret:
    return Secret(_text(raw))


def _http_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {raw!r}")
    return raw.strip().rstrip("/")


def database_url(raw: str) -> str:
    """Normalise a database URL to an async driver (asyncpg, aiosqlite)."""
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise ValueError(
            f"not a database URL: {raw!r} (e.g. sqlite:///syncd.db or "
            "postgresql://user@host:5432/db)"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    elif backend in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return url.render_as_string(hide_password=False)


def _fernet_keys(raw: str) -> tuple[Secret, ...]:
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise ValueError("must list at least one key (generate one with `syncd keys generate`)")
    for position, key in enumerate(keys, start=1):
        try:
            decoded = base64.urlsafe_b64decode(key.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError):
            decoded = b""
        if len(decoded) != 32:
            raise ValueError(
                f"key {position} is not a Fernet key (32 url-safe base64 bytes); "
                "generate one with `syncd keys generate`"
            )
    return tuple(Secret(k) for k in keys)


def _scopes(raw: str) -> tuple[str, ...]:
    scopes = tuple(raw.split())
    if not scopes:
        raise ValueError("must list at least one scope")
    return scopes


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _positive_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"must be greater than zero, got {value}")
    return value


def _port(raw: str) -> int:
    value = _positive_int(raw)
    if value > 65535:
        raise ValueError(f"not a TCP port: {value}")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}; got {raw!r}")
        return value

    return parse


def _metrics_token(raw: str) -> Secret:
    token = _text(raw)
    if len(token) < 16:
        raise ValueError("must be at least 16 characters (e.g. `openssl rand -hex 24`)")
    return Secret(token)


def _absolute_path(raw: str) -> Path:
    path = Path(_text(raw))
    if not path.is_absolute():
        raise ValueError(f"must be an absolute path, got {raw.strip()!r}")
    return path


def _pem_or_path(raw: str) -> str:
    text = raw.strip()
    if text.startswith("-----BEGIN"):
        return text.replace("\\n", "\n")
    path = Path(text)
    if not path.is_file():
        raise ValueError("must be a PEM public key or the path of a file holding one")
    return path.read_text()


@dataclass(frozen=True, slots=True)
class Option:
    """One environment variable: where it goes, how it is parsed, what it means."""

    env: str
    attr: str
    parse: Callable[[str], Any]
    default: str | None
    help: str
    secret: bool = False


DEFAULT_SCOPES = (
    "openid profile email offline_access projects accounting.contacts accounting.invoices.read"
)

SPEC: tuple[Option, ...] = (
    Option(
        "XERO_CLIENT_ID",
        "xero_client_id",
        _text,
        None,
        "OAuth client id of the Xero app (developer portal).",
    ),
    Option(
        "XERO_CLIENT_SECRET",
        "xero_client_secret",
        _secret,
        None,
        "OAuth client secret; leave unset for a PKCE-only app.",
        secret=True,
    ),
    Option(
        "XERO_REDIRECT_URI",
        "xero_redirect_uri",
        _http_url,
        "http://127.0.0.1:8000/api/integrations/xero/callback",
        "Redirect URI registered with the Xero app (must match exactly).",
    ),
    Option(
        "XERO_SCOPES",
        "xero_scopes",
        _scopes,
        DEFAULT_SCOPES,
        "Space-separated OAuth scopes requested on connect.",
    ),
    Option(
        "XERO_WEBHOOK_KEY",
        "xero_webhook_key",
        _secret,
        None,
        "Webhooks signing key from the Xero developer portal (used as UTF-8).",
        secret=True,
    ),
    Option(
        "XERO_WEBHOOK_KEY_PREVIOUS",
        "xero_webhook_key_previous",
        _secret,
        None,
        "Previous webhooks key, still accepted during a key rotation window.",
        secret=True,
    ),
    Option(
        "XERO_API_URL",
        "xero_api_url",
        _http_url,
        "https://api.xero.com",
        "Base URL of Xero's APIs (Projects, Accounting, connections).",
    ),
    Option(
        "XERO_IDENTITY_URL",
        "xero_identity_url",
        _http_url,
        "https://identity.xero.com",
        "Base URL of Xero's identity service (token, revocation).",
    ),
    Option(
        "XERO_LOGIN_URL",
        "xero_login_url",
        _http_url,
        "https://login.xero.com",
        "Base URL of Xero's login (authorize) page.",
    ),
    Option(
        "SYNCD_DATABASE_URL",
        "database_url",
        database_url,
        "sqlite:///syncd.db",
        "syncd's own database (SQLite file by default; PostgreSQL in production).",
    ),
    Option(
        "SYNCD_CRM_DATABASE_URL",
        "crm_database_url",
        database_url,
        None,
        "The CRM's database, read and written through the SQL CRM adapter.",
    ),
    Option(
        "SYNCD_ENCRYPTION_KEYS",
        "encryption_keys",
        _fernet_keys,
        None,
        "Comma-separated Fernet keys; the first encrypts, all decrypt.",
        secret=True,
    ),
    Option(
        "SYNCD_JWT_SECRET",
        "jwt_secret",
        _secret,
        None,
        "HS256 secret of the CRM's JWTs (set this or SYNCD_JWT_PUBLIC_KEY).",
        secret=True,
    ),
    Option(
        "SYNCD_JWT_PUBLIC_KEY",
        "jwt_public_key",
        _pem_or_path,
        None,
        "RS256 public key (PEM text or file path) of the CRM's JWTs.",
    ),
    Option(
        "SYNCD_CRM_WEBHOOK_SECRET",
        "crm_webhook_secret",
        _secret,
        None,
        "Shared secret (whsec_...) the CRM signs its pushed events with (Standard Webhooks).",
        secret=True,
    ),
    Option(
        "SYNCD_CHANGE_FEED_SECONDS",
        "change_feed_seconds",
        _positive_int,
        "10",
        "How often the CRM's change feed is read for each practice (seconds).",
    ),
    Option(
        "SYNCD_OUTBOX_MAX_ATTEMPTS",
        "outbox_max_attempts",
        _positive_int,
        "8",
        "Attempts before an outbound task is dead-lettered.",
    ),
    Option(
        "SYNCD_OUTBOX_LEASE_SECONDS",
        "outbox_lease_seconds",
        _positive_int,
        "300",
        "How long a worker that stops answering keeps its claimed tasks before another "
        "worker takes them over (a running task renews its claim every third of this).",
    ),
    Option(
        "SYNCD_SHUTDOWN_GRACE_SECONDS",
        "shutdown_grace_seconds",
        _positive_int,
        "20",
        "How long a stopping process (SIGTERM) lets work in flight finish: `serve` its "
        "requests, `worker` its tasks and events; unfinished claims are then handed back at "
        "once. Keep it below the platform's kill timeout (Kubernetes: 30 s).",
    ),
    Option(
        "SYNCD_XERO_MINUTE_LIMIT",
        "xero_minute_limit",
        _positive_int,
        "60",
        "Calls per minute syncd allows itself per Xero organisation (Xero's limit: 60).",
    ),
    Option(
        "SYNCD_XERO_DAY_LIMIT",
        "xero_day_limit",
        _positive_int,
        "5000",
        "Calls per day per organisation (5,000; 1,000 on Xero's Starter tier).",
    ),
    Option(
        "SYNCD_XERO_CONCURRENT_LIMIT",
        "xero_concurrent_limit",
        _positive_int,
        "5",
        "Calls in flight at once per organisation (Xero's limit: 5).",
    ),
    Option(
        "SYNCD_RECONCILE_INTERVAL_MINUTES",
        "reconcile_interval_minutes",
        _positive_int,
        "60",
        "How often each practice is reconciled (minutes); practices may set their own.",
    ),
    Option(
        "SYNCD_POLL_INTERVAL_MINUTES",
        "poll_interval_minutes",
        _positive_int,
        "5",
        "How often each practice's Xero jobs are polled for status changes (minutes).",
    ),
    Option(
        "SYNCD_WEBHOOK_MAX_BYTES",
        "webhook_max_bytes",
        _positive_int,
        "262144",
        "Largest webhook body accepted (bytes); bigger ones get 413.",
    ),
    Option("SYNCD_HOST", "host", _text, "127.0.0.1", "Interface `syncd serve` listens on."),
    Option("SYNCD_PORT", "port", _port, "8000", "Port `syncd serve` listens on."),
    Option(
        "SYNCD_HTTP_MAX_CONCURRENCY",
        "http_max_concurrency",
        _positive_int,
        "200",
        "Connections and requests `syncd serve` handles at once; past it, new ones get 503.",
    ),
    Option(
        "SYNCD_HTTP_KEEPALIVE_SECONDS",
        "http_keepalive_seconds",
        _positive_int,
        "5",
        "How long an idle keep-alive connection stays open (seconds).",
    ),
    Option(
        "SYNCD_HTTP_HEADER_TIMEOUT_SECONDS",
        "http_header_timeout_seconds",
        _positive_int,
        "10",
        "How long a client may take to send a request's headers before it is cut off (seconds).",
    ),
    Option(
        "SYNCD_HTTP_BODY_TIMEOUT_SECONDS",
        "http_body_timeout_seconds",
        _positive_int,
        "10",
        "How long a client may take to send a request's body before it is cut off (seconds).",
    ),
    Option(
        "SYNCD_COOKIE_SECURE",
        "cookie_secure",
        _choice("auto", "always", "never"),
        "auto",
        "Secure flag on the console's cookies: auto (when the request came over https), always "
        "(behind a TLS-terminating proxy), never.",
    ),
    Option(
        "SYNCD_CRM_URL",
        "crm_url",
        _http_url,
        None,
        "The CRM's address (scheme://host[:port]): console sign-in links are accepted only when "
        "the browser comes from there.",
    ),
    Option(
        "SYNCD_EMBEDDED_SCHEDULER",
        "embedded_scheduler",
        _choice("auto", "on", "off"),
        "auto",
        "Run the scheduler inside `syncd serve` (auto: only on SQLite).",
    ),
    Option(
        "SYNCD_METRICS_TOKEN",
        "metrics_token",
        _metrics_token,
        None,
        "Bearer token Prometheus sends to GET /metrics; unset, /metrics answers 404.",
        secret=True,
    ),
    Option(
        "SYNCD_METRICS_MULTIPROC_DIR",
        "metrics_multiproc_dir",
        _absolute_path,
        None,
        "Directory shared by the host's syncd processes for their counters (empty it before "
        "they start); unset, each process counts alone (docs/metrics.md).",
    ),
    Option(
        "SYNCD_LOG_FORMAT",
        "log_format",
        _choice("auto", "json", "console"),
        "auto",
        "Log output: JSON lines, console, or auto (console on a TTY).",
    ),
    Option(
        "SYNCD_LOG_LEVEL",
        "log_level",
        _choice("debug", "info", "warning", "error"),
        "info",
        "Lowest log level written.",
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    xero_client_id: str | None = None
    xero_client_secret: Secret | None = None
    xero_redirect_uri: str = "http://127.0.0.1:8000/api/integrations/xero/callback"
    xero_scopes: tuple[str, ...] = tuple(DEFAULT_SCOPES.split())
    xero_webhook_key: Secret | None = None
    xero_webhook_key_previous: Secret | None = None
    xero_api_url: str = "https://api.xero.com"
    xero_identity_url: str = "https://identity.xero.com"
    xero_login_url: str = "https://login.xero.com"
    database_url: str = "sqlite+aiosqlite:///syncd.db"
    crm_database_url: str | None = None
    encryption_keys: tuple[Secret, ...] = field(default=())
    jwt_secret: Secret | None = None
    jwt_public_key: str | None = None
    xero_minute_limit: int = 60
    xero_day_limit: int = 5000
    xero_concurrent_limit: int = 5
    crm_webhook_secret: Secret | None = None
    change_feed_seconds: int = 10
    outbox_max_attempts: int = 8
    outbox_lease_seconds: int = 300
    shutdown_grace_seconds: int = 20
    reconcile_interval_minutes: int = 60
    poll_interval_minutes: int = 5
    webhook_max_bytes: int = 262144
    host: str = "127.0.0.1"
    port: int = 8000
    http_max_concurrency: int = 200
    http_keepalive_seconds: int = 5
    http_header_timeout_seconds: int = 10
    http_body_timeout_seconds: int = 10
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    crm_url: str | None = None
    embedded_scheduler: Literal["auto", "on", "off"] = "auto"
    metrics_token: Secret | None = None
    metrics_multiproc_dir: Path | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def database_is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def runs_embedded_scheduler(self) -> bool:
        if self.embedded_scheduler == "auto":
            return self.database_is_sqlite
        return self.embedded_scheduler == "on"

    def require(self, *envs: str) -> None:
        """Fail with a SettingsError naming the first of `envs` that is unset."""
        by_env = {option.env: option for option in SPEC}
        for env in envs:
            value = getattr(self, by_env[env].attr)
            if value is None or value == ():
                raise SettingsError(env, f"is required here but not set ({by_env[env].help})")

    def require_jwt(self) -> None:
        if self.jwt_secret is None and self.jwt_public_key is None:
            raise SettingsError(
                "SYNCD_JWT_SECRET", "set it (or SYNCD_JWT_PUBLIC_KEY) to verify the CRM's JWTs"
            )


def load_settings(
    environ: Mapping[str, str] | None = None, *, env_file: Path | None = Path(".env")
) -> Settings:
    """Build Settings from `environ` (default: os.environ) over the values in `env_file`.

    The real environment wins over `.env`. Raises SettingsError for the first bad variable.
    """
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    kwargs: dict[str, Any] = {}
    for option in SPEC:
        raw = values.get(option.env)
        if raw is None or raw.strip() == "":
            raw = option.default
        if raw is None:
            continue
        try:
            kwargs[option.attr] = option.parse(raw)
        except ValueError as exc:
            raise SettingsError(option.env, str(exc)) from None
    return Settings(**kwargs)


def with_values(base: Settings, values: Mapping[str, str]) -> Settings:
    """`base` with the variables in `values` set, each parsed as if read from the environment
    (how `syncd demo` runs on exactly the lines it writes to its `.env`)."""
    by_env = {option.env: option for option in SPEC}
    changes: dict[str, Any] = {}
    for env, raw in values.items():
        option = by_env[env]
        try:
            changes[option.attr] = option.parse(raw)
        except ValueError as exc:
            raise SettingsError(env, str(exc)) from None
    return replace(base, **changes)


def is_secret(env: str) -> bool:
    """Whether the variable holds a secret (shown only as set or unset)."""
    return any(option.secret for option in SPEC if option.env == env)


def settings_attrs() -> set[str]:
    """Every attribute of Settings (used by a test that keeps SPEC and Settings in step)."""
    return {f.name for f in fields(Settings)}


def example_env() -> str:
    """The documented example environment file (deploy/syncd.env.example is exactly this)."""
    lines = [
        "# syncd configuration: every setting with its default.",
        "# Unset lines (commented out) have no default; secrets are marked.",
        "",
    ]
    for option in SPEC:
        lines.append(f"# {option.help}" + (" (secret)" if option.secret else ""))
        prefix = "# " if option.default is None else ""
        lines.append(f"{prefix}{option.env}={option.default or ''}")
        lines.append("")
    return "\n".join(lines)


def markdown_table() -> str:
    """The settings table of docs/configuration.md."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for option in SPEC:
        default = "—" if option.default is None else f"`{option.default}`"
        rows.append(f"| `{option.env}` | {default} | {option.help} |")
    return "\n".join(rows)


def describe(settings: Settings) -> list[tuple[str, str]]:
    """(variable, effective value) pairs with secrets masked, for `syncd config`."""
    shown = []
    for option in SPEC:
        value = getattr(settings, option.attr)
        if value is None or value == ():
            text = "(unset)"
        elif option.secret:
            text = "(set, hidden)"
        elif isinstance(value, tuple):
            text = " ".join(str(v) for v in value)
        else:
            text = str(value)
        shown.append((option.env, text))
    return shown
