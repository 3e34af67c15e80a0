"""`check` under a usage file: each side's projected $/month at the team's real traffic (not gated).

Each report becomes an estimate: a classify report gives its measured seconds per request (as `estimate
--from-report` does), an estimate report its own inputs; the usage file sets the traffic and the deployment. The
figure is the report's own architecture (mixed, or GPU-only for a `--mode gpu-only` run) under the usage file's
billing model, and each side is summarised by its median, as `check` summarises its metric.

Pure module: no torch, no pools.
"""

from __future__ import annotations

import statistics

from pydantic import BaseModel

from mixedclf.costs.accounting import clean
from mixedclf.costs.estimate import EstimateInputs, compute, headline, inputs_from_report
from mixedclf.costs.fmt import fmt_money, fmt_num
from mixedclf.costs.pricing import DEFAULT_PROFILE, CostInputError, PricingProfile, load_pricing
from mixedclf.costs.report import ClassifyReport
from mixedclf.costs.runpod import runpod_bill
from mixedclf.costs.usage import UsageFile

#: `estimate`'s default traffic, used when a usage file does not set requests_per_day.
DEFAULT_REQUESTS_PER_DAY = 10_000.0


class MonthlyProjection(BaseModel):
    usage_file: str
    billing: str
    requests_per_day: float
    active_hours: float
    profile: str
    architecture: str  # "mixed", "GPU-only", or both names when the reports differ
    baseline_per_month: float  # median over the baseline reports
    current_per_month: float
    baseline_range: tuple[float, float] | None = None  # min, max with several reports
    current_range: tuple[float, float] | None = None
    change: float
    change_pct: float | None

    def line(self) -> str:
        pct = "n/a" if self.change_pct is None else f"{self.change_pct:+.1f}%"
        sign = "+" if self.change >= 0 else "-"
        return (f"projected per month under {self.usage_file} ({self.billing} billing, "
                f"{fmt_num(self.requests_per_day)} requests/day over {self.active_hours:g} h, profile {self.profile}, "
                f"{self.architecture}; from each report's seconds per request, not gated): "
                f"{fmt_money(self.baseline_per_month)} -> {fmt_money(self.current_per_month)} "
                f"({sign}{fmt_money(abs(self.change))}, {pct})")


def report_estimate_inputs(report, usage_file: UsageFile) -> tuple[EstimateInputs, PricingProfile]:
    """The estimate inputs of one report under the usage file, and the pricing to use."""
    usage = usage_file.usage
    fields = {"requests_per_day": DEFAULT_REQUESTS_PER_DAY, **usage.estimate_fields()}
    if isinstance(report, ClassifyReport):
        inputs, _ = inputs_from_report(report, **fields)
    else:
        inputs = EstimateInputs(**{**report.inputs.model_dump(), **fields})
    if usage.profile is not None or usage.pricing is not None:
        pricing = load_pricing(usage.pricing, usage.profile or DEFAULT_PROFILE)
    else:
        pricing = report.pricing
    return inputs, pricing


def per_month(report, usage_file: UsageFile) -> tuple[float, PricingProfile, EstimateInputs]:
    inputs, pricing = report_estimate_inputs(report, usage_file)
    ideal = compute(inputs, pricing.cpu_per_sec, pricing.gpu_per_sec)
    rp = runpod_bill(inputs, pricing, break_even=False) if inputs.billing == "runpod" else None
    figures = headline(inputs, rp, ideal)
    key = "gpu_only_per_month" if getattr(report, "mode", "mixed") == "gpu-only" else "mixed_per_month"
    value = figures[key]
    if value is None:
        raise CostInputError(f"{usage_file.path}: the deployment cannot serve {inputs.requests_per_day:,.0f} "
                             "requests/day (an endpoint's utilization is 1 or more): raise its max workers")
    return value, pricing, inputs


def _side(values: list[float]) -> tuple[float, tuple[float, float] | None]:
    mid = clean(statistics.median(values))
    return mid, ((min(values), max(values)) if len(values) > 1 else None)


def project_monthly(bases: list, curs: list, usage_file: UsageFile) -> MonthlyProjection:
    b = [per_month(r, usage_file) for r in bases]
    c = [per_month(r, usage_file) for r in curs]
    b_val, b_range = _side([x[0] for x in b])
    c_val, c_range = _side([x[0] for x in c])
    inputs = c[0][2]
    arch = dict.fromkeys("GPU-only" if getattr(r, "mode", "mixed") == "gpu-only" else "mixed" for r in [*bases, *curs])
    return MonthlyProjection(
        usage_file=str(usage_file.path), billing=inputs.billing, requests_per_day=inputs.requests_per_day,
        active_hours=inputs.active_hours, profile=c[0][1].name, architecture="/".join(arch),
        baseline_per_month=b_val, current_per_month=c_val, baseline_range=b_range, current_range=c_range,
        change=clean(c_val - b_val), change_pct=clean((c_val - b_val) / b_val * 100) if b_val else None,
    )
