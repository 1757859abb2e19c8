"""Pure reconciliation at scale: 100,000 CRM requests against about 100,000 Xero jobs.

Each mix is one practice as the runner would snapshot it, with the defects a real practice
has: status drift (some of it CRM-side, some Xero-side, some echoes of syncd's own writes, some
unknown), pending requests, open requests without a job, links to jobs Xero no longer has,
jobs of mapped clients that no request knows, duplicate jobs (same contact and name), jobs
linked twice, requests with work in flight, unmapped clients, archived and vanished contacts,
unmapped accountants (some matching a Xero staff member by email) and, where the backend has
templates, unmapped services. Xero Projects mixes use its two states; Practice Manager mixes use
the default XPM codes, spelled as practices do ("In Progress", "IN PROGRESS", "in progress"),
a few codes the practice never classed, and a listing without the closed jobs.

Reports CPU seconds (process time, median of --rounds, each round on a freshly built snapshot)
for the full `reconcilers.reconcile` and, side by side, the cost of merely indexing the same
inputs into dicts once — the floor any linear algorithm pays — with the ratio; then the
findings per kind, so the mix can be judged. Before timing a mix it checks, once, that the
findings equal those of the straightforward reference (tests/unit/reconcile_reference.py): same
findings, same order, same JSON. The machine's load average is printed: on a
shared machine the figures move with it, so run it more than once.
Usage: `.venv/bin/python benchmarks/reconcile.py [--size 100000] [--rounds 5]
[--drift 0.02,0.4] [--backends projects,practicemanager] [--listing xero|creation]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconcilers import Finding, Kind, reconcile
from reconcilers.snapshots import (
    Capabilities,
    CrmPerson,
    CrmRequest,
    CrmService,
    Link,
    Mappings,
    Snapshot,
    XeroContact,
    XeroJob,
    XeroStaff,
)
from syncd.domain.backends import CAPABILITIES, Backend, default_mapping
from syncd.domain.statuses import ConflictPolicy, StatusClass

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the reference, in tests/
from tests.unit import reconcile_reference

OPEN, CLOSED = ("assigned", "processing"), ("completed", "cancelled")
SERVICES = (
    "Tax Return",
    "BAS",
    "Bookkeeping",
    "Payroll",
    "Advisory",
    "Audit",
    "Company Secretarial",
    "FBT Return",
    "Trust Return",
    "SMSF Audit",
)
# Xero state codes per class as a practice's jobs carry them (XPM codes in several spellings).
STATES: dict[Backend, dict[StatusClass, tuple[str, ...]]] = {
    Backend.PROJECTS: {StatusClass.OPEN: ("INPROGRESS",), StatusClass.CLOSED: ("CLOSED",)},
    Backend.PRACTICE_MANAGER: {
        StatusClass.OPEN: ("Planned", "In Progress", "IN PROGRESS", "in progress"),
        StatusClass.CLOSED: ("Completed", "Cancelled", "COMPLETED"),
    },
}
UNCLASSED = ("On Hold", "Waiting on Client")  # XPM codes the practice has not classed


@dataclass(frozen=True, slots=True, kw_only=True)
class Mix:
    """Shares of requests (or of clients, accountants, services) with each defect."""

    backend: Backend
    drift: float  # linked requests whose job is in the other class
    # Xero's listing order: its own ("xero": shuffled, so every look-up of a link's job lands
    # somewhere else in memory, the worst case) or the order the jobs were made ("creation").
    listing: str = "xero"
    pending: float = 0.08  # not assigned yet: no job expected
    open: float = 0.45  # of the assigned: open, the rest closed
    unlinked: float = 0.01  # open requests without a job
    missing: float = 0.005  # links to jobs Xero no longer has (half marked deleted)
    busy: float = 0.005  # requests with outbox work in flight
    unknown_jobs: float = 0.02  # jobs of mapped clients no request links
    foreign_jobs: float = 0.06  # jobs of contacts no client maps to (not a finding)
    duplicates: float = 0.005  # a second job with a linked job's contact and name
    double_links: float = 0.001  # a request linked to its neighbour's job
    unclassed: float = 0.002  # XPM: jobs in a state the practice never classed
    unmapped_clients: float = 0.01
    archived_contacts: float = 0.005
    missing_contacts: float = 0.002
    unmapped_accountants: float = 0.1
    unmapped_services: float = 0.2

    @property
    def label(self) -> str:
        name = "projects" if self.backend is Backend.PROJECTS else "XPM"
        order = "" if self.listing == "xero" else f", {self.listing} order"
        return f"{name}, {self.drift:.0%} drift{order}"


@dataclass(slots=True)
class Plan:
    """A practice's records as plain numbers and codes, in the order each side lists them.

    `snapshot` turns it into fresh objects (fresh strings too) every round, each list allocated
    in its order, as the runner builds them from what it reads: no string's hash is cached from
    an earlier round, as none is in production (drivers and parsers return new strings).
    """

    mix: Mix
    requests: list[tuple[int, int, int, int | None, str]]  # n, client, service, accountant, status
    links: list[tuple[int, int | None, str | None, str | None, str | None, bool]]
    # key, contact (a client's; past the last client, nobody's), name, state
    jobs: list[tuple[int, int, str, str]]
    busy: list[int]
    clients: int
    contacts: list[tuple[int, bool]]  # client, archived
    contact_map: list[int]
    accountants: int
    staff_map: list[int]
    service_map: list[int]


def plan(size: int, mix: Mix, seed: int = 7) -> Plan:
    rng = random.Random(seed)
    mapping = default_mapping(mix.backend)
    states = STATES[mix.backend]
    lists_closed = CAPABILITIES[mix.backend].lists_closed_jobs
    n_clients, n_accountants = max(1, size // 5), max(1, size // 500)
    done = Plan(mix, [], [], [], [], n_clients, [], [], n_accountants, [], [])
    periods = [0] * n_clients  # a client's jobs are named by service and year, unique per client

    def state(cls: StatusClass) -> str:
        if mix.backend is Backend.PRACTICE_MANAGER and rng.random() < mix.unclassed:
            return rng.choice(UNCLASSED)
        return rng.choice(states[cls])

    for n in range(size):
        client, service = rng.randrange(n_clients), rng.randrange(len(SERVICES))
        if rng.random() < mix.pending:
            status = "pending"
        else:
            status = rng.choice(OPEN if rng.random() < mix.open else CLOSED)
        accountant = None if status == "pending" and rng.random() < 0.5 else n % n_accountants
        done.requests.append((n, client, service, accountant, status))
        if rng.random() < mix.busy:
            done.busy.append(n)
        if status == "pending" or (status in OPEN and rng.random() < mix.unlinked):
            if status != "pending" and rng.random() < 0.5:
                done.links.append((n, None, status, None, None, False))
            continue
        crm_class = StatusClass.OPEN if status in OPEN else StatusClass.CLOSED
        other = StatusClass.CLOSED if crm_class is StatusClass.OPEN else StatusClass.OPEN
        drifting = rng.random() < mix.drift
        job_state = state(other if drifting else crm_class)
        crm_seen: str | None = status
        xero_seen: str | None = job_state
        written: str | None = None
        if drifting:  # who moved: the CRM, Xero, both (or a link with no memory), an echo
            who = rng.random()
            if who < 0.4:
                crm_seen = rng.choice(OPEN if other is StatusClass.OPEN else CLOSED)
            elif who < 0.8:
                xero_seen = rng.choice(states[crm_class])
            elif who < 0.9:
                crm_seen = xero_seen = None
            else:
                written = job_state
        job = n
        if rng.random() < mix.double_links and done.links and done.links[-1][1] is not None:
            job = done.links[-1][1]  # the previous request's job; this one's is then unknown
        gone = rng.random() < mix.missing
        deleted = gone and rng.random() < 0.5
        done.links.append((n, job, crm_seen, xero_seen, written, deleted))
        periods[client] += 1
        name = f"{SERVICES[service]} {2000 + periods[client]}"
        closed_and_seen = xero_seen == job_state and mapping.xero_class(job_state) is (
            StatusClass.CLOSED
        )
        if gone or (closed_and_seen and not lists_closed):
            continue  # deleted in Xero; or (XPM) closed, so not in the current jobs' list
        done.jobs.append((n, client, name, job_state))
        if rng.random() < mix.duplicates:
            done.jobs.append((size + n, client, name, job_state))
    unknown, foreign = int(size * mix.unknown_jobs), int(size * mix.foreign_jobs)
    for n in range(unknown + foreign):
        contact = rng.randrange(n_clients) if n < unknown else n_clients + n
        done.jobs.append((2 * size + n, contact, f"Advice {n}", state(StatusClass.OPEN)))
    if mix.listing == "xero":
        random.Random(seed).shuffle(done.jobs)
    for c in range(n_clients):
        if rng.random() >= mix.unmapped_clients:
            done.contact_map.append(c)
        if rng.random() >= mix.missing_contacts:
            done.contacts.append((c, rng.random() < mix.archived_contacts))
    done.staff_map.extend(
        a for a in range(n_accountants) if rng.random() >= mix.unmapped_accountants
    )
    unmapped = int(len(SERVICES) * mix.unmapped_services)
    done.service_map.extend(range(unmapped, len(SERVICES)))
    return done


def snapshot(plan: Plan) -> Snapshot:
    """Fresh objects for a plan, each list allocated in its own order."""
    mix = plan.mix
    requests = [
        CrmRequest(
            request_id=request_id(n),
            client_id=client_id(client),
            service_id=service,
            accountant_id=None if accountant is None else accountant_id(accountant),
            status=fresh(status),
        )
        for n, client, service, accountant, status in plan.requests
    ]
    jobs = [
        XeroJob(
            job_id=job_id(key),
            contact_id=contact_id(contact),
            name=fresh(name),
            status=fresh(state),
        )
        for key, contact, name, state in plan.jobs
    ]
    links = [
        Link(
            request_id=request_id(n),
            job_id=None if job is None else job_id(job),
            crm_seen=None if crm is None else fresh(crm),
            xero_seen=None if seen is None else fresh(seen),
            xero_written=None if written is None else fresh(written),
            deleted=deleted,
        )
        for n, job, crm, seen, written, deleted in plan.links
    ]
    return Snapshot(
        requests=requests,
        clients=[
            CrmPerson(person_id=client_id(c), name=f"Client {c}", email=f"c{c}@example.com")
            for c in range(plan.clients)
        ],
        accountants=[
            CrmPerson(
                person_id=accountant_id(a),
                name=f"Accountant {a}",
                email=None if a % 5 == 0 else email_of(a),
            )
            for a in range(plan.accountants)
        ],
        services=[CrmService(service_id=s, name=name) for s, name in enumerate(SERVICES)],
        jobs=jobs,
        contacts=[
            XeroContact(contact_id=contact_id(c), name=f"Client {c}", email=None, archived=archived)
            for c, archived in plan.contacts
        ],
        staff=[
            XeroStaff(staff_id=staff_id(a), name=f"Accountant {a}", email=email_of(a).upper())
            for a in range(plan.accountants)
        ],
        links=links,
        mappings=Mappings(
            contacts={client_id(c): contact_id(c) for c in plan.contact_map},
            staff={accountant_id(a): staff_id(a) for a in plan.staff_map},
            services={s: f"template-{s}" for s in plan.service_map},
        ),
        busy_requests=frozenset(request_id(n) for n in plan.busy),
        capabilities=Capabilities(
            templates=CAPABILITIES[mix.backend].templates,
            lists_closed_jobs=CAPABILITIES[mix.backend].lists_closed_jobs,
        ),
        status_mapping=default_mapping(mix.backend),
        conflict_policy=ConflictPolicy.CRM_WINS,
    )


def request_id(n: int) -> str:
    return f"REQ-{n:07d}"


def client_id(c: int) -> str:
    return f"CL-{c:06d}"


def accountant_id(a: int) -> str:
    return f"ACC-{a:04d}"


def staff_id(a: int) -> str:
    return f"{a:08x}-5ae1-4c3b-8f0d-3b7c1e9a2d4f"


def job_id(key: int) -> str:
    """Xero's ids are UUIDs."""
    return f"{key:08x}-7c2e-4b1d-9a3c-{key * 40503 % 2**48:012x}"


