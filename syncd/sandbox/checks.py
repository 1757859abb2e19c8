"""Pure checkers over the sandbox's ledger and world: the properties a well-behaved client keeps
(never two jobs for one request, at most the per-minute and concurrency limits per tenant).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from syncd.sandbox.models import Job, LedgerEntry, Project
from syncd.sandbox.state import SandboxState


def max_concurrency(ledger: Sequence[LedgerEntry], tenant_id: str) -> int:
    """The most calls the tenant ever had in flight at once (accepted calls only)."""
    return max(
        (e.concurrent_in_flight for e in ledger if e.tenant_id == tenant_id and e.counted),
        default=0,
    )


def max_calls_in_any_window(
    ledger: Sequence[LedgerEntry], tenant_id: str, seconds: float = 60
) -> int:
    """The most accepted calls of the tenant within any window of `seconds` (sliding)."""
    times = sorted(e.at for e in ledger if e.tenant_id == tenant_id and e.counted)
    best = 0
    start = 0
    for end, moment in enumerate(times):
        while (moment - times[start]).total_seconds() >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def count_429(ledger: Sequence[LedgerEntry], tenant_id: str | None = None) -> int:
    """Calls answered 429 (for one tenant, or all)."""
    return sum(
        1 for e in ledger if e.status == 429 and (tenant_id is None or e.tenant_id == tenant_id)
    )


def duplicate_projects(state: SandboxState, tenant_id: str) -> list[list[Project]]:
    """Groups of projects sharing contact and name (case-insensitive): duplicate jobs."""
    groups: defaultdict[tuple[str, str], list[Project]] = defaultdict(list)
    for project in state.tenant(tenant_id).projects.values():
        groups[(project.contact_id, project.name.strip().casefold())].append(project)
    return [group for group in groups.values() if len(group) > 1]


def duplicate_jobs(state: SandboxState, tenant_id: str) -> list[list[Job]]:
    """Groups of Practice Manager jobs sharing client and client order number (jobs without an
    order number are never grouped): duplicate jobs, since syncd's reference is that number."""
    groups: defaultdict[tuple[str, str], list[Job]] = defaultdict(list)
    for job in state.tenant(tenant_id).jobs.values():
        if job.client_order_number:
            groups[(job.client_uuid, job.client_order_number)].append(job)
    return [group for group in groups.values() if len(group) > 1]
