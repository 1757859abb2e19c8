"""The console's pictures: the dashboard's last 24 hours of one practice and the reconcile runs'
findings per kind, as `syncd.web.charts` bar charts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from syncd.store.activity import Activity
from syncd.store.models import ReconciliationRun
from syncd.web.charts import Series, bar_chart

RUNS_SHOWN = 12


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    heading: str
    note: str
    svg: Markup


def day_figures(activity: Activity, *, day_limit: int) -> list[Figure]:
    """Jobs created, statuses written each way, Xero calls against the budget and outbox depth,
    per hour (UTC) over the last 24 hours."""
    labels = [f"{hour:%H}:00" for hour in activity.hours]
    every = 6
    hourly_budget = day_limit / len(activity.hours)
    return [
        Figure(
            heading="Jobs created",
            note="Xero jobs syncd created, per hour (UTC)",
            svg=bar_chart(
                key="chart-jobs",
                title="Jobs created per hour, last 24 hours",
                labels=labels,
                series=[Series(name="jobs created", values=activity.jobs_created)],
                label_every=every,
                empty="no jobs created in the last 24 hours",
            ),
        ),
        Figure(
            heading="Statuses each way",
            note="status changes syncd wrote, per hour (UTC)",
            svg=bar_chart(
                key="chart-statuses",
                title="Statuses written each way per hour, last 24 hours",
                labels=labels,
                series=[
                    Series(name="CRM → Xero", values=activity.statuses_to_xero),
                    Series(name="Xero → CRM", values=activity.statuses_to_crm),
                ],
                label_every=every,
                empty="no status changes in the last 24 hours",
            ),
        ),
        Figure(
            heading="Xero calls vs budget",
            note=f"calls per hour (UTC); the line is an even share of the {day_limit:,}/day limit",
            svg=bar_chart(
                key="chart-calls",
                title="Xero calls per hour against the daily budget, last 24 hours",
                labels=labels,
                series=[Series(name="Xero calls", values=activity.xero_calls)],
                limit=hourly_budget,
                limit_name="hourly share of the daily limit",
                label_every=every,
                empty="no Xero calls in the last 24 hours",
            ),
        ),
        Figure(
            heading="Queue depth",
            note="outbox tasks waiting or running at the end of each hour (UTC)",
            svg=bar_chart(
                key="chart-queue",
                title="Outbox tasks waiting at the end of each hour, last 24 hours",
                labels=labels,
                series=[Series(name="tasks waiting", values=activity.queue_depth)],
                label_every=every,
                empty="the outbox was empty all day",
            ),
        ),
    ]


def runs_figure(runs: Sequence[ReconciliationRun], *, key: str = "chart-runs") -> Figure:
    """Findings per kind over the given runs (newest first, as listed), drawn oldest first."""
    shown = [r for r in runs if r.state == "finished"][:RUNS_SHOWN][::-1]
    kinds = sorted({kind for run in shown for kind, count in (run.counts or {}).items() if count})
    labels = [f"{run.started_at:%d %b %H:%M}" for run in shown]
    return Figure(
        heading="Findings per run",
        note=f"the last {len(shown)} finished run(s), findings by kind",
        svg=bar_chart(
            key=key,
            title="Findings per kind in the last reconciliation runs",
            labels=labels,
            series=[
                Series(
                    name=kind.replace("_", " "),
                    values=[int((run.counts or {}).get(kind, 0)) for run in shown],
                )
                for kind in kinds
            ],
            label_every=max(1, len(shown) // 4),
            empty="no findings in these runs" if shown else "no finished run yet",
        ),
    )
