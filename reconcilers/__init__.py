"""Pure drift detection between the CRM and Xero.

Give it snapshots of both sides, the link table and the mappings (`snapshots.py`); get back
findings (`findings.py`), each with a kind, both sides' values, a severity and a proposed action.
One module per entity: `jobs`, `contacts`, `staff`, `services`; `report` runs them all and
renders the result (JSON, CSV, text). No IO, no database, no HTTP, no clock: syncd's runner
feeds it and acts on what it returns. Imports nothing from syncd but `syncd.domain`.

Everything is linear in the number of records: inputs are indexed once into dicts keyed by id,
and every check is a lookup, never a nested scan.
"""

from reconcilers.findings import Action, Finding, Kind, Severity
from reconcilers.report import Report, reconcile
from reconcilers.snapshots import Snapshot

__all__ = ["Action", "Finding", "Kind", "Report", "Severity", "Snapshot", "reconcile"]
