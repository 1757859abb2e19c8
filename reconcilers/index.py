"""The snapshot indexed in one pass over each list (jobs, then links, then requests), keeping
only what the checks read: which requests need a closer look, who links each listed job,
which jobs share a contact and name, and the open requests.

At 100,000 records a side the cost is in touching records, hashing their strings and building
dicts, so each record is visited once and each check then looks only at its few suspects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconcilers.snapshots import CrmRequest, Link, Snapshot, XeroJob
from syncd.domain.statuses import StatusClass

OPEN, CLOSED, NO_JOB = StatusClass.OPEN, StatusClass.CLOSED, StatusClass.NO_JOB
Key = tuple[str | None, str]  # a job's contact and name


class Classes(dict[str, StatusClass]):
    """Status string -> class, each distinct string classified once, the first time it is
    asked for: no check calls the mapping (or casefolds a Xero state) per record."""

    def __init__(self, classify: Callable[[str], StatusClass]) -> None:
        super().__init__()
        self.classify = classify

    def __missing__(self, status: str) -> StatusClass:
        found = self[status] = self.classify(status)
        return found


@dataclass(frozen=True, slots=True)
class Jobs:
    """The listing, by position: a job id's last listing counts (as in a dict of jobs)."""

    listed: list[XeroJob]
    position: dict[str | None, int]  # job id -> its last position (None is never a key)
    classes: list[StatusClass]  # by position
    groups: dict[Key, list[XeroJob]]  # jobs sharing a contact and name, by their second's place
    # The requests linking each listed job id (by its position), as often as they link it.
    first_link: list[str | None]
    more_links: dict[int, list[str]]  # the few linked more than once: all their requests

    def linking(self, job_id: str) -> list[str]:
        """The requests linking a job id (as often as they link it)."""
        n = self.position.get(job_id)
        return [] if n is None else self.linking_at(n)

    def linking_at(self, n: int) -> list[str]:
        """The requests recorded at a position (a job id's last listing)."""
        first = self.first_link[n]
        if first is None:
            return []
        return self.more_links.get(n) or [first]


@dataclass(frozen=True, slots=True)
class Index:
    crm_class: Classes
    xero_class: Classes
    jobs: Jobs
    links: dict[str, Link]  # the suspects' links, by request id (a request's last counts)
    suspects: list[CrmRequest]  # not plainly in step with their job, in request order
    open_requests: list[CrmRequest]  # in an open class, busy or not, in request order


def build(snapshot: Snapshot) -> Index:
    mapping = snapshot.status_mapping
    crm_class, xero_class = Classes(mapping.crm_class), Classes(mapping.xero_class)
    jobs = _jobs(snapshot.jobs, xero_class)
    sides = _sides(snapshot, jobs, crm_class, xero_class)
    suspects: list[CrmRequest] = []
    open_requests: list[CrmRequest] = []
    for request in snapshot.requests:
        cls = crm_class[request.status]  # a status the CRM does not have raises here
        if cls is OPEN:
            open_requests.append(request)
        if sides.get(request.request_id, NO_JOB) is not cls:
            suspects.append(request)
    wanted = {request.request_id for request in suspects}
    links = {link.request_id: link for link in snapshot.links if link.request_id in wanted}
    return Index(crm_class, xero_class, jobs, links, suspects, open_requests)


def _jobs(listed: list[XeroJob], xero_class: Classes) -> Jobs:
    position: dict[str | None, int] = {}
    classes: list[StatusClass] = [NO_JOB] * len(listed)
    # Jobs are first told apart by a hash of contact and name (no tuple kept per job); only
    # the few whose hash is not unique are grouped exactly, below.
    first: dict[int, int] = {}
    repeated: list[int] = []
    for n, job in enumerate(listed):
        position[job.job_id] = n
        classes[n] = xero_class[job.status]
        m = first.setdefault(hash((job.contact_id, job.name)), n)
        if m != n:
            repeated += (m, n)
    return Jobs(listed, position, classes, _groups(listed, repeated), [None] * len(listed), {})


def _groups(listed: list[XeroJob], positions: list[int]) -> dict[Key, list[XeroJob]]:
    """Jobs sharing a contact and name among those at `positions`, keyed in the order each
    key's second job is listed."""
    first: dict[Key, XeroJob] = {}
    groups: dict[Key, list[XeroJob]] = {}
    for job in map(listed.__getitem__, sorted(set(positions))):
        key = (job.contact_id, job.name)
        seen = first.setdefault(key, job)
        if seen is not job:
            groups.setdefault(key, [seen]).append(job)
    return groups


def _sides(
    snapshot: Snapshot, jobs: Jobs, crm_class: Classes, xero_class: Classes
) -> dict[str, StatusClass | None]:
    """By request id, the class of work Xero has for the request as the snapshot stands (a
    request's last link counts): no job, its job's class, or None for a job that is gone.
    Records who links each listed job on the way."""
    position, classes = jobs.position, jobs.classes
    first_link, more_links = jobs.first_link, jobs.more_links
    stands = not snapshot.capabilities.lists_closed_jobs
    sides: dict[str, StatusClass | None] = {}
    for link in snapshot.links:
        if link.crm_seen is not None:
            crm_class[link.crm_seen]  # classified now: one the CRM lacks raises
        n = position.get(link.job_id)
        if n is not None:
            sides[link.request_id] = None if link.deleted else classes[n]
            first = first_link[n]
            if first is None:
                first_link[n] = link.request_id
            else:
                more_links.setdefault(n, [first]).append(link.request_id)
        elif link.job_id is None:
            sides[link.request_id] = NO_JOB
        elif stands and not link.deleted and _seen_closed(link, xero_class):
            sides[link.request_id] = CLOSED  # Practice Manager lists no closed job: it stands
        else:
            sides[link.request_id] = None
    if "" in position:  # a link to "" links nothing
        first_link[position[""]] = None
        more_links.pop(position[""], None)
    return sides


def _seen_closed(link: Link, xero_class: Classes) -> bool:
    return link.xero_seen is not None and xero_class[link.xero_seen] is CLOSED
