"""The machine-readable summary of a classify run (`classify --format json`): one JSON object for scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from mixedclf.costs.accounting import CostBreakdown, CostTotals
from mixedclf.costs.cache import CacheSavings
from mixedclf.costs.report import ClassifyReport

#: What each billing model's dollars are, in words (docs/cost-model.md).
BILLING_MODELS = {
    "pay-per-use": "ideal serverless: each stage's busy seconds x the rate of the device it is billed as",
    "provisioned": "rented workers: each held from start to last use + idle tail, rounded up to the second",
}


class LabelledTotals(BaseModel):
    """Mixed vs GPU-only in one billing model, each figure saying whether it was measured or derived."""

    billing: Literal["pay-per-use", "provisioned"]
    billing_model: str
    mixed: float
    mixed_is: Literal["measured", "derived"]  # derived: a counterfactual from the measured stage seconds
    gpu_only: float
    gpu_only_is: Literal["measured", "derived"]
    mixed_per_1k: float
    gpu_only_per_1k: float
    gpu_seconds_are: str  # "GPU seconds", or the CPU seconds that stand in for them
    savings_claimed: bool
    savings: float | None  # None where no saving is claimed (inference ran on a CPU without --gpu-speedup)
    savings_pct: float | None


def labelled_totals(cost: CostBreakdown, basis: Literal["pay-per-use", "provisioned"]) -> LabelledTotals:
    t: CostTotals = cost.totals(basis)
    claimed = cost.savings_claim
    if not cost.inference_on_cpu:
        gpu_seconds = "GPU seconds"
    elif cost.gpu_speedup is not None:
        gpu_seconds = f"CPU seconds / {cost.gpu_speedup:g} (--gpu-speedup) priced at the GPU rate"
    else:
        gpu_seconds = "CPU seconds priced at the GPU rate"
    return LabelledTotals(
        billing=basis, billing_model=BILLING_MODELS[basis], mixed=t.mixed,
        mixed_is="measured" if cost.mixed_is == "measured" else "derived", gpu_only=t.gpu_only,
        gpu_only_is="measured" if cost.gpu_only_is == "measured" else "derived", mixed_per_1k=t.mixed_per_1k,
        gpu_only_per_1k=t.gpu_only_per_1k, gpu_seconds_are=gpu_seconds, savings_claimed=claimed,
        savings=t.savings if claimed else None, savings_pct=t.savings_pct if claimed else None,
    )


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
    # Dollars mixed vs GPU-only, with the savings, in each billing model the report prices; each labelled.
    pay_per_use: LabelledTotals
    provisioned: LabelledTotals
    output: str
    report: str | None  # where the full JSON report was written (--report), else None
    errors: str | None  # the skipped rows' file, when rows were skipped
    cache: CacheSavings | None = None  # the prediction cache's hits, misses and what they avoided; None: no cache


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
        pay_per_use=labelled_totals(report.cost, "pay-per-use"),
        provisioned=labelled_totals(report.cost, "provisioned"),
        output=str(output),
        report=str(report_path) if report_path is not None else None,
        errors=str(errors_path) if report.rows_errored else None,
        cache=report.cache,
    )
