"""Names syncd gives things in Xero. Pure."""

from __future__ import annotations

MAX_JOB_NAME = 100  # Projects and XPM both show names in narrow lists; keep them readable


def job_name(service: str, client: str) -> str:
    """The CRM design's job name, "{Service Name} - {Client Name}", with tidy whitespace."""
    name = f"{' '.join(service.split())} - {' '.join(client.split())}"
    return name if len(name) <= MAX_JOB_NAME else name[: MAX_JOB_NAME - 1].rstrip() + "…"


def project_number(project_id: str) -> str:
    """Xero Projects have no job number; this short, stable code stands in for one in the CRM
    (XPM jobs bring their own, e.g. J000309)."""
    return "PRJ-" + project_id.replace("-", "")[:8].upper()
