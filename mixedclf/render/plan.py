"""The `mixedclf plan` table: hardware ranked by the cost of meeting the deadline."""

from __future__ import annotations

from rich.table import Table

from mixedclf.costs.plan import Plan


def plan_table(plan: Plan) -> Table:
    hours = plan.deadline_s / 3600
    table = Table(title=f"{plan.rows:,} rows within {hours:g} h: provisioned workers, each billed start to stop, "
                        "rounded up to the second", title_justify="left")
    for header in ("profile", "runs on", "workers", "CPU workers", "hours", "cost", "measured by"):
        table.add_column(header, justify="right" if header in ("workers", "CPU workers", "hours", "cost") else "left")
    for row in plan.rows_ranked:
        if not row.feasible:
            table.add_row(row.profile, row.device_class, "-", "-", "-", "-", row.note, style="dim")
            continue
        table.add_row(row.profile, row.device_class, str(row.device_workers), str(row.cpu_workers),
                      f"{row.hours:.2f}", f"${row.cost:,.4f}", row.source)
    return table
