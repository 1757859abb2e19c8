"""The metrics settings: a token too short to be one, or a relative directory, is refused with
the variable's name; the token never shows itself; a directory that is not there stops the
process that would count into it, saying which setting to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.observability.instruments import configure
from syncd.settings import SettingsError, load_settings


def test_defaults_leave_metrics_off_and_counting_per_process() -> None:
    """Unset: no token (so /metrics is 404) and no shared directory."""
    settings = load_settings({}, env_file=None)
    assert settings.metrics_token is None
    assert settings.metrics_multiproc_dir is None


def test_a_short_token_is_refused() -> None:
    """Fewer than 16 characters is not a token anyone should scrape with."""
    with pytest.raises(SettingsError) as caught:
        load_settings({"SYNCD_METRICS_TOKEN": "short"}, env_file=None)
    assert caught.value.variable == "SYNCD_METRICS_TOKEN"
    assert "short" not in str(caught.value)  # the message never repeats the secret


def test_the_token_is_a_secret() -> None:
    """Parsed, it reveals itself only when asked."""
    token = "a-metrics-token-of-some-length"
    settings = load_settings({"SYNCD_METRICS_TOKEN": token}, env_file=None)
    assert settings.metrics_token is not None
    assert settings.metrics_token.reveal() == token
    assert token not in repr(settings)


def test_the_directory_must_be_absolute() -> None:
    """A relative directory would depend on where each process was started."""
    with pytest.raises(SettingsError) as caught:
        load_settings({"SYNCD_METRICS_MULTIPROC_DIR": "metrics"}, env_file=None)
    assert caught.value.variable == "SYNCD_METRICS_MULTIPROC_DIR"
    settings = load_settings({"SYNCD_METRICS_MULTIPROC_DIR": "/run/syncd-metrics"}, env_file=None)
    assert settings.metrics_multiproc_dir == Path("/run/syncd-metrics")


def test_a_missing_directory_stops_the_process_naming_the_setting(tmp_path: Path) -> None:
    """configure refuses a directory that is not there (rather than failing at the first count)."""
    with pytest.raises(SettingsError) as caught:
        configure(tmp_path / "absent")
    assert caught.value.variable == "SYNCD_METRICS_MULTIPROC_DIR"
