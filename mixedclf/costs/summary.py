"""The machine-readable summary of a classify run (`classify --format json`): one JSON object for scripts."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from mixedclf.costs.accounting import CostTotals
from mixedclf.costs.report import ClassifyReport


class ClassifySummary(BaseModel):
    kind: str = "classify-summary"
    model: str
    mode: str
    engine: str
    device: str
    rows_in: int
    rows_out: int
    rows_errored: int
    seconds: float
    throughput: float  # rows out per second of wall time
    cold_start_s: float | None = None  # process start to the first micro-batch on the device
    # Dollars mixed vs GPU-only, with the savings, in each billing model the report prices.
    pay_per_use: CostTotals
    provisioned: CostTotals
    output: str
    report: str | None  # where the full JSON report was written (--report), else None
    errors: str | None  # the skipped rows' file, when rows were skipped


def classify_summary(report: ClassifyReport, output: Path, report_path: Path | None,
                     errors_path: Path) -> ClassifySummary:
    return ClassifySummary(
        model=report.model,
        mode=report.mode,
        engine=report.engine,
        device=report.device,
        rows_in=report.rows_in,
        rows_out=report.rows_out,
        rows_errored=report.rows_errored,
        seconds=report.measurements.wall_s,
        throughput=report.cost.throughput,
        cold_start_s=report.measurements.cold_start_s,
        pay_per_use=report.cost.pay_per_use,
        provisioned=report.cost.provisioned,
        output=str(output),
        report=str(report_path) if report_path is not None else None,
        errors=str(errors_path) if report.rows_errored else None,
    )
