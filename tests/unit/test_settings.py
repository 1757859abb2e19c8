"""Settings: typed, read once, every bad value named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from syncd.settings import (
    SPEC,
    Secret,
    SettingsError,
    describe,
    example_env,
    load_settings,
    markdown_table,
    settings_attrs,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_point_at_xero_and_a_local_sqlite_file() -> None:
    """With nothing set, syncd talks to Xero's real hosts and keeps its data in ./syncd.db."""
    settings = load_settings({}, env_file=None)
    assert settings.xero_api_url == "https://api.xero.com"
    assert settings.xero_identity_url == "https://identity.xero.com"
    assert settings.xero_login_url == "https://login.xero.com"
    assert settings.database_url == "sqlite+aiosqlite:///syncd.db"
    assert settings.runs_embedded_scheduler is True
    assert "offline_access" in settings.xero_scopes


def test_urls_are_normalised_to_async_drivers() -> None:
    """Plain postgresql:// and sqlite:/// URLs get the async drivers syncd uses."""
    settings = load_settings(
        {
            "SYNCD_DATABASE_URL": "postgresql://u:p@db:5432/syncd",
            "SYNCD_CRM_DATABASE_URL": "sqlite:////var/crm.db",
        },
        env_file=None,
    )
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/syncd"
    assert settings.crm_database_url == "sqlite+aiosqlite:////var/crm.db"
    assert settings.runs_embedded_scheduler is False


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("SYNCD_DATABASE_URL", "not a url", "not a database URL"),
        ("SYNCD_DATABASE_URL", "mysql://x@y/z", "unsupported database"),
        ("SYNCD_ENCRYPTION_KEYS", "short", "not a Fernet key"),
        ("SYNCD_ENCRYPTION_KEYS", " , ", "at least one key"),
        ("XERO_API_URL", "ftp://x", "not an http(s) URL"),
        ("XERO_REDIRECT_URI", "/callback", "not an http(s) URL"),
        ("SYNCD_PORT", "eighty", "whole number"),
        ("SYNCD_PORT", "70000", "not a TCP port"),
        ("SYNCD_EMBEDDED_SCHEDULER", "maybe", "expected one of"),
        ("SYNCD_LOG_FORMAT", "xml", "expected one of"),
        ("SYNCD_JWT_PUBLIC_KEY", "/no/such/file.pem", "PEM public key"),
    ],
)
def test_a_malformed_setting_is_named_in_one_line(variable: str, value: str, fragment: str) -> None:
    """Every parser failure becomes a SettingsError whose one-line message starts with the name."""
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value}, env_file=None)
    message = str(caught.value)
    assert message.startswith(f"{variable}: ")
    assert fragment in message
    assert "\n" not in message


def test_required_settings_are_checked_where_they_are_needed() -> None:
    """`require` names the first missing variable; JWT needs a secret or a public key."""
    settings = load_settings({}, env_file=None)
    with pytest.raises(SettingsError, match=r"^SYNCD_ENCRYPTION_KEYS: is required"):
        settings.require("SYNCD_ENCRYPTION_KEYS")
    with pytest.raises(SettingsError, match=r"^SYNCD_JWT_SECRET: "):
        settings.require_jwt()
    key = Fernet.generate_key().decode()
    load_settings({"SYNCD_ENCRYPTION_KEYS": key}, env_file=None).require("SYNCD_ENCRYPTION_KEYS")


def test_env_file_is_honoured_and_the_environment_wins(tmp_path: Path) -> None:
    """Values come from .env unless the real environment sets them too."""
    env_file = tmp_path / ".env"
    env_file.write_text("SYNCD_PORT=9001\nXERO_CLIENT_ID=from-file\n")
    settings = load_settings({"XERO_CLIENT_ID": "from-env"}, env_file=env_file)
    assert settings.port == 9001
    assert settings.xero_client_id == "from-env"


def test_empty_values_fall_back_to_defaults() -> None:
    """An exported-but-empty variable means "use the default", not an error."""
    assert load_settings({"SYNCD_PORT": ""}, env_file=None).port == 8000


def test_secrets_never_show_in_repr() -> None:
    """Secrets stay hidden in repr/str of the settings object (logs, tracebacks)."""
    key = Fernet.generate_key().decode()
    settings = load_settings(
        {"XERO_CLIENT_SECRET": "s3cr3t-value-xyz", "SYNCD_ENCRYPTION_KEYS": key}, env_file=None
    )
    shown = repr(settings) + str(settings)
    assert "s3cr3t-value-xyz" not in shown
    assert key not in shown
    assert settings.xero_client_secret == Secret("s3cr3t-value-xyz")
    assert settings.xero_client_secret is not None
    assert settings.xero_client_secret.reveal() == "s3cr3t-value-xyz"


def test_several_encryption_keys_keep_their_order() -> None:
    """The first key encrypts, so order matters."""
    keys = [Fernet.generate_key().decode() for _ in range(3)]
    settings = load_settings({"SYNCD_ENCRYPTION_KEYS": " , ".join(keys)}, env_file=None)
    assert [k.reveal() for k in settings.encryption_keys] == keys


def test_spec_and_settings_agree() -> None:
    """Every declared variable has a Settings field and vice versa."""
    assert {option.attr for option in SPEC} == settings_attrs()


def test_every_setting_is_documented() -> None:
    """docs/configuration.md's settings table and deploy/syncd.env.example are generated from
    SPEC and current (regenerate with `syncd config --markdown` / `syncd config --example`)."""
    table_doc = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / "deploy" / "syncd.env.example").read_text()
    assert markdown_table() in table_doc
    assert example == example_env()
    for option in SPEC:
        assert f"{option.env}=" in example, option.env


def test_describe_masks_secrets() -> None:
    """`syncd config` shows effective values but never a secret."""
    key = Fernet.generate_key().decode()
    shown = dict(describe(load_settings({"SYNCD_ENCRYPTION_KEYS": key}, env_file=None)))
    assert shown["SYNCD_ENCRYPTION_KEYS"] == "(set, hidden)"
    assert shown["XERO_CLIENT_ID"] == "(unset)"
    assert shown["SYNCD_PORT"] == "8000"