def contact_id(c: int) -> str:
    return f"{c:08x}-1f4a-4e2d-8b6c-{c * 48271 % 2**48:012x}"


def fresh(text: str) -> str:
    """A new string object with the same text, as a driver or JSON parser returns for each row."""
    return text.encode().decode()


def email_of(accountant: int) -> str:
    """Every seventh accountant shares an address with others (no single staff match)."""
    return f"a{accountant}@practice.example" if accountant % 7 else "shared@practice.example"


def index_only(snapshot: Snapshot) -> int:
    """The baseline: hash every input once, nothing more."""
    tables = (
        {r.request_id: r for r in snapshot.requests},
        {j.job_id: j for j in snapshot.jobs},
        {link.request_id: link for link in snapshot.links},
        {c.person_id: c for c in snapshot.clients},
        {c.contact_id: c for c in snapshot.contacts},
    )
    return sum(len(table) for table in tables)


def same_as_reference(findings: list[Finding], plan: Plan) -> bool:
    """The findings equal the reference's for the same (freshly built) snapshot, as stored."""
    expected = reconcile_reference.reconcile(snapshot(plan))
    as_json = [json.dumps([f.as_json() for f in side]) for side in (findings, expected)]
    return findings == expected and as_json[0] == as_json[1]


def cpu(fn: Callable[[Snapshot], object], plan: Plan, rounds: int) -> float:
    """Median CPU seconds of `fn` over `rounds` fresh snapshots (building them is not timed)."""
    times = []
    for _ in range(rounds):
        snap = snapshot(plan)
        gc.collect()
        started = time.process_time()
        fn(snap)
        times.append(time.process_time() - started)
        del snap
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--drift", default="0.02,0.4", help="comma-separated drift shares")
    parser.add_argument("--backends", default="projects,practicemanager")
    parser.add_argument("--listing", default="xero", help="xero (shuffled) or creation")
    args = parser.parse_args()
    mixes = [
        Mix(backend=Backend(backend), drift=float(drift), listing=args.listing)
        for drift in args.drift.split(",")
        for backend in args.backends.split(",")
    ]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.size:,} requests, CPU seconds (median of {args.rounds}); load average {load}")
    print(f"{'mix':<24}{'jobs':>9}{'findings':>10}{'reconcile':>11}{'index only':>12}{'ratio':>8}")
    counts: dict[str, dict[str, int]] = {}
    for mix in mixes:
        planned = plan(args.size, mix)
        report = reconcile(snapshot(planned))
        if not same_as_reference(report.findings, planned):
            print(f"{mix.label}: findings differ from the reference's", file=sys.stderr)
            return 1
        counts[mix.label] = report.counts
        full = cpu(reconcile, planned, args.rounds)
        floor = cpu(index_only, planned, args.rounds)
        print(
            f"{mix.label:<24}{len(planned.jobs):>9,}{len(report.findings):>10,}"
            f"{full:>11.3f}{floor:>12.3f}{full / floor:>7.1f}x"
        )
    print()
    print(f"{'findings per kind':<24}" + "".join(f"{label:>20}" for label in counts))
    for kind in Kind:
        print(f"{kind.value:<24}" + "".join(f"{c[kind.value]:>20,}" for c in counts.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
