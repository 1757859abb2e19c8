"""Run every check over a snapshot, and render findings (stored or fresh) as JSON, CSV or text."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconcilers import contacts, jobs, services, staff
from reconcilers.findings import Finding, Kind
from reconcilers.index import build
from reconcilers.snapshots import Snapshot

CSV_COLUMNS = (
    "id",
    "kind",
    "severity",
    "state",
    "request_id",
    "subject",
    "action",
    "crm",
    "xero",
    "detail",
)


@dataclass(frozen=True, slots=True)
class Report:
    findings: list[Finding]

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(finding.kind.value for finding in self.findings)
        return {kind.value: counted.get(kind.value, 0) for kind in Kind}


def reconcile(snapshot: Snapshot) -> Report:
    index = build(snapshot)
    found: list[Finding] = []
    found.extend(jobs.check(snapshot, index))
    found.extend(jobs.check_jobs(snapshot, index))
    found.extend(contacts.check(snapshot, index))
    found.extend(staff.check(snapshot, index))
    found.extend(services.check(snapshot, index))
    return Report(found)


def to_json(run: Mapping[str, Any], findings: Sequence[Mapping[str, Any]]) -> str:
    """A run and its findings (each with at least kind, request_id, crm, xero, action, state)."""
    return json.dumps({**run, "findings": list(findings)}, indent=2, default=str)


def to_csv(findings: Iterable[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for finding in findings:
        row = dict(finding)
        for side in ("crm", "xero"):
            row[side] = json.dumps(row.get(side) or {}, sort_keys=True, default=str)
        writer.writerow(row)
    return out.getvalue()


def to_text(counts: Mapping[str, int], findings: Sequence[Mapping[str, Any]]) -> str:
    """A summary table per kind (open / healed / other), then the open findings."""
    width = max(len(kind) for kind in counts) if counts else 10
    lines = [f"{'kind':<{width}}  {'found':>5}  {'open':>5}  {'healed':>6}"]
    for kind in counts:
        of_kind = [f for f in findings if f.get("kind") == kind]
        lines.append(
            f"{kind:<{width}}  {len(of_kind):>5}  "
            f"{sum(1 for f in of_kind if f.get('state') == 'open'):>5}  "
            f"{sum(1 for f in of_kind if f.get('state') == 'healed'):>6}"
        )
    open_findings = [f for f in findings if f.get("state") == "open"]
    if open_findings:
        lines.append("")
        lines.append("needs review:")
        for finding in open_findings:
            lines.append(
                f"  [{finding.get('severity')}] {finding.get('kind')} "
                f"{finding.get('subject')}: {finding.get('detail')}"
            )
    return "\n".join(lines)
