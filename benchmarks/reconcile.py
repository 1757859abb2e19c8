"""Pure reconciliation at scale: 100,000 CRM requests against 100,000 Xero jobs.

Reports CPU seconds (process time, median of --rounds) for the full `reconcilers.reconcile`, and,
as the baseline run side by side, the cost of merely indexing the same inputs into dicts once —
the floor any linear algorithm pays — with the ratio between them. Two mixes: a realistic one
(1% of requests drifting) and a pathological one (40% drifting, so most of the time goes into
building findings). Usage: `.venv/bin/python benchmarks/reconcile.py [--size 100000]`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from reconcilers import reconcile
from reconcilers.snapshots import (
    CrmPerson,
    CrmRequest,
    Link,
    Mappings,
    Snapshot,
    XeroContact,
    XeroJob,
)

OPEN, CLOSED = ("assigned", "processing"), ("completed", "cancelled")


def world(size: int, drift: float, seed: int = 7) -> Snapshot:
    rng = random.Random(seed)
    clients = max(1, size // 5)
    requests, jobs, links = [], [], []
    for n in range(size):
        open_request = rng.random() < 0.5
        status = rng.choice(OPEN if open_request else CLOSED)
        agrees = rng.random() >= drift
        state = (
            ("INPROGRESS" if open_request else "CLOSED")
            if agrees
            else ("CLOSED" if open_request else "INPROGRESS")
        )
        requests.append(
            CrmRequest(
                request_id=f"r{n}",
                client_id=f"c{n % clients}",
                service_id=n % 12,
                accountant_id=f"a{n % 40}",
                status=status,
            )
        )
        jobs.append(
            XeroJob(
                job_id=f"j{n}",
                contact_id=f"x{n % clients}",
                name=f"Tax Return {n} - Client {n % clients}",
                status=state,
            )
        )
        links.append(Link(request_id=f"r{n}", job_id=f"j{n}", crm_seen=status, xero_seen=state))
    return Snapshot(
        requests=requests,
        clients=[
            CrmPerson(person_id=f"c{c}", name=f"Client {c}", email=f"c{c}@example.com")
            for c in range(clients)
        ],
        accountants=[CrmPerson(person_id=f"a{a}", name=f"A {a}", email=None) for a in range(40)],
        services=[],
        jobs=jobs,
        contacts=[
            XeroContact(contact_id=f"x{c}", name=f"Client {c}", email=None, archived=False)
            for c in range(clients)
        ],
        staff=[],
        links=links,
        mappings=Mappings(
            contacts={f"c{c}": f"x{c}" for c in range(clients)},
            staff={f"a{a}": f"s{a}" for a in range(40)},
        ),
    )


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


def cpu(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.size:,} requests vs {args.size:,} jobs, CPU seconds (median of {args.rounds})")
    print(f"{'mix':<22}{'findings':>10}{'reconcile':>12}{'index only':>12}{'ratio':>8}")
    for label, drift in (("1% drifting", 0.01), ("40% drifting", 0.40)):
        snapshot = world(args.size, drift)
        findings = len(reconcile(snapshot).findings)
        full = cpu(lambda snap=snapshot: reconcile(snap), args.rounds)  # type: ignore[misc]
        floor = cpu(lambda snap=snapshot: index_only(snap), args.rounds)  # type: ignore[misc]
        print(f"{label:<22}{findings:>10,}{full:>12.3f}{floor:>12.3f}{full / floor:>7.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
