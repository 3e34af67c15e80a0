"""The Runpod bill of a `classify --engine runpod` run (costs/runpod_jobs.py), as a table and as markdown."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from mixedclf.costs.fmt import fmt_money, fmt_rate
from mixedclf.costs.runpod_jobs import RunpodJobBill
from mixedclf.render.tables import TABLE_STYLE, md_table

HEADERS = ["endpoint", "worker", "jobs", "failed", "execution s", "billed s", "rate", "cost"]


def bill_rows(bill: RunpodJobBill) -> list[list[str]]:
    rows = []
    for e in bill.endpoints:
        for w in e.workers or []:
            rows.append([f"{e.rate.role} ({e.rate.worker.upper()})", w.worker_id or "(unnamed)", f"{w.jobs:,}",
                         "", f"{w.execution_s:,.3f}", f"{w.billed_s:,}", fmt_rate(e.rate.rate_per_s),
                         fmt_money(w.usd)])
        rows.append([f"{e.rate.role} total", f"{len(e.workers)} worker(s)", f"{e.jobs:,}", f"{e.failed_attempts:,}",
                     f"{e.execution_s:,.3f}", f"{e.billed_s:,}", e.rate.rate_source, fmt_money(e.usd)])
    return rows


def bill_lines(bill: RunpodJobBill) -> list[str]:
    delay = sum(e.delay_s for e in bill.endpoints)
    return [f"Runpod bill {fmt_money(bill.usd)} ({bill.billing_model}; {bill.source}) vs ideal estimate "
            f"{fmt_money(bill.estimate_usd)} ({bill.estimate_model})",
            f"not in the bill: {bill.excludes}; the jobs waited {delay:,.3f} s in all (delayTime)"]


def bill_table(bill: RunpodJobBill) -> Table:
    style: dict[str, Any] = TABLE_STYLE
    table = Table(title="Runpod bill, per worker (from the jobs' executionTime)", **style)
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("endpoint", "worker") else "right")
    for row in bill_rows(bill):
        table.add_row(*row)
    return table


def bill_markdown(bill: RunpodJobBill) -> list[str]:
    return [md_table(HEADERS, bill_rows(bill), ["l", "l", "r", "r", "r", "r", "r", "r"]), "",
            *[line + "." for line in bill_lines(bill)], ""]
