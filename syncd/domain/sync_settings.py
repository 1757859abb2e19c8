"""A practice's sync settings: defaults, validation (every bad field named), and the status
mapping they imply. Pure; stored as versioned JSON by syncd.store.settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from syncd.domain.backends import (
    CAPABILITIES,
    PROJECTS_STATES,
    Backend,
    Capabilities,
    default_mapping,
)
from syncd.domain.statuses import (
    CRM_CLASSES,
    ConflictPolicy,
    CrmStatus,
    StatusClass,
    StatusMapping,
    state_key,
)

FINDING_KINDS = (
    "assigned_without_job",
    "job_missing_in_xero",
    "status_drift",
    "job_for_unknown_request",
    "client_not_mapped",
    "staff_not_mapped",
    "service_not_mapped",
    "duplicate_jobs",
    "contact_archived",
    "unknown_xero_state",
)
DEFAULT_AUTO_HEAL = ("assigned_without_job", "status_drift", "contact_archived")


class SettingsInvalid(ValueError):
    """Settings that cannot be saved; `errors` maps each bad field to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncSettings:
    auto_create_contacts: bool = True
    sync_client_details: bool = True
    conflict_policy: ConflictPolicy = ConflictPolicy.CRM_WINS
    # CRM status -> Xero state code to write, overriding the backend's default mapping.
    status_overrides: Mapping[str, str] = field(default_factory=dict)
    # Xero states beyond the backend's defaults (XPM's practice-defined codes, e.g. On Hold)
    # and the class each belongs to.
    xero_state_classes: Mapping[str, str] = field(default_factory=dict)
    # Practice Manager: the category every new job gets (None: none).
    job_category_id: str | None = None
    auto_heal: tuple[str, ...] = DEFAULT_AUTO_HEAL
    # None: the deployment's default (SYNCD_*_INTERVAL_MINUTES).
    reconcile_interval_minutes: int | None = None
    poll_interval_minutes: int | None = None

    def status_mapping(self, backend: Backend = Backend.PROJECTS) -> StatusMapping:
        base = default_mapping(backend)
        outbound = {**base.outbound}
        for status, state in self.status_overrides.items():
            outbound[CrmStatus(status)] = state
        classes = {**base.xero_classes}
        for state, cls in self.xero_state_classes.items():
            classes[state_key(state)] = StatusClass(cls)
        return StatusMapping(xero_classes=classes, outbound=outbound, inbound=base.inbound)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["conflict_policy"] = self.conflict_policy.value
        data["status_overrides"] = dict(self.status_overrides)
        data["xero_state_classes"] = dict(self.xero_state_classes)
        data["auto_heal"] = list(self.auto_heal)
        return data


def parse_settings(
    data: Mapping[str, Any],
    *,
    base: SyncSettings | None = None,
    backend: Backend | None = None,
) -> SyncSettings:
    """Settings from JSON over `base` (unknown or bad fields are errors, all reported at once).

    With `backend`, the state mapping is also checked against what that backend has (Projects:
    only INPROGRESS and CLOSED); stored settings are read back without it."""
    base = base or SyncSettings()
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    known = set(SyncSettings.__dataclass_fields__)
    for key in data:
        if key not in known:
            errors[key] = "unknown setting"
    for key in ("auto_create_contacts", "sync_client_details"):
        if key in data:
            if isinstance(data[key], bool):
                values[key] = data[key]
            else:
                errors[key] = "must be true or false"
    if "conflict_policy" in data:
        try:
            values["conflict_policy"] = ConflictPolicy(data["conflict_policy"])
        except ValueError:
            allowed = ", ".join(p.value for p in ConflictPolicy)
            errors["conflict_policy"] = f"must be one of {allowed}"
    if "status_overrides" in data:
        overrides = data["status_overrides"]
        if not isinstance(overrides, Mapping) or not all(
            isinstance(v, str) and v.strip() for v in overrides.values()
        ):
            errors["status_overrides"] = "must map CRM statuses to Xero state names"
        else:
            bad = [k for k in overrides if k not in {s.value for s in CrmStatus}]
            if bad or CrmStatus.PENDING.value in overrides:
                errors["status_overrides"] = (
                    f"unknown or pending CRM statuses: {', '.join(map(str, bad or ['pending']))}"
                )
            else:
                values["status_overrides"] = {k: v.strip() for k, v in overrides.items()}
    if "xero_state_classes" in data:
        classes = data["xero_state_classes"]
        allowed_classes = {StatusClass.OPEN.value, StatusClass.CLOSED.value}
        if not isinstance(classes, Mapping) or not all(
            v in allowed_classes for v in classes.values()
        ):
            errors["xero_state_classes"] = "must map Xero state names to open or closed"
        else:
            values["xero_state_classes"] = {
                " ".join(str(k).split()): v for k, v in classes.items() if str(k).strip()
            }
    if "auto_heal" in data:
        heal = data["auto_heal"]
        if not isinstance(heal, list) or not all(k in FINDING_KINDS for k in heal):
            errors["auto_heal"] = f"must list finding kinds among {', '.join(FINDING_KINDS)}"
        else:
            values["auto_heal"] = tuple(dict.fromkeys(heal))
    if "job_category_id" in data:
        category = data["job_category_id"]
        if category is not None and (not isinstance(category, str) or not category.strip()):
            errors["job_category_id"] = "must be a Practice Manager category id, or null"
        else:
            values["job_category_id"] = category.strip() if category else None
    for key, low, high in (
        ("reconcile_interval_minutes", 5, 10080),
        ("poll_interval_minutes", 1, 1440),
    ):
        if key in data:
            value = data[key]
            if value is None:
                values[key] = None
            elif isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                errors[key] = f"must be a whole number from {low} to {high}, or null"
            else:
                values[key] = value
    if errors:
        raise SettingsInvalid(errors)
    merged = {**{k: getattr(base, k) for k in known}, **values}
    settings = SyncSettings(**merged)
    if backend is not None:
        _check_for_backend(settings, backend, errors)
    if errors:
        raise SettingsInvalid(errors)
    return settings


def _check_for_backend(settings: SyncSettings, backend: Backend, errors: dict[str, str]) -> None:
    """What the backend has: Projects' two states; an override keeps its status's class
    (`completed` cannot map to an open state); categories only where jobs have them."""
    capabilities = CAPABILITIES[backend]
    if capabilities.fixed_states:
        fixed = {state_key(s) for s in PROJECTS_STATES}
        wrong = sorted(
            {v for v in settings.status_overrides.values() if state_key(v) not in fixed}
            | {k for k in settings.xero_state_classes if state_key(k) not in fixed}
        )
        if wrong:
            errors["status_overrides"] = (
                f"{backend.label} only has the states {' and '.join(PROJECTS_STATES)}; "
                f"not {', '.join(wrong)}"
            )
            return
    if settings.job_category_id is not None and not capabilities.categories:
        errors["job_category_id"] = f"{backend.label} has no job categories"
    mapping = settings.status_mapping(backend)
    for status, state in settings.status_overrides.items():
        wanted = CRM_CLASSES[CrmStatus(status)]
        actual = mapping.xero_class(state)
        if actual is not wanted:
            errors["status_overrides"] = (
                f"{status} is {wanted.value} but {state} is {actual.value}: "
                "declare the state's class in xero_state_classes"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Practice:
    """A practice's settings together with its connection's backend: what the pipeline needs to
    know how a job of this practice behaves."""

    settings: SyncSettings
    backend: Backend = Backend.PROJECTS

    @property
    def mapping(self) -> StatusMapping:
        return self.settings.status_mapping(self.backend)

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES[self.backend]
