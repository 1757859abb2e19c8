"""A practice's sync settings: defaults, validation that names every bad field, the mapping."""

from __future__ import annotations

import pytest

from syncd.domain.statuses import ConflictPolicy, CrmStatus, StatusClass
from syncd.domain.sync_settings import SettingsInvalid, SyncSettings, parse_settings


def test_defaults() -> None:
    """Contacts are auto-created, the CRM wins conflicts, intervals follow the deployment."""
    settings = parse_settings({})
    assert settings == SyncSettings()
    assert settings.conflict_policy is ConflictPolicy.CRM_WINS
    assert settings.poll_interval_minutes is None
    assert settings.status_mapping().xero_state_for("processing") == "INPROGRESS"


def test_round_trip_through_json() -> None:
    """What is stored is read back identically."""
    settings = parse_settings(
        {
            "conflict_policy": "manual",
            "auto_heal": ["status_drift"],
            "poll_interval_minutes": 2,
            "xero_state_classes": {"On Hold": "open"},
            "status_overrides": {"processing": "On Hold"},
        }
    )
    assert parse_settings(settings.to_json()) == settings
    assert settings.status_mapping().xero_state_for(CrmStatus.PROCESSING) == "ON HOLD"
    assert settings.status_mapping().xero_class("on hold") is StatusClass.OPEN


def test_every_bad_field_is_reported_at_once() -> None:
    """One answer lists all problems, each against its field."""
    with pytest.raises(SettingsInvalid) as caught:
        parse_settings(
            {
                "conflict_policy": "coin_toss",
                "auto_create_contacts": "yes",
                "colour": "red",
                "poll_interval_minutes": 0,
                "auto_heal": ["everything"],
                "status_overrides": {"pending": "X"},
                "xero_state_classes": {"X": "maybe"},
            }
        )
    assert set(caught.value.errors) == {
        "conflict_policy",
        "auto_create_contacts",
        "colour",
        "poll_interval_minutes",
        "auto_heal",
        "status_overrides",
        "xero_state_classes",
    }


def test_an_override_cannot_cross_classes() -> None:
    """completed may not be written as an open state."""
    with pytest.raises(SettingsInvalid, match="completed is closed but INPROGRESS is open"):
        parse_settings({"status_overrides": {"completed": "INPROGRESS"}})


def test_partial_update_keeps_the_rest() -> None:
    """Fields not sent keep their current values."""
    base = parse_settings({"conflict_policy": "xero_wins"})
    updated = parse_settings({"auto_create_contacts": False}, base=base)
    assert updated.conflict_policy is ConflictPolicy.XERO_WINS
    assert updated.auto_create_contacts is False
