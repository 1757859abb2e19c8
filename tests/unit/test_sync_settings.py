"""A practice's sync settings: defaults, validation that names every bad field, the mapping."""

from __future__ import annotations

import pytest

from syncd.domain.backends import Backend
from syncd.domain.statuses import ConflictPolicy, CrmStatus, StatusClass
from syncd.domain.sync_settings import Practice, SettingsInvalid, SyncSettings, parse_settings

XPM = Backend.PRACTICE_MANAGER


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
            "job_category_id": "cat-1",
        },
        backend=XPM,
    )
    assert parse_settings(settings.to_json()) == settings
    mapping = settings.status_mapping(XPM)
    assert mapping.xero_state_for(CrmStatus.PROCESSING) == "On Hold"  # sent exactly as typed
    assert mapping.xero_class("on  HOLD") is StatusClass.OPEN  # compared loosely
    assert settings.job_category_id == "cat-1"


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
        parse_settings({"status_overrides": {"completed": "INPROGRESS"}}, backend=Backend.PROJECTS)
    with pytest.raises(SettingsInvalid, match="completed is closed but Planned is open"):
        parse_settings({"status_overrides": {"completed": "Planned"}}, backend=XPM)


def test_projects_has_only_its_two_states_and_no_categories() -> None:
    """On Projects, an XPM-style code or a job category is refused, naming the problem."""
    with pytest.raises(SettingsInvalid) as caught:
        parse_settings(
            {"status_overrides": {"processing": "On Hold"}, "xero_state_classes": {"X": "open"}},
            backend=Backend.PROJECTS,
        )
    assert "only has the states INPROGRESS and CLOSED; not On Hold, X" in str(caught.value)
    with pytest.raises(SettingsInvalid, match="has no job categories"):
        parse_settings({"job_category_id": "c-1"}, backend=Backend.PROJECTS)


def test_practice_manager_defaults_and_an_undeclared_state() -> None:
    """XPM's default codes map each CRM status; a practice's own code needs its class first."""
    mapping = Practice(settings=SyncSettings(), backend=XPM).mapping
    assert [mapping.xero_state_for(s) for s in ("assigned", "processing", "completed")] == [
        "Planned",
        "In Progress",
        "Completed",
    ]
    assert mapping.xero_class("Cancelled") is StatusClass.CLOSED
    assert mapping.xero_class("On Hold") is StatusClass.UNKNOWN
    with pytest.raises(SettingsInvalid, match="processing is open but On Hold is unknown"):
        parse_settings({"status_overrides": {"processing": "On Hold"}}, backend=XPM)


def test_bad_job_category() -> None:
    """A category is an id or null."""
    with pytest.raises(SettingsInvalid, match="category id, or null"):
        parse_settings({"job_category_id": 7}, backend=XPM)
    assert parse_settings({"job_category_id": None}, backend=XPM).job_category_id is None


def test_partial_update_keeps_the_rest() -> None:
    """Fields not sent keep their current values."""
    base = parse_settings({"conflict_policy": "xero_wins"})
    updated = parse_settings({"auto_create_contacts": False}, base=base)
    assert updated.conflict_policy is ConflictPolicy.XERO_WINS
    assert updated.auto_create_contacts is False
